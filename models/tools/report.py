"""Markdown report and ROC / DET plots of an evaluation."""

from pathlib import Path

import numpy as np

from models.tools.evaluate import MODES, Evaluation, PartResult
from models.tools.metrics import ErrorCurve
from models.tools.rates import Rate

TARGETS = {"live_1e-3": 0.03, "live_1e-4": 0.08, "card_1e-3": 0.10, "accuracy": 0.993}


def _plots(part: PartResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"live vs live": part.live, "card photo vs live": part.card}
    where = f"{part.part.name} part, all pairs"
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, c in curves.items():
        ax.semilogx(np.clip(c.fmr, 1e-8, 1), 1 - c.fnmr, label=name)
    ax.set(xlabel="false match rate", ylabel="true match rate", xlim=(1e-7, 1), ylim=(0.5, 1.0),
           title=f"ROC ({where})")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, c in curves.items():
        ax.loglog(np.clip(c.fmr, 1e-8, 1), np.clip(c.fnmr, 1e-5, 1), label=name)
    ax.set(xlabel="false match rate", ylabel="false non-match rate", xlim=(1e-7, 1),
           ylim=(1e-4, 1), title=f"DET ({where})")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "det.png", dpi=110)
    plt.close(fig)


def _fmr(target: float | None) -> str:
    return "-" if target is None else f"{target:.0e}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def rate_text(r: Rate, digits: int = 2) -> str:
    """``value (errors/trials)`` with both 95% intervals, in percent."""
    if not r.trials:
        return "no comparisons"

    def span(interval: tuple[float, float] | None) -> str:
        if interval is None:
            return "none: no errors to resample"
        return f"[{100 * interval[0]:.{digits}f}, {100 * interval[1]:.{digits}f}]"

    return (
        f"{100 * r.value:.{digits}f}% ({r.errors:,}/{r.trials:,}; exact {span(r.exact)}, "
        f"bootstrap {span(r.bootstrap)})"
    )


def _curve_rows(name: str, c: ErrorCurve, fmrs: tuple[float, ...]) -> list[str]:
    rows = []
    for f in fmrs:
        t, fnmr = c.at_fmr(f)
        rows.append(f"| {name} | {f:.0e} | {t:.4f} | {_pct(fnmr)} |")
    return rows


def _measured_rows(part: PartResult) -> list[str]:
    rows = [
        "| mode | distance ≤ | FMR (false matches / impostor comparisons) | "
        "FNMR (misses / genuine comparisons) |",
        "|---|---|---|---|",
    ]
    for mode, m in part.measured.items():
        rows.append(
            f"| {mode} | {m.threshold.distance:.4f} | {rate_text(m.fmr, 4)} | {rate_text(m.fnmr)} |"
        )
    return rows


