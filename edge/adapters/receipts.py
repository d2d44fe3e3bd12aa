"""The receipt of a pass, for the retiree to keep: asked from central, shown as a QR code.

``CentralReceipts.fetch`` asks central (MQTT 5 request/response on the terminal's link,
``op`` ``receipt``) for the signed receipt of a result this terminal produced, and checks
it as anyone would (``protocol.receipts.verify`` against central's key) before showing it.
``qr_svg``/``qr_png`` draw it for the screen and the printer.
"""

import io
import json
import secrets
import uuid

import segno

from edge.adapters.templates import ReplyError, Requester
from protocol import messages, receipts, signing
from protocol.errors import MessageError, SignatureError


class CentralReceipts:
    """Asks central for receipts of this terminal's own results."""

    def __init__(
        self,
        link: Requester,
        device_id: str,
        verifier: signing.Verifier,
        kid: str,
        timeout_s: float,
    ) -> None:
        self.device_id, self.timeout_s = device_id, timeout_s
        self._link, self._verifier = link, verifier
        self._keys = {kid: verifier}

    def fetch(self, result_id: uuid.UUID) -> tuple[str, receipts.Receipt]:
        """The receipt's text and what it says; ``ReplyError`` when central has none or
        its answer cannot be trusted, ``TimeoutError``/``OSError`` when it cannot be asked."""
        request_id = secrets.token_hex(16)
        body = {"op": "receipt", "request_id": request_id, "result_id": str(result_id)}
        payload = self._link.request(
            json.dumps(body).encode(), bytes.fromhex(request_id), self.timeout_s
        )
        try:
            reply = messages.decode(messages.Reply, self._verifier.verify(payload))
        except (SignatureError, MessageError) as exc:
            raise ReplyError(f"reply refused: {exc}") from None
        data = reply.data or {}
        if reply.status == "error":
            raise ReplyError(f"central answered: {reply.error}")
        expected = {"request_id": request_id, "device_id": self.device_id}
        if {k: data.get(k) for k in expected} != expected:
            raise ReplyError("reply names another request or device")
        token = str(data.get("receipt", ""))
        try:
            found = receipts.verify(token, self._keys)
        except receipts.ReceiptError as exc:
            raise ReplyError(f"receipt refused: {exc}") from None
        if found.result_id != result_id:
            raise ReplyError("receipt names another result")
        return token, found


def qr_svg(token: str) -> str:
    """The receipt's QR code as SVG (for the kiosk screen), with a ``viewBox`` so that it
    scales to whatever size the page gives it instead of being cut off."""
    qr = segno.make_qr(token, error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=6, border=4)
    width, height = qr.symbol_size(scale=6, border=4)
    return out.getvalue().decode().replace("<svg ", f'<svg viewBox="0 0 {width} {height}" ', 1)


def qr_png(token: str, scale: int = 4) -> bytes:
    """The receipt's QR code as PNG (for a printer or a file)."""
    out = io.BytesIO()
    segno.make_qr(token, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
