"""`lifecert demo`, the project's main job, runs end to end and shows what central applied."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_certifies_through_the_whole_stack(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioning",
            "demo",
            "--terminals",
            "2",
            "--retirees",
            "6",
            "--dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Every outbox delivered and acked by central" in out.stdout
    certified = re.findall(r"^\d{17}[\dX] .* active\s+(\d{4}-\d{2}-\d{2})", out.stdout, re.M)
    assert len(certified) == 4  # two thirds of six retirees were certified
    assert "4 retirees certified until next year; 2 not yet certified." in out.stdout
    assert re.search(
        r"Staff console at https://127\.0\.0\.1:\d+/ .* shows 4 of 6 retirees", out.stdout
    )
    assert (tmp_path / "demo" / "fleet" / "central" / "central.sqlite").is_file()


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    out = subprocess.run(
        [sys.executable, "-m", "provisioning", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "not empty" in out.stderr and "Traceback" not in out.stderr
