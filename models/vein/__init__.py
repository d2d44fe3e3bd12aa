"""Finger-vein matching on the host: finger region, maximum-curvature veins, Miura match.

``extract(image)`` turns an 8-bit NIR finger image into a binary vein template;
``match(reference, probe)`` scores two templates in [0, 0.5] (higher = same finger).
numpy and scipy only, so it runs on the terminal. The threshold a match needs is the
signed model bundle's ``vein`` threshold, calibrated for :func:`scorer`.
"""

from models.vein.features import VeinParams, extract
from models.vein.match import CH, CW, match
from models.vein.template import pack, unpack

#: bump when a code change moves the scores (a calibrated threshold then no longer holds)
REVISION = 1


def scorer(params: VeinParams | None = None, ch: int = CH, cw: int = CW) -> str:
    """The matcher and every parameter its scores depend on: a vein threshold holds for
    exactly this string (the manifest's ``thresholds.vein.scorer``)."""
    p = params or VeinParams()
    return (
        f"models.vein r{REVISION}: maximum curvature sigma {p.sigma:g} edge {p.edge_search:g} "
        f"{p.height}x{p.width}, Miura ch {ch} cw {cw}"
    )


__all__ = ["VeinParams", "extract", "match", "pack", "scorer", "unpack"]
