"""Degrade a face image like a resident-ID-card photo: head and shoulders, 102x126, heavy JPEG."""

import io

from PIL import Image

CARD_SIZE = (102, 126)
JPEG_QUALITY = 20
BACKGROUND = (200, 200, 200)


def card_photo(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """Head-and-shoulders crop around the face ``box``, shrunk to 102x126, JPEG quality 20."""
    x0, y0, x1, y1 = box
    width = 1.9 * (x1 - x0)
    height = width * CARD_SIZE[1] / CARD_SIZE[0]
    cx, top = (x0 + x1) / 2, y0 - 0.45 * (y1 - y0)
    left = round(cx - width / 2)
    upper = round(top)
    canvas = Image.new("RGB", (round(width), round(height)), BACKGROUND)
    canvas.paste(image, (-left, -upper))
    small = canvas.resize(CARD_SIZE, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=2)
    buf.seek(0)
    return Image.open(buf).convert("RGB")
