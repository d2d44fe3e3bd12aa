"""``python -m models.vein evaluate``: EER, FNMR at FMR 1e-3, ROC PNG and Markdown report."""

from pathlib import Path

import click

from models.vein.evaluate import evaluate, load_images, plot_roc, report
from models.vein.features import VeinParams
from models.vein.match import CH, CW
from protocol.cli import friendly_errors
from protocol.errors import ConfigError


@click.group()
def main() -> None:
    """Finger-vein matcher tools."""


@main.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("reports/vein"), show_default=True
)
@click.option("--fingers", type=int, default=0, help="use only the first N fingers (0: all)")
@click.option("--sigma", type=float, default=VeinParams.sigma, show_default=True)
@click.option("--ch", type=int, default=CH, show_default=True, help="vertical search (pixels)")
@click.option("--cw", type=int, default=CW, show_default=True, help="horizontal search (pixels)")
@friendly_errors
def evaluate_cmd(*, data: Path, out: Path, fingers: int, sigma: float, ch: int, cw: int) -> None:
    """Score every pair of DATA/FXXYY.bmp and write report.md and roc.png to --out.

    Example: python -m models.vein evaluate ../shared/data/vein/campus64 --out reports/vein
    """
    try:
        images, labels, _ = load_images(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}: pass the folder holding the captures") from None
    if fingers:
        keep = labels <= sorted(set(labels.tolist()))[:fingers][-1]
        images = [img for img, k in zip(images, keep, strict=True) if k]
        labels = labels[keep]
    params = VeinParams(sigma=sigma)
    click.echo(f"scoring {len(images)} images ({len(set(labels.tolist()))} fingers)...", err=True)
    result = evaluate(images, labels, params, ch, cw)
    out.mkdir(parents=True, exist_ok=True)
    plot_roc(result, out / "roc.png")
    (out / "report.md").write_text(report(result, str(data), params, ch, cw), encoding="utf-8")
    r = result.rates
    click.echo(
        f"EER {r.eer * 100:.2f}%  FNMR@FMR{r.fmr_target:g} {r.fnmr_at_fmr * 100:.2f}%  "
        f"threshold {r.threshold_at_fmr:.4f}  -> {out / 'report.md'}"
    )
