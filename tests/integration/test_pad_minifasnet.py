"""The bundle's PAD slot with the real MiniFASNet, on the three Silent-Face sample images.

Three images prove that the slot works end to end (conversion, bundle, plugin,
session); they cannot measure the detector's error rates.
"""

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from edge.adapters.devices import PipelineFaces
from edge.session.core import Session
from edge.session.ports import Ports
from edge.session.settings import SessionSettings
from hal.camera.replay import ReplayCamera
from models.bundle import load_bundle, read_manifest, write_manifest
from models.cli import main as models_cli
from models.errors import BundleError
from models.pipeline import FacePipeline
from tests.integration.test_models_pipeline import bundle_and_key
from tests.unit.test_session_core import (
    ME,
    Cards,
    Clock,
    Display,
    Recorder,
    References,
    Voice,
    card,
)

pytestmark = pytest.mark.integration
pytest.importorskip("onnx", reason="onnx (build extra) not installed: it converts MiniFASNet")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pad_bundle(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the built bundle with the reference MiniFASNet added by ``lifecert-models``."""
    onnx_dir = shared_data / "models" / "reference" / "minifasnet"
    if not any(onnx_dir.glob("*.onnx")):
        pytest.skip(f"no MiniFASNet ONNX files in {onnx_dir}")
    bundle, public = bundle_and_key()
    signing = public.with_name("sign.key")
    if not signing.is_file():
        pytest.skip(f"no model-signing key beside {public} to re-sign the bundle")
    copy = tmp_path_factory.mktemp("pad") / "bundle"
    shutil.copytree(bundle, copy)
    args = ["add-pad", str(copy), "--minifasnet", str(onnx_dir)]
    args += ["--signing-key", str(signing), "--public-key", str(public)]
    result = CliRunner().invoke(models_cli, args)
    assert result.exit_code == 0, result.output
    assert "pad minifasnet" in result.output
    assert "threshold pad: score >= 0.5000 (model default" in result.output
    return copy, public


@pytest.fixture(scope="module")
def pipe(pad_bundle: tuple[Path, Path]) -> Iterator[FacePipeline]:
    with FacePipeline.open(*pad_bundle) as p:
        yield p


def sample(data: Path, name: str) -> Path:
    path = data / "pad" / "minivision" / f"image_{name}.jpg"
    if not path.is_file():
        pytest.skip(f"PAD sample {path} not found")
    return path


def threshold(pipe: FacePipeline) -> float:
    """The PAD threshold signed into the bundle (not a setting)."""
    return pipe.manifest.score_threshold("pad").score


def test_bundle_verifies_with_the_pad_model_and_ships_no_onnx(
    pad_bundle: tuple[Path, Path],
) -> None:
    manifest, contents = load_bundle(*pad_bundle)
    spec = manifest.models["pad"]
    assert spec.type == "minifasnet" and spec.options["scales"] == [2.7, 4.0]
    assert contents["pad"][4:8] == b"TFL3"
    assert not list(pad_bundle[0].glob("*.onnx"))
    signed = manifest.score_threshold("pad")
    assert signed.metric == "live_probability" and signed.scorer == spec.identity
    assert (
        manifest.thresholds["live"]
        == read_manifest(bundle_and_key()[0], pad_bundle[1]).thresholds["live"]
    )


def test_a_pad_model_without_its_signed_threshold_is_refused(
    pad_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(pad_bundle[0], copy)
    manifest = read_manifest(copy, pad_bundle[1])
    unsigned = {k: t for k, t in manifest.thresholds.items() if k != "pad"}
    write_manifest(copy, manifest.model_copy(update={"thresholds": unsigned}),
                   pad_bundle[1].with_name("sign.key"))  # fmt: skip
    with (
        FacePipeline.open(copy, pad_bundle[1]) as pipe,
        pytest.raises(BundleError, match="no pad threshold"),
    ):
        PipelineFaces(pipe)


@pytest.mark.parametrize(("name", "live"), [("T1", True), ("F1", False), ("F2", False)])
def test_live_face_scores_live_and_attacks_score_spoof(
    pipe: FacePipeline, shared_data: Path, name: str, live: bool
) -> None:
    image = Image.open(sample(shared_data, name)).convert("RGB")
    (detection,) = pipe.detect(image)
    score = pipe.pad.live_score(image, detection)
    assert (score >= threshold(pipe)) is live, score


def run_session(pipe: FacePipeline, frames: Path) -> tuple[str | None, float | None]:
    """One face attempt on a still replayed by the camera: (reason, PAD score)."""
    display = Display()
    # image_F1's printed face is turned 30 degrees: widen the capture gate so PAD decides.
    settings = SessionSettings(attempts=1, capture_s=5, challenge_s=0.5, max_pose_deg=35)
    with ReplayCamera(frames, fps=50, loop=True) as camera:
        ports = Ports(
            cards=Cards(card()),
            camera=camera,
            faces=PipelineFaces(pipe),
            references=References(face=ME),
            recorder=Recorder(display),
            voice=Voice(),
            display=display,
            clock=Clock(),
        )
        outcome = Session(ports, settings, "term-pad1", random.Random(1)).certify(card())
    assert outcome.decision == "refer"
    (attempt,) = outcome.attempts
    return attempt.reason, attempt.pad_score


@pytest.mark.parametrize("name", ["F1", "F2"])
def test_session_with_the_pad_model_refuses_a_spoof_frame(
    pipe: FacePipeline, shared_data: Path, tmp_path: Path, name: str
) -> None:
    (tmp_path / "0.jpg").symlink_to(sample(shared_data, name))
    reason, score = run_session(pipe, tmp_path)
    assert reason == "passive liveness check failed"
    assert score is not None and score < threshold(pipe)


def test_session_lets_the_live_face_on_to_the_challenges(
    pipe: FacePipeline, shared_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "0.jpg").symlink_to(sample(shared_data, "T1"))
    reason, score = run_session(pipe, tmp_path)
    assert reason == "challenge not done"  # a still cannot turn its head
    assert score is not None and score >= threshold(pipe)
