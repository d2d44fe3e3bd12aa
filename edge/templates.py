"""Reference templates for the session: central's last certified template, cached encrypted.

``References`` implements the session's port: it asks central (when a
``fetch`` is given and answers in time), keeps what it gets in the encrypted
:class:`~edge.cache.TemplateCache`, and falls back to the cache when central
is unreachable. Vein templates enrolled at this terminal live in the same cache.
"""

import logging
from collections.abc import Callable

import numpy as np

from edge.cache import TemplateCache

log = logging.getLogger(__name__)

Fetch = Callable[[str], bytes | None]
"""Ask central for a retiree's last certified template (clear bytes) or ``None`` if there is
none; raises ``edge.session.ports.UnknownRetireeError`` for someone not in the roster,
``TimeoutError`` or ``OSError`` when central cannot be asked."""


def to_template(data: bytes) -> np.ndarray:
    """Bytes of a face template (little-endian float32[128]) as an array."""
    template = np.frombuffer(data, "<f4").astype(np.float32)
    if template.shape != (128,):
        raise ValueError(f"a face template has 128 values, got {template.size}")
    return template


class References:
    """The session's ``References`` port over the cache and, optionally, central."""

    def __init__(self, cache: TemplateCache, fetch: Fetch | None = None) -> None:
        self.cache, self.fetch = cache, fetch

    def face(self, retiree_id: str) -> np.ndarray | None:
        if self.fetch is not None:
            try:
                data = self.fetch(retiree_id)
            except (TimeoutError, OSError) as exc:
                log.warning("central cannot be asked for a template (%s): using the cache", exc)
            else:
                if data is not None:
                    self.cache.put(retiree_id, "face", data)
                    return to_template(data)
        cached = self.cache.get(retiree_id, "face")
        return None if cached is None else to_template(cached)

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None:
        self.cache.put(retiree_id, "face", np.asarray(template, "<f4").tobytes())

    def vein(self, retiree_id: str) -> bytes | None:
        return self.cache.get(retiree_id, "vein")

    def enrol_vein(self, retiree_id: str, template: bytes) -> None:
        self.cache.put(retiree_id, "vein", template)
