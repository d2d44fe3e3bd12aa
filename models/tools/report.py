"""Markdown report and ROC / DET plots of an evaluation."""

from pathlib import Path

import numpy as np

from models.tools.evaluate import Evaluation
from models.tools.metrics import ErrorCurve

TARGETS = {"live_1e-3": 0.03, "live_1e-4": 0.08, "card_1e-3": 0.10, "accuracy": 0.993}


def _plots(ev: Evaluation, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"live vs live": ev.live, "card photo vs live": ev.card}
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, c in curves.items():
        ax.semilogx(np.clip(c.fmr, 1e-8, 1), 1 - c.fnmr, label=name)
    ax.set(xlabel="false match rate", ylabel="true match rate", xlim=(1e-7, 1), ylim=(0.5, 1.0),
           title="ROC (all pairs)")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, c in curves.items():
        ax.loglog(np.clip(c.fmr, 1e-8, 1), np.clip(c.fnmr, 1e-5, 1), label=name)
    ax.set(xlabel="false match rate", ylabel="false non-match rate", xlim=(1e-7, 1),
           ylim=(1e-4, 1), title="DET (all pairs)")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "det.png", dpi=110)
    plt.close(fig)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _curve_rows(name: str, c: ErrorCurve, fmrs: tuple[float, ...]) -> list[str]:
    rows = []
    for f in fmrs:
        t, fnmr = c.at_fmr(f)
        rows.append(f"| {name} | {f:.0e} | {t:.4f} | {_pct(fnmr)} |")
    return rows


def write_report(ev: Evaluation, out: Path, bundle_version: str, command: str) -> Path:
    """Write ``out/lfw-report.md``, ``out/roc.png`` and ``out/det.png``."""
    out.mkdir(parents=True, exist_ok=True)
    _plots(ev, out)
    lines = [
        "# Face models on LFW",
        "",
        f"Bundle `{bundle_version}`, data `{ev.dataset}`: {ev.images} images of "
        f"{ev.identities} identities. Produced by:",
        "",
        f"    {command}",
        "",
        "## LFW protocol (pairs.txt, 8 identity-disjoint folds)",
        "",
        "Threshold chosen on the 7 other folds, accuracy on the held-out fold. lifecert: the "
        "pair's first image as the kept reference, the second as the live probe; dlib: its "
        "descriptor on both.",
        "",
        "| pipeline | accuracy (mean ± std) | threshold (mean) | no face found (fallback box) |",
        "|---|---|---|---|",
    ]
    for r in ev.protocol:
        lines.append(
            f"| {r.name} | {_pct(r.accuracies.mean())} ± {_pct(r.accuracies.std())} | "
            f"{r.thresholds.mean():.4f} | {r.failures} |"
        )
    e_live, t_eer = ev.live.eer()
    e_card, t_ceer = ev.card.eer()
    lines += [
        "",
        "LFW images are face-centred: both pipelines take the detected face nearest the "
        "image's centre (the labelled person; the largest face is someone else in some "
        "images), and where a detector found no face they embed a fixed central box, so "
        "every pair is scored. The terminal itself takes the largest face.",
        "",
        "## All pairs: FNMR at fixed FMR",
        "",
        "Live vs live: every image's reference template (as kept after a certification) "
        "against every other image's live-probe template (one network pass), both orders: "
        f"same person genuine ({ev.live.genuines:,}), cross-identity impostor "
        f"({ev.live.impostors:,}). Card photo: every image of a "
        f"person with 2+ images ({ev.card_refs:,}) degraded to a 102x126 head-and-shoulders "
        "crop at JPEG quality 20 and analysed with `FacePipeline.card_photo` (JPEG blocks "
        "smoothed), against every other live image "
        f"({ev.card.genuines:,} genuine, {ev.card.impostors:,} impostor comparisons; "
        f"{ev.card_missed} card photos yielded no face).",
        "",
        "| mode | FMR | threshold | FNMR |",
        "|---|---|---|---|",
        *_curve_rows("live vs live", ev.live, (1e-3, 1e-4, 1e-5, 1e-6)),
        *_curve_rows("card photo vs live", ev.card, (1e-3, 1e-4)),
        "",
        f"EER: live {_pct(e_live)} (threshold {t_eer:.4f}), card photo {_pct(e_card)} "
        f"(threshold {t_ceer:.4f}).",
        "",
        "![ROC](roc.png) ![DET](det.png)",
        "",
        "## Targets",
        "",
        "| target | wanted | measured |",
        "|---|---|---|",
        f"| LFW accuracy | ≥ {_pct(TARGETS['accuracy'])} and ≥ dlib's | "
        + ", ".join(f"{r.name.split(' ')[0]} {_pct(r.accuracies.mean())}" for r in ev.protocol)
        + " |",
        f"| FNMR @ FMR 1e-3, live | ≤ 3% | {_pct(ev.live.at_fmr(1e-3)[1])} |",
        f"| FNMR @ FMR 1e-4, live | ≤ 8% | {_pct(ev.live.at_fmr(1e-4)[1])} |",
        f"| FNMR @ FMR 1e-3, card photo | ≤ 10% | {_pct(ev.card.at_fmr(1e-3)[1])} |",
        "",
    ]
    if ev.parity is not None:
        p = ev.parity
        lines += [
            "## Conversion parity (dlib ResNet -> TFLite)",
            "",
            f"dlib's own chips of {len(p)} images through dlib-bin's descriptor and through the "
            f"converted TFLite model: cosine similarity median {np.median(p):.7f}, minimum "
            f"{p.min():.7f}, {(p < 0.999).sum()} below 0.999.",
            "",
        ]
    lines += [
        "## Calibrated thresholds (written into the bundle manifest)",
        "",
        "| mode | distance ≤ | target FMR | FNMR there | calibrated on |",
        "|---|---|---|---|---|",
    ]
    for mode, t in ev.thresholds.items():
        lines.append(
            f"| {mode} | {t.distance:.4f} | {t.target_fmr:.0e} | {_pct(t.fnmr_at_target or 0)} | "
            f"{t.calibrated_on} |"
        )
    lines += [
        "",
        "## Subgroups (subgroups.tsv: informal, unverified annotation)",
        "",
        "At the live threshold above. These groups are small: treat the rows as a smoke "
        "check, not as evidence of fairness. LFW has very few people over 80.",
        "",
        "| group | identities | images | genuine pairs | FNMR | impostor pairs | FMR |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in ev.subgroups:
        lines.append(
            f"| {s['group']} | {s['identities']} | {s['images']} | {s['genuine_pairs']:,} | "
            f"{_pct(float(s['fnmr']))} | {s['impostor_pairs']:,} | {float(s['fmr']):.2e} |"  # type: ignore[arg-type]
        )
    lines += [
        "",
        "LFW is news photographs of public figures: a sanity benchmark, not proof of fitness "
        "for retirees at a kiosk camera.",
        "",
    ]
    path = out / "lfw-report.md"
    path.write_text("\n".join(lines))
    return path
