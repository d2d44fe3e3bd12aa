"""The face pipeline on real images from ../shared/data with the built bundle (`make models`)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from models.bundle import SIGNATURE
from models.cli import main as models_cli
from models.errors import BundleError
from models.pipeline import FacePipeline
from models.tools import lfw
from models.tools.cardphoto import CARD_SIZE, card_photo
from models.tools.sources import MEDIAPIPE_WHEEL
from protocol.signing import key_fingerprint, load_public_key, unverified_header

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def bundle_and_key() -> tuple[Path, Path]:
    """The built bundle and the public key that signed it; skip when there is none."""
    bundle = Path(os.environ.get("LIFECERT_MODEL_BUNDLE", REPO / "var" / "models"))
    if not (bundle / SIGNATURE).is_file():
        pytest.skip(
            f"no model bundle at {bundle}: run `make models` (or set LIFECERT_MODEL_BUNDLE)"
        )
    kid = unverified_header((bundle / SIGNATURE).read_text().strip())["kid"]
    candidates = [
        os.environ.get("LIFECERT_MODEL_PUBKEY", ""),
        REPO / "var" / "models-dev" / "sign.pub.pem",
        REPO / "fleet" / "models" / "sign.pub.pem",
    ]
    for cand in map(Path, filter(None, candidates)):
        if cand.is_file() and key_fingerprint(load_public_key(cand)) == kid:
            return bundle, cand
    pytest.skip(f"no public key for the bundle's kid {kid[:12]}: set LIFECERT_MODEL_PUBKEY")


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    bundle, key = bundle_and_key()
    with FacePipeline.open(bundle, key, threads=1) as p:
        yield p


@pytest.fixture(scope="module")
def dlib_pipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FacePipeline]:
    """A bundle with dlib's ResNet as the embedder (``build --embedder dlib``)."""
    pytest.importorskip("face_recognition_models", reason="build extra not installed")
    wheel = REPO / "var" / "cache" / "wheels" / MEDIAPIPE_WHEEL
    if not wheel.is_file():
        pytest.skip(f"{wheel} not cached: run `make models` once (it fetches the wheel)")
    tmp = tmp_path_factory.mktemp("dlib")
    args = ["build", "--out", str(tmp / "bundle"), "--signing-key", str(tmp / "sign.key"),
            "--create-key", "--mediapipe-wheel", str(wheel), "--embedder", "dlib"]  # fmt: skip
    result = CliRunner().invoke(models_cli, args)
    assert result.exit_code == 0, result.output
    with FacePipeline.open(tmp / "bundle", tmp / "sign.pub.pem", threads=1) as p:
        yield p


@pytest.fixture(scope="module")
def faces(shared_data: Path) -> lfw.FaceSet:
    return lfw.load(shared_data / "faces" / "lfw")


def _img(faces: lfw.FaceSet, name: str, number: int) -> Image.Image:
    return Image.open(faces.paths[faces.index()[name, number]]).convert("RGB")


def test_genuine_pairs_match_and_impostor_pairs_do_not(
    pipe: FacePipeline, faces: lfw.FaceSet
) -> None:
    pairs = lfw.read_pairs(faces)
    fold0 = [p for p in pairs if p.fold == 0]
    genuine = [p for p in fold0 if p.same][:20]
    impostor = [p for p in fold0 if not p.same][:20]

    def matched(p: lfw.Pair) -> bool:
        a = pipe.analyse(Image.open(faces.paths[p.a]))
        b = pipe.analyse(Image.open(faces.paths[p.b]))
        assert a is not None and b is not None
        return pipe.compare(a.template, b.template, "live").matched

    assert sum(map(matched, genuine)) >= 16  # dlib's FNMR at FMR 1e-4 was ~17-22% on LFW
    assert not any(map(matched, impostor))


def test_images_without_faces_yield_no_detection(pipe: FacePipeline, shared_data: Path) -> None:
    veins = sorted((shared_data / "vein" / "campus64").glob("*.bmp"))[:3]
    images = [Image.open(v).convert("RGB").resize((320, 240)) for v in veins]
    images.append(Image.new("RGB", (640, 480), (128, 128, 128)))
    for image in images:
        assert pipe.detect(image) == []
        assert pipe.analyse(image) is None


def test_two_faces_are_reported_as_two(pipe: FacePipeline, faces: lfw.FaceSet) -> None:
    left, right = _img(faces, "Aaron_Peirsol", 1), _img(faces, "Colin_Powell", 1)
    both = Image.new("RGB", (500, 250))
    both.paste(left, (0, 0))
    both.paste(right, (250, 0))
    dets = pipe.detect(both)
    assert len(dets) == 2
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in dets)
    assert centres[0] < 250 < centres[1]
    face = pipe.analyse(both)
    assert face is not None and face.quality.faces == 2


