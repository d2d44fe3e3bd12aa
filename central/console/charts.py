"""Small inline SVG charts (no script, no image request): stacked bars and a line."""

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

COLOURS = {"certified": "#2e7d32", "due": "#f9a825", "overdue": "#c62828", "held": "#6a1b9a"}


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[tuple[str, int]]]], title: str, width: int = 640
) -> Markup:
    """One horizontal bar per row, its parts stacked (``(label, [(part, value), ...])``)."""
    label_w, bar_h, gap, top = 170, 18, 6, 28
    height = top + len(rows) * (bar_h + gap) + 24
    biggest = max((sum(v for _, v in parts) for _, parts in rows), default=0) or 1
    scale = (width - label_w - 70) / biggest
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="16" class="title">{escape(title)}</text>',
    ]
    for i, (label, parts) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label[:26])}</text>'
        )
        x = float(label_w)
        for part, value in parts:
            w = value * scale
            if w > 0:
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{COLOURS.get(part, "#455a64")}"><title>{escape(label)} {part}: '
                    f"{value}</title></rect>"
                )
            x += w
        total = sum(v for _, v in parts)
        out.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{total}</text>')
    legend_y = height - 6
    lx = label_w
    for part in dict.fromkeys(p for _, parts in rows for p, _ in parts):
        out.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="10" height="10" '
            f'fill="{COLOURS.get(part, "#455a64")}"/><text x="{lx + 14}" y="{legend_y}">'
            f"{escape(part)}</text>"
        )
        lx += 90
    out.append("</svg>")
    return Markup("".join(out))


def line(points: Sequence[tuple[str, float]], title: str, width: int = 640) -> Markup:
    """A line of percentages (0-100) over labelled points (months)."""
    height, left, top, bottom = 200, 40, 28, 30
    plot_w, plot_h = width - left - 40, height - top - bottom
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="16" class="title">{escape(title)}</text>',
    ]
    for pct in (0, 50, 100):
        y = top + plot_h * (1 - pct / 100)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}" stroke="#ccc"/>'
            f'<text x="{left - 4}" y="{y + 4}" text-anchor="end">{pct}%</text>'
        )
    if not points:
        out.append(f'<text x="{left + 10}" y="{top + plot_h / 2}">no history yet</text>')
    step = plot_w / max(len(points) - 1, 1)
    xy = [
        (left + i * step, top + plot_h * (1 - max(0.0, min(100.0, v)) / 100))
        for i, (_, v) in enumerate(points)
    ]
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>')
    for (x, y), (label, value) in zip(xy, points, strict=True):
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0"><title>{escape(label)}: '
            f'{value:.1f}%</title></circle><text x="{x:.1f}" y="{height - 10}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append("</svg>")
    return Markup("".join(out))
