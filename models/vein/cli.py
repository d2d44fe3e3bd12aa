"""``python -m models.vein evaluate``: the vein threshold fitted on one part of the fingers
and measured on the others (or the signed bundle's threshold measured), ROC PNG and
Markdown report."""

import shlex
import sys
from pathlib import Path
from typing import Literal

import click

from common.cli import friendly_errors
from common.errors import ConfigError
from models.vein import scorer
from models.vein.evaluate import evaluate, load_images, plot_roc, report
from models.vein.features import VeinParams
from models.vein.match import CH, CW


@click.group()
def main() -> None:
    """Finger-vein matcher tools."""


@main.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/reports/vein"),
    show_default=True,
    help="Folder for report.md and roc.png (the project's own: reports/vein).",
)
@click.option("--fingers", type=int, default=0, help="use only the first N fingers (0: all)")
@click.option("--sigma", type=float, default=VeinParams.sigma, show_default=True)
@click.option("--ch", type=int, default=CH, show_default=True, help="vertical search (pixels)")
@click.option("--cw", type=int, default=CW, show_default=True, help="horizontal search (pixels)")
@click.option("--fmr", type=float, help="Fitting: the target FMR [1e-3].")
@click.option(
    "--save-threshold",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fitting: write the threshold here (models/thresholds.toml feeds every build).",
)
@click.option(
    "--fixed",
    is_flag=True,
    help="Measure the signed bundle's vein threshold (--bundle, --public-key); fit nothing.",
)
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --fixed: the model bundle whose vein threshold is measured.",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --fixed: the model-signing public key that verifies --bundle.",
)
@click.option(
    "--part",
    type=click.Choice(["heldout", "calibration", "all"]),
    help="With --fixed: the part of DATA to measure on (default heldout; all: for captures "
    "none of which the threshold was fitted on).",
)
@friendly_errors
def evaluate_cmd(
    *,
    data: Path,
    out: Path,
    fingers: int,
    sigma: float,
    ch: int,
    cw: int,
    fmr: float | None,
    save_threshold: Path | None,
    fixed: bool,
    bundle: Path | None,
    public_key: Path | None,
    part: Literal["heldout", "calibration", "all"] | None,
) -> None:
    """Score every pair of DATA/FXXYY.bmp within each part and write report.md and roc.png.

    The fingers are split by number: the threshold is fitted at the target FMR on the
    first half (calibration) and measured on the others (held out), with 95% intervals.
    With --fixed the signed bundle's vein threshold is measured instead.

    Example: python -m models.vein evaluate ../shared/data/vein/campus64 --fixed
    --bundle var/models --public-key var/models-dev/sign.pub.pem
    """
    params = VeinParams(sigma=sigma)
    threshold = None
    if fixed:
        if fmr is not None or save_threshold is not None:
            raise click.UsageError("--fmr and --save-threshold fit a threshold: not with --fixed")
        if bundle is None or public_key is None:
            raise click.UsageError("--fixed needs --bundle and --public-key")
        from models.bundle import read_manifest

        signed = read_manifest(bundle, public_key).score_threshold("vein")
        if signed.scorer != scorer(params, ch, cw):
            raise ConfigError(
                f"the bundle's vein threshold holds for {signed.scorer!r}, not for "
                f"{scorer(params, ch, cw)!r}: drop --sigma/--ch/--cw or fit a new threshold"
            )
        threshold = signed.score
    elif part is not None or bundle is not None or public_key is not None:
        raise click.UsageError("--part, --bundle and --public-key go with --fixed")
    target = 1e-3 if fmr is None else fmr
    if not 0 < target < 1:
        raise click.BadParameter("a target FMR lies between 0 and 1", param_hint="--fmr")
    try:
        images, labels, _ = load_images(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}: pass the folder holding the captures") from None
    if fingers:
        keep = labels <= sorted(set(labels.tolist()))[:fingers][-1]
        images = [img for img, k in zip(images, keep, strict=True) if k]
        labels = labels[keep]
    click.echo(f"scoring {len(images)} images ({len(set(labels.tolist()))} fingers)...", err=True)
    try:
        result = evaluate(
            images, labels, params, ch, cw, fmr_target=target,
            fixed=None if threshold is None else (part or "heldout", threshold),
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"{data}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    plot_roc(result, out / "roc.png")
    command = "python -m models.vein " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = report(result, str(data), params, ch, cw, command)
    (out / "report.md").write_text(text, encoding="utf-8")
    m = result.reported
    click.echo(f"report written to {out / 'report.md'}")
    how = "the bundle's" if fixed else "fitted on the calibration part"
    click.echo(f"threshold score >= {result.threshold:.4f} ({how}) on the {m.name} part:")
    click.echo(f"  FMR  {m.fmr.value * 100:.3f}% ({m.fmr.errors}/{m.fmr.trials})")
    click.echo(f"  FNMR {m.fnmr.value * 100:.3f}% ({m.fnmr.errors}/{m.fnmr.trials})")
    click.echo(f"  EER of the part's own curve {result.rates.eer * 100:.2f}%")
    if save_threshold is not None and result.fitted_on is not None:
        from models import thresholds
        from models.bundle import ScoreThreshold

        calib = result.fitted_on
        fitted = ScoreThreshold(
            metric="miura",
            score=result.threshold,
            scorer=scorer(params, ch, cw),
            target_fmr=target,
            fnmr_at_target=round(m.fnmr.value, 4),
            calibrated_on=f"{data.name} {calib.description} ({len(calib.scores.labels)} "
            f"images), every pair once; FNMR measured on {m.description}",
        )
        thresholds.save(save_threshold, scores={"vein": fitted})
        click.echo(f"threshold saved to {save_threshold}")
    elif not fixed:
        click.echo("threshold not written (--save-threshold writes it)")
