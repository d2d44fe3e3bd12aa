"""The vein evaluation on a subset of campus64: threshold fitted on some fingers, measured
on the others, or the signed bundle's threshold measured; report, ROC PNG, honest rates."""

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models import vein
from models.bundle import Manifest, ScoreThreshold, write_manifest
from models.vein.cli import main


def signed_bundle(folder: Path, score: float, scorer: str) -> Path:
    """A bundle manifest carrying only a vein threshold, signed with a fresh key; its key."""
    folder.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder.parent / "sign.key", folder.parent / "sign.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))  # fmt: skip
    t = ScoreThreshold(metric="miura", score=score, scorer=scorer, calibrated_on="tests")
    manifest = Manifest(name="t", version="1", created="2026-01-01T00:00:00+00:00", models={},
                        thresholds={"vein": t})  # fmt: skip
    write_manifest(folder, manifest, priv)
    return pub


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("  FMR") or "FNMR" in line]


def test_fit_on_some_fingers_then_measure_the_signed_threshold(
    shared_data: Path, tmp_path: Path
) -> None:
    data = str(shared_data / "vein/campus64")
    saved = tmp_path / "thresholds.toml"
    fit = CliRunner().invoke(
        main, ["evaluate", data, "--fingers", "6", "--out", str(tmp_path / "fit"),
               "--save-threshold", str(saved)],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    report = (tmp_path / "fit" / "report.md").read_text(encoding="utf-8")
    assert "measured on the heldout part (fingers 04-06): 3 fingers, 45 images" in report
    assert "fitted at FMR 0.001 on the calibration part (fingers 01-03)" in report
    # 3 fingers x 15 captures: 3 * 105 genuine, 45 * 44 / 2 - 315 impostor pairs
    assert "/315); exact" in report and "/675); exact" in report
    assert "| calibration (fingers 01-03), in-sample | 45 |" in report
    assert (tmp_path / "fit" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = tomllib.loads(saved.read_text())["vein"]
    assert doc["scorer"] == vein.scorer() and doc["target_fmr"] == 1e-3
    assert "fingers 01-03 (45 images)" in doc["calibrated_on"]
    assert "measured on fingers 04-06" in doc["calibrated_on"]

    pub = signed_bundle(tmp_path / "bundle", doc["score"], doc["scorer"])
    fixed = CliRunner().invoke(
        main, ["evaluate", data, "--fingers", "6", "--out", str(tmp_path / "fixed"), "--fixed",
               "--bundle", str(tmp_path / "bundle"), "--public-key", str(pub)],
    )  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert lines(fixed.output) == lines(fit.output)  # the same threshold, the same figures
    assert "(the bundle's) on the heldout part" in fixed.output
    assert "saved" not in fixed.output and "not written" not in fixed.output
    fixed_report = (tmp_path / "fixed" / "report.md").read_text(encoding="utf-8")
    assert "the signed bundle's `vein` threshold (not re-fitted)" in fixed_report
    assert "in-sample" not in fixed_report


def test_a_threshold_for_another_matcher_is_not_measured(shared_data: Path, tmp_path: Path) -> None:
    pub = signed_bundle(tmp_path / "bundle", 0.19, vein.scorer())
    args = ["evaluate", str(shared_data / "vein/campus64"), "--fixed",
            "--bundle", str(tmp_path / "bundle"), "--public-key", str(pub)]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--sigma", "2.5"])
    assert result.exit_code != 0
    assert "holds for" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fixed"], "--fixed needs --bundle and --public-key"),
        (["--fixed", "--fmr", "1e-2"], "not with --fixed"),
        (["--part", "all"], "go with --fixed"),
        (["--fmr", "2"], "between 0 and 1"),
    ],
)
def test_option_mistakes_are_named(tmp_path: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path), *args])
    assert result.exit_code == 2 and says in result.output, result.output


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no FXXYY.bmp images" in result.output


def test_every_command_has_an_example() -> None:
    for name, cmd in main.commands.items():
        assert "Example: python -m models.vein " + name in (cmd.help or ""), name
    (out,) = [p for p in main.commands["evaluate"].params if p.name == "out"]
    assert out.default == Path("var/reports/vein")  # never the project's reports by default
