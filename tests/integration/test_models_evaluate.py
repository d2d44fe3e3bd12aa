"""`lifecert-models evaluate` end to end on a small LFW-layout set of real faces."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from models import thresholds
from models.bundle import load_bundle
from models.cli import main
from models.tools import lfw
from tests.integration.test_models_pipeline import bundle_and_key

pytestmark = pytest.mark.integration
PEOPLE = 10  # identities with 2+ images; 2 folds of 2 genuine + 2 impostor pairs


def _small_set(source: lfw.FaceSet, root: Path) -> None:
    """PEOPLE identities (two images each, symlinked) and a 2-fold pairs.txt."""
    by_name: dict[str, list[Path]] = {}
    for name, path in zip(source.identities, source.paths, strict=True):
        by_name.setdefault(name, []).append(path)
    chosen = [n for n, paths in sorted(by_name.items()) if len(paths) >= 2][:PEOPLE]
    for name in chosen:
        (root / "images" / name).mkdir(parents=True)
        for path in by_name[name][:2]:
            (root / "images" / name / path.name).symlink_to(path)
    num = {n: [int(p.stem.rsplit("_", 1)[1]) for p in by_name[n][:2]] for n in chosen}
    rows = []
    for fold in range(2):
        names = chosen[fold * 4 : fold * 4 + 4]
        rows += [f"{n} {num[n][0]} {num[n][1]}" for n in names[:2]]
        rows += [f"{names[0]} {num[names[0]][0]} {names[2]} {num[names[2]][0]}"]
        rows += [f"{names[1]} {num[names[1]][1]} {names[3]} {num[names[3]][1]}"]
    (root / "pairs.txt").write_text("2 2\n" + "\n".join(rows) + "\n")
    group = "\n".join(f"older\t{n}" for n in chosen[:3])
    (root / "subgroups.tsv").write_text(f"# informal\ngroup\tname\n{group}\n")


def test_evaluate_writes_report_plots_and_signed_thresholds(
    shared_data: Path, tmp_path: Path
) -> None:
    bundle, public = bundle_and_key()
    signing = public.with_name("sign.key")
    if not signing.is_file():
        pytest.skip(f"no signing key beside {public}")
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    data = tmp_path / "faces"
    _small_set(lfw.load(shared_data / "faces" / "lfw"), data)
    saved = tmp_path / "thresholds.toml"
    result = CliRunner().invoke(
        main,
        ["evaluate", "--bundle", str(copy), "--data", str(data), "--public-key", str(public),
         "--signing-key", str(signing), "--report", str(tmp_path / "report"),
         "--cache", str(tmp_path / "cache"), "--no-dlib", "--save-thresholds", str(saved)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "lfw-report.md").read_text()
    assert "## LFW protocol" in report and "card photo vs live" in report
    assert "| older | 3 | 6 | 6 |" in report  # 3 people, 2 images each: 6 ordered genuine pairs
    for plot in ("roc.png", "det.png"):
        assert (tmp_path / "report" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest, _ = load_bundle(copy, public)  # re-signed: still verifies
    calibrated = thresholds.load(saved, manifest.version)
    assert set(calibrated) == {"live", "card_photo"}
    assert manifest.thresholds["live"] == calibrated["live"]
    assert calibrated["live"].metric == "euclidean_unit"
    assert f"{2 * PEOPLE} images" in calibrated["live"].calibrated_on
    # the cache makes a second run cheap and identical
    again = CliRunner().invoke(
        main,
        ["evaluate", "--bundle", str(copy), "--data", str(data), "--public-key", str(public),
         "--report", str(tmp_path / "again"), "--cache", str(tmp_path / "cache"), "--no-dlib"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "lfw-report.md").read_text().split("## LFW")[1] == report.split(
        "## LFW"
    )[1]


def test_evaluate_names_a_folder_without_faces(tmp_path: Path) -> None:
    bundle, public = bundle_and_key()
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        main,
        ["evaluate", "--bundle", str(bundle), "--data", str(tmp_path / "empty"),
         "--public-key", str(public), "--report", str(tmp_path / "r"), "--no-dlib"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "no images/<Name>/<Name>_NNNN.jpg found" in result.output
    assert "Traceback" not in result.output
