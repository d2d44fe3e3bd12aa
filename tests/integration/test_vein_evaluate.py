"""The evaluation tool on a subset of campus64: report, ROC PNG, honest rates."""

from pathlib import Path

from click.testing import CliRunner

from models.vein.cli import main


def test_evaluate_subset_writes_report_and_plot(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main, ["evaluate", str(shared_data / "vein/campus64"), "--fingers", "5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "5 fingers, 75 images" in report
    assert "| EER |" in report and "FNMR at FMR 0.001" in report
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    eer = float(result.output.split("EER ")[1].split("%")[0])
    assert eer <= 2.0


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no FXXYY.bmp images" in result.output


def test_every_command_has_an_example() -> None:
    for name, cmd in main.commands.items():
        assert "Example: python -m models.vein " + name in (cmd.help or ""), name
