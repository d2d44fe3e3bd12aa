"""Card photo decoding: JPEG/BMP as delivered by some readers, WLT through a vendor library.

The resident-ID photo is 1,024 bytes of the licensed WLT format, which only
vendor libraries decode. ``WltLibrary`` adapts such a library through ctypes:
it must export ``int <function>(const char *wlt, char *bmp, int flag)`` that
writes a 102x126 24-bit BMP (38,862 bytes) and returns 1 on success (the
common ``unpack(src, dst, 602)`` shape). Readers that decode on board deliver
JPEG or BMP bytes instead; those are recognised by their magic numbers.
Without a decoder the photo is unavailable and the reason says so.
"""

import ctypes
import io
import logging
from pathlib import Path
from typing import Final

import numpy as np

from hal.errors import BackendUnavailableError

log = logging.getLogger(__name__)

BMP_BYTES: Final = 38_862
_MAGICS: Final = (b"\xff\xd8\xff", b"BM", b"\x89PNG")


class WltLibrary:
    """A vendor WLT decoder loaded with ctypes."""

    def __init__(self, path: Path, function: str = "unpack", flag: int = 602) -> None:
        if not path.exists():
            raise BackendUnavailableError(
                f"WLT decoder library {path} does not exist: install the reader vendor's "
                "library or remove hal.id_card.wlt_library"
            )
        try:
            lib = ctypes.CDLL(str(path))
            self._func = getattr(lib, function)
        except (OSError, AttributeError) as exc:
            raise BackendUnavailableError(
                f"WLT decoder {path} cannot be used ({exc}): check hal.id_card.wlt_library "
                "and hal.id_card.wlt_function"
            ) from None
        self._func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        self._func.restype = ctypes.c_int
        self._flag = flag
        self.path = path

    def to_bmp(self, wlt: bytes) -> bytes | None:
        """The BMP bytes for ``wlt``, or None when the library reports failure."""
        out = ctypes.create_string_buffer(BMP_BYTES)
        status = self._func(wlt, out, self._flag)
        return out.raw if status == 1 else None


def _image(data: bytes) -> np.ndarray:
    """RGB uint8 array of a JPEG/BMP/PNG byte string (raises ``ValueError`` when unreadable)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError("Pillow is not installed (pip install 'lifecert[edge]')") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image data cannot be decoded: {exc}") from None


def decode_photo(block: bytes, wlt: WltLibrary | None) -> tuple[np.ndarray | None, str | None]:
    """``(rgb, None)`` when the photo block can be decoded, else ``(None, reason)``."""
    if not block:
        return None, "the reader delivered no photo"
    try:
        if block.startswith(_MAGICS):
            return _image(block), None
        if wlt is None:
            return None, (
                "the card photo is in the licensed WLT format and no decoder is configured "
                "(set hal.id_card.wlt_library to the reader vendor's library)"
            )
        bmp = wlt.to_bmp(block)
        if bmp is None:
            return None, f"the WLT decoder {wlt.path.name} rejected the photo"
        return _image(bmp), None
    except ValueError as exc:
        log.warning("card photo unreadable: %s", exc)
        return None, f"the card photo cannot be decoded: {exc}"
