"""`lifecert-models evaluate` end to end on a small LFW-layout set of real faces."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models import thresholds
from models.bundle import face_version, load_bundle
from models.cli import main
from models.tools import lfw
from tests.integration.test_models_pipeline import bundle_and_key

pytestmark = pytest.mark.integration
PEOPLE = 10  # identities with 2+ images: 4 per fold of pairs.txt (2 folds), 2 in no pair


def _small_set(source: lfw.FaceSet, root: Path) -> list[str]:
    """PEOPLE identities (two images each, symlinked) and a 2-fold pairs.txt; the names."""
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
    group = "\n".join(f"older\t{n}" for n in chosen[4:7])  # three people of fold 2
    (root / "subgroups.tsv").write_text(f"# informal\ngroup\tname\n{group}\n")
    return chosen


def measured(result: Result) -> list[str]:
    """The lines the CLI prints for the thresholds measured on a part."""
    return [line for line in result.output.splitlines() if line.startswith("  ")]


@pytest.fixture(scope="module")
def faces(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    data = tmp_path_factory.mktemp("faces")
    return data, _small_set(lfw.load(shared_data / "faces" / "lfw"), data)


def test_thresholds_are_fitted_on_one_part_and_measured_on_the_other(
    faces: tuple[Path, list[str]], tmp_path: Path
) -> None:
    data, _ = faces
    bundle, public = bundle_and_key()
    signing = public.with_name("sign.key")
    if not signing.is_file():
        pytest.skip(f"no signing key beside {public}")
    copy, cache, saved = tmp_path / "bundle", tmp_path / "cache", tmp_path / "thresholds.toml"
    shutil.copytree(bundle, copy)
    base = ["evaluate", "--bundle", str(copy), "--data", str(data), "--public-key", str(public),
            "--cache", str(cache), "--no-dlib"]  # fmt: skip
    fit = CliRunner().invoke(
        main, [*base, "--signing-key", str(signing), "--report", str(tmp_path / "fit"),
               "--save-thresholds", str(saved)],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert "(fitted on the calibration part) on the heldout part (pairs.txt fold 2)" in fit.output
    assert "thresholds saved to" in fit.output and "manifest re-signed" in fit.output
    report = (tmp_path / "fit" / "lfw-report.md").read_text()
    assert "## LFW protocol (pairs.txt, 2 identity-disjoint folds)" in report
    assert "on the 1 other fold," in report
    assert "| `calibration`: pairs.txt fold 1 and identities no pair names | 12 | 6 |" in report
    assert "| `heldout`: pairs.txt fold 2 | 8 | 4 | measuring them (every figure" in report
    assert "## How they were fitted" in report
    # live on the held-out part: 8 images, 4 people: 8 ordered genuine, 8*8-8-8 impostor pairs
    assert "/8; exact" in report and "/48; exact" in report
    assert "| older | 3 | 6 | 6 |" in report  # the subgroup's 3 people, 2 images each
    for plot in ("roc.png", "det.png"):
        assert (tmp_path / "fit" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest, _ = load_bundle(copy, public)  # re-signed: still verifies
    calibrated = thresholds.load(saved, face_version(manifest.models))
    assert set(calibrated) == {"live", "card_photo"}
    assert manifest.thresholds["live"] == calibrated["live"]
    live = calibrated["live"]
    assert live.metric == "euclidean_unit" and live.target_fmr == 1e-4
    assert "fold 1 and identities no pair names (12 images, 6 identities)" in live.calibrated_on
    assert "FNMR measured on pairs.txt fold 2" in live.calibrated_on
    signed = (copy / "manifest.json").read_bytes()

    # the signed thresholds measured as they are: the same held-out figures, nothing written
    fixed = CliRunner().invoke(main, [*base, "--fixed", "--report", str(tmp_path / "fixed")])
    assert fixed.exit_code == 0, fixed.output
    assert "thresholds (the bundle's) on the heldout part" in fixed.output
    assert measured(fixed) == measured(fit)
    assert "written" not in fixed.output.replace("report written", "")
    assert (copy / "manifest.json").read_bytes() == signed
    fixed_report = (tmp_path / "fixed" / "lfw-report.md").read_text()
    assert "## The bundle's thresholds (not re-fitted) on the `heldout` part" in fixed_report
    assert "## How they were fitted" not in fixed_report
    assert "## Where the bundle's thresholds come from" in fixed_report
    assert live.calibrated_on in fixed_report
    everything = CliRunner().invoke(
        main, [*base, "--fixed", "--part", "all", "--report", str(tmp_path / "all")]
    )
    assert everything.exit_code == 0, everything.output
    assert "on the all part (every image)" in everything.output
    all_report = (tmp_path / "all" / "lfw-report.md").read_text()
    assert "/20; exact" in all_report  # the 20 images' ordered genuine pairs
    assert "| `all`: every image | 20 | 10 |" in all_report
    assert len(list(cache.glob("ours-*.npz"))) == 1  # three runs, one set of templates


def test_the_cache_follows_the_images_not_their_number(
    faces: tuple[Path, list[str]], tmp_path: Path
) -> None:
    data, chosen = faces
    bundle, public = bundle_and_key()
    changed = tmp_path / "faces"
    shutil.copytree(data, changed, symlinks=True)
    base = ["evaluate", "--bundle", str(bundle), "--public-key", str(public), "--no-dlib",
            "--cache", str(tmp_path / "cache"), "--fixed", "--part", "all"]  # fmt: skip
    first = CliRunner().invoke(main, [*base, "--data", str(data), "--report", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    # one image swapped for another person's: same count of images, other content
    image = sorted((changed / "images" / chosen[0]).iterdir())[0]
    target = sorted((changed / "images" / chosen[1]).iterdir())[0].resolve()
    image.unlink()
    image.symlink_to(target)
    second = CliRunner().invoke(
        main, [*base, "--data", str(changed), "--report", str(tmp_path / "b")]
    )
    assert second.exit_code == 0, second.output
    assert len(list((tmp_path / "cache").glob("ours-*.npz"))) == 2
    assert measured(second) != measured(first)  # a genuine pair became an impostor one


def test_fitting_options_are_refused_with_fixed(tmp_path: Path) -> None:
    bundle, public = bundle_and_key()
    base = ["evaluate", "--bundle", str(bundle), "--data", str(tmp_path), "--public-key",
            str(public), "--no-dlib"]  # fmt: skip
    for extra, says in (
        (["--fixed", "--save-thresholds", str(tmp_path / "t.toml")], "--save-thresholds"),
        (["--fixed", "--live-fmr", "1e-3"], "--live-fmr"),
        (["--part", "all"], "--part needs --fixed"),
    ):
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "t.toml").exists()


def test_the_default_report_folder_is_not_the_projects_docs() -> None:
    (report,) = [p for p in main.commands["evaluate"].params if p.name == "report"]
    assert report.default == Path("var/reports/models")


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
