"""Finger-vein matching on the host: finger region, maximum-curvature veins, Miura match.

``extract(image)`` turns an 8-bit NIR finger image into a binary vein template;
``match(reference, probe)`` scores two templates in [0, 0.5] (higher = same finger).
numpy and scipy only, so it runs on the terminal.
"""

from models.vein.features import VeinParams, extract
from models.vein.match import match
from models.vein.template import pack, unpack

__all__ = ["VeinParams", "extract", "match", "pack", "unpack"]