def write_report(ev: Evaluation, out: Path, bundle_version: str, command: str) -> Path:
    """Write ``out/lfw-report.md``, ``out/roc.png`` and ``out/det.png``."""
    out.mkdir(parents=True, exist_ok=True)
    rep = ev.reported
    _plots(rep, out)
    k = ev.folds
    lines = [
        "# Face models on LFW",
        "",
        f"Bundle `{bundle_version}`, data `{ev.dataset}`: {ev.images} images of "
        f"{ev.identities} identities. Produced by:",
        "",
        f"    {command}",
        "",
        "## Parts (identity-disjoint)",
        "",
        "pairs.txt's folds are identity-disjoint; the set is split by them so that no person "
        "is on both sides.",
        "",
        "| part | images | identities | used for |",
        "|---|---|---|---|",
    ]
    uses = {
        "calibration": "fitting the thresholds (and, outside pairs.txt, the int8 ranges)",
        "heldout": "measuring them",
    }
    for part, identities in ev.parts:
        reported = " (every figure below but the LFW protocol)" if part == rep.part else ""
        lines.append(
            f"| `{part.name}`: {part.description} | {len(part.index):,} | {identities:,} | "
            f"{uses[part.name]}{reported} |"
        )
    if rep.part.name == "all":
        lines.append(
            f"| `all`: every image | {rep.images:,} | {rep.identities:,} | every figure below "
            "but the LFW protocol |"
        )
    lines += [
        "",
        f"## LFW protocol (pairs.txt, {k} identity-disjoint folds)",
        "",
        f"Threshold chosen on the {k - 1} other fold{'s' * (k > 2)}, accuracy on the held-out "
        "fold. lifecert: the pair's first image as the kept reference, the second as the live "
        "probe; dlib: its descriptor on both.",
        "",
        "| pipeline | accuracy (mean ± std) | threshold (mean) | no face found (fallback box) |",
        "|---|---|---|---|",
    ]
    for r in ev.protocol:
        lines.append(
            f"| {r.name} | {_pct(r.accuracies.mean())} ± {_pct(r.accuracies.std())} | "
            f"{r.thresholds.mean():.4f} | {r.failures} |"
        )
    lines += [
        "",
        "LFW images are face-centred: both pipelines take the detected face nearest the "
        "image's centre (the labelled person; the largest face is someone else in some "
        "images), and where a detector found no face they embed a fixed central box, so "
        "every pair is scored. The terminal itself takes the largest face.",
        "",
    ]
    shipped = "The fitted thresholds" if ev.fitted else "The bundle's thresholds (not re-fitted)"
    lines += [
        f"## {shipped} on the `{rep.part.name}` part",
        "",
        "Live vs live: every image's reference template (as kept after a certification) "
        "against every other image's live-probe template (one network pass), both orders. "
        "Card photo: every image of a person with 2+ images degraded to a 102x126 "
        "head-and-shoulders crop at JPEG quality 20 and analysed with "
        "`FacePipeline.card_photo` (JPEG blocks smoothed), against every other live image "
        f"({rep.card_refs:,} card photos; {rep.card_missed} yielded no face).",
        "",
        *_measured_rows(rep),
        "",
        "95% intervals: *exact* is Clopper-Pearson, which treats every comparison as an "
        "independent trial; they are not (each image and person takes part in thousands), so "
        "it is too narrow. *bootstrap* resamples identities with replacement (2,000 "
        "replicates, all comparisons between the drawn identities kept): quote this one. "
        "Genuine comparisons are dominated by the few people with many images.",
        "",
    ]
    lines += [
        "## How they were fitted" if ev.fitted else "## Where the bundle's thresholds come from",
        "",
        "Read off the calibration part's curves at the target FMR; the FNMR written into the "
        "manifest is the held-out part's above."
        if ev.fitted
        else "As signed in its manifest:",
        "",
        "| mode | distance ≤ | target FMR | calibrated on |",
        "|---|---|---|---|",
        *(
            f"| {mode} | {t.distance:.4f} | {_fmr(t.target_fmr)} | {t.calibrated_on} |"
            for mode, t in ev.thresholds.items()
        ),
        "",
    ]
    if ev.fitted is not None:
        lines += [
            "The calibration part's own figures at those thresholds (in-sample, for comparison):",
            "",
            *_measured_rows(ev.fitted),
            "",
        ]
    e_live, t_eer = rep.live.eer()
    e_card, t_ceer = rep.card.eer()
    lines += [
        f"## Curves of the `{rep.part.name}` part: FNMR at fixed FMR",
        "",
        "Each threshold here is read off this part's own curve: what the models can do on it, "
        "not what a shipped threshold gives (that is the table above). "
        f"Live: {rep.live.genuines:,} genuine and {rep.live.impostors:,} impostor comparisons; "
        f"card photo: {rep.card.genuines:,} and {rep.card.impostors:,}.",
        "",
        "| mode | FMR | threshold | FNMR |",
        "|---|---|---|---|",
        *_curve_rows(MODES["live"], rep.live, (1e-3, 1e-4, 1e-5, 1e-6)),
        *_curve_rows("card photo vs live", rep.card, (1e-3, 1e-4)),
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
        f"| FNMR @ FMR 1e-3, live | ≤ 3% | {_pct(rep.live.at_fmr(1e-3)[1])} |",
        f"| FNMR @ FMR 1e-4, live | ≤ 8% | {_pct(rep.live.at_fmr(1e-4)[1])} |",
        f"| FNMR @ FMR 1e-3, card photo | ≤ 10% | {_pct(rep.card.at_fmr(1e-3)[1])} |",
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
        f"## Subgroups of the `{rep.part.name}` part (subgroups.tsv: informal, unverified "
        "annotation)",
        "",
        f"At the live threshold {ev.thresholds['live'].distance:.4f}. These groups are small: "
        "treat the rows as a smoke check, not as evidence of fairness. LFW has very few people "
        "over 80.",
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
