"""`lifecert demo`'s face step: a retiree certifies alone at a kiosk via the shipped commands."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import demo_face

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_face_step_says_why_it_cannot_run(tmp_path: Path) -> None:
    assert "no model bundle" in str(demo_face.missing(tmp_path, tmp_path / "none", tmp_path))
    why = demo_face.missing(tmp_path, demo_face.BUNDLE, demo_face.BUNDLE_KEY)
    if (demo_face.BUNDLE / "manifest.jws").is_file() and demo_face.BUNDLE_KEY.is_file():
        assert why is not None and "no LFW faces" in why


def test_demo_certifies_one_retiree_by_face(tmp_path: Path, shared_data: Path) -> None:
    why = demo_face.missing(shared_data)
    if why is not None:
        pytest.skip(f"face step cannot run: {why}")
    out = subprocess.run(
        [sys.executable, "-m", "provisioning", "demo", "--terminals", "1", "--retirees", "2",
         "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "9. " in out.stdout and "certifies alone at the term-001 kiosk" in out.stdout
    assert "method face, decision pass, delivered" in out.stdout
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("   central: ")]
    assert " active " in line and line.split()[-2].startswith("20")  # certified_until set
    logs = tmp_path / "demo" / "logs"
    # the kiosk's session asked central for a template (it had none) over the service's link:
    # the broker saw term-001 connect once per run of its service (before and after the
    # restart with the kiosk), under its own id, never a second login
    assert "central has no face template" in (logs / "term-001.log").read_text()
    broker_log = (logs / "mosquitto.log").read_text()
    clients = re.findall(r"New client connected from \S+ as (\S+) \(", broker_log)
    assert [c for c in clients if c.startswith("term-001")] == ["term-001", "term-001"]