def test_a_face_in_a_camera_frame(pipe: FacePipeline, shared_data: Path) -> None:
    frame = Image.open(shared_data / "pad" / "minivision" / "image_T1.jpg").convert("RGB")
    face = pipe.analyse(frame)
    assert face is not None
    assert face.detection.score > 0.5
    assert face.landmarks.points.shape == (468, 3)
    assert face.template.shape == (128,)
    assert 0 < face.quality.brightness < 255


@pytest.mark.slow
def test_conversion_parity_with_dlib_on_real_chips(
    dlib_pipe: FacePipeline, faces: lfw.FaceSet
) -> None:
    dlib = pytest.importorskip("dlib", reason="dlib-bin (dev extra) not installed")
    import face_recognition_models as frm

    resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    cosines = []
    for path in faces.paths[::48][:210]:
        face = dlib_pipe.analyse(Image.open(path))
        if face is None:
            continue
        assert face.chip.shape == (150, 150, 3)  # dlib's chip geometry, owned by its embedder
        ref = np.array(resnet.compute_face_descriptor(face.chip))
        ours = dlib_pipe.embedder.network(face.chip)
        cosines.append(ref @ ours / np.linalg.norm(ref) / np.linalg.norm(ours))
    assert len(cosines) >= 200
    assert np.median(cosines) >= 0.999
    assert min(cosines) >= 0.995


def test_mesh_five_points_agree_with_dlibs_predictor(
    pipe: FacePipeline, faces: lfw.FaceSet
) -> None:
    dlib = pytest.importorskip("dlib", reason="dlib-bin (dev extra) not installed")
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    errors = []
    for path in faces.paths[::400]:
        image = Image.open(path).convert("RGB")
        rects = detector(np.asarray(image), 1)
        face = pipe.analyse(image)
        if not rects or face is None:
            continue
        shape = predictor(np.asarray(image), rects[0])
        theirs = np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()])
        ours = face.landmarks.five_points()
        eye_span = np.linalg.norm(theirs[0] - theirs[2])
        errors.append(np.linalg.norm(ours - theirs, axis=1).mean() / eye_span)
    assert len(errors) >= 15
    assert np.median(errors) < 0.1


def test_card_photo_of_a_person_matches_another_live_image(
    pipe: FacePipeline, faces: lfw.FaceSet
) -> None:
    live = _img(faces, "Colin_Powell", 1)
    det = pipe.detect(live)[0]
    card = card_photo(live, det.box)
    assert card.size == CARD_SIZE
    ref = pipe.card_photo(card)
    probe = pipe.analyse(_img(faces, "Colin_Powell", 2))
    other = pipe.analyse(_img(faces, "Aaron_Peirsol", 1))
    assert ref is not None and probe is not None and other is not None
    assert pipe.compare(probe.template, ref.template, "card_photo").matched
    assert not pipe.compare(other.template, ref.template, "card_photo").matched


def test_mirrored_face_mirrors_yaw_and_roll(pipe: FacePipeline, faces: lfw.FaceSet) -> None:
    image = _img(faces, "Colin_Powell", 3)
    a = pipe.analyse(image)
    b = pipe.analyse(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert a is not None and b is not None
    assert abs(a.quality.pose.yaw) > 10  # a visibly turned head
    assert b.quality.pose.yaw == pytest.approx(-a.quality.pose.yaw, abs=3)
    assert b.quality.pose.roll == pytest.approx(-a.quality.pose.roll, abs=2)
    assert b.quality.pose.pitch == pytest.approx(a.quality.pose.pitch, abs=5)


def test_quality_sees_darkness_and_blur(pipe: FacePipeline, faces: lfw.FaceSet) -> None:
    image = _img(faces, "Colin_Powell", 1)
    base = pipe.analyse(image)
    dark = pipe.analyse(Image.eval(image, lambda v: v // 3))
    blurred = pipe.analyse(image.filter(ImageFilter.GaussianBlur(3)))
    assert base is not None and dark is not None and blurred is not None
    assert dark.quality.brightness < base.quality.brightness / 2
    assert blurred.quality.sharpness < base.quality.sharpness / 3


def test_a_tampered_bundle_is_refused_before_loading(tmp_path: Path) -> None:
    bundle, key = bundle_and_key()
    copy = tmp_path / "bundle"
    copy.mkdir()
    for f in bundle.iterdir():
        if f.suffix == ".tflite" and f.name != "face_detection_short_range.tflite":
            (copy / f.name).symlink_to(f)
        else:
            shutil.copy(f, copy / f.name)
    FacePipeline.open(copy, key).close()
    data = bytearray((copy / "face_detection_short_range.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "face_detection_short_range.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="detector model does not match its SHA-256"):
        FacePipeline.open(copy, key)
