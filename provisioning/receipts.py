"""``lifecert verify-receipt``: check a certification receipt offline against central's
published public key (``protocol.receipts``).

The input is the receipt's text, or a PNG/JPEG photo or screenshot of its QR code
(decoded with OpenCV's QR detector, offline). Images are bounded before they are
decoded: at most ``MAX_FILE`` bytes and ``MAX_PIXELS`` pixels.
"""

import io
import sys
from pathlib import Path

import click

from common.cli import friendly_errors
from common.errors import LifecertError
from protocol import receipts, signing
from protocol.errors import SignatureError

MAX_FILE = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
_IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class ReceiptInputError(LifecertError, ValueError):
    """The input holds no receipt to check; the message says what to give instead."""


def token_of(data: bytes) -> str:
    """The receipt text in ``data``: the text itself, or the QR code in a PNG/JPEG image."""
    if len(data) > MAX_FILE:
        raise ReceiptInputError(f"{len(data)} bytes, at most {MAX_FILE}: give the receipt text")
    if data.startswith(_IMAGES):
        return _decode_qr(data)
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ReceiptInputError(
            "neither receipt text nor a PNG/JPEG image: give the QR code's text or a photo of it"
        ) from None


def _decode_qr(data: bytes) -> str:
    """The text of the one QR code in a PNG/JPEG image (OpenCV, offline)."""
    import cv2  # the camera extra; imported only for images
    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise ReceiptInputError(f"cannot read the image: {exc}") from None
    if width * height > MAX_PIXELS:
        raise ReceiptInputError(f"image {width}x{height} is too large: crop it to the QR code")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ReceiptInputError("cannot decode the image: save it as PNG or JPEG")
    seen = False
    # the classic detector, then the ArUco-based one: each reads some codes the other misses
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        text, points, _ = detector.detectAndDecode(image)
        if text:
            return str(text)
        seen = seen or points is not None
    found = "found but unreadable" if seen else "not found"
    raise ReceiptInputError(f"QR code {found}: photograph it flat, sharp and whole")


def load_keys(paths: tuple[Path, ...]) -> dict[str, signing.Verifier]:
    """Verifiers for central's published PEM public key(s)."""
    keys = []
    for path in paths:
        try:
            keys.append(signing.load_public_key(path))
        except (OSError, ValueError, SignatureError) as exc:
            raise ReceiptInputError(f"--key {path}: cannot load it: {exc}") from None
    return receipts.published_keys(keys)


@click.command("verify-receipt")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--key",
    "key_paths",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    envvar="LIFECERT_RECEIPT_KEY",
    help="central's published public key (PEM); repeat for an older key still in use",
)
@friendly_errors
def verify_receipt_cmd(source: Path, key_paths: tuple[Path, ...]) -> None:
    """Check a certification receipt: its text, or a PNG/JPEG image of its QR code
    (SOURCE ``-``: standard input). Exit 0 and what it certifies if central signed it;
    exit 1 and why not otherwise.

    \b
    Example:
        lifecert verify-receipt receipt.png --key central-sign.pub.pem
        echo "$TOKEN" | lifecert verify-receipt - --key central-sign.pub.pem
    """
    keys = load_keys(key_paths)
    if str(source) == "-":
        data = sys.stdin.buffer.read(MAX_FILE + 1)
    else:
        try:
            with source.open("rb") as stream:
                data = stream.read(MAX_FILE + 1)
        except OSError as exc:
            raise ReceiptInputError(f"cannot read {source}: {exc.strerror or exc}") from None
    found = receipts.verify(token_of(data), keys)
    click.echo(
        f"valid receipt: ID {found.masked_id} certified on {found.certified_on}, "
        f"until {found.certified_until} (result {found.result_id}, key {found.kid[:16]})"
    )
