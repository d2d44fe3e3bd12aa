"""Status lookup at the kiosk: a card inserted, "check my status", no certification.

``CentralStatus.lookup`` asks central over the terminal's one broker link (MQTT 5
request/response, as ``edge.adapters.templates`` does for templates) and returns
central's ``StatusData`` once its signature verifies and it names this request, device and
retiree. ``KioskLookups`` is the session's ``Lookups`` port over it, ``CentralReceipts``
and the outbox (which knows this terminal's own passes).
"""

import json
import logging
import secrets
import uuid

from edge.adapters.outbox import Outbox
from edge.adapters.receipts import CentralReceipts
from edge.adapters.templates import ReplyError, Requester
from edge.session.ports import CentralUnavailableError, UnknownRetireeError
from protocol import lookups, messages
from protocol.errors import MessageError, SignatureError
from protocol.signing import Verifier

log = logging.getLogger(__name__)


class CentralStatus:
    """Asks central where a retiree stands."""

    def __init__(self, link: Requester, device_id: str, verifier: Verifier, timeout_s: float):
        self.device_id, self.timeout_s = device_id, timeout_s
        self._link, self._verifier = link, verifier

    def lookup(self, retiree_id: str) -> lookups.StatusData:
        """The retiree's status; ``UnknownRetireeError``, ``ReplyError`` (refused or
        rate-limited), ``TimeoutError``/``OSError`` (central cannot be asked)."""
        request_id = secrets.token_hex(16)
        body = {"op": "status", "request_id": request_id, "retiree_id": retiree_id}
        payload = self._link.request(
            json.dumps(body).encode(), bytes.fromhex(request_id), self.timeout_s
        )
        try:
            reply = messages.decode(messages.Reply, self._verifier.verify(payload))
        except (SignatureError, MessageError) as exc:
            raise ReplyError(f"reply refused: {exc}") from None
        data = reply.data or {}
        expected = {"request_id": request_id, "device_id": self.device_id, "retiree_id": retiree_id}
        if reply.error != "rate_limited" and {k: data.get(k) for k in expected} != expected:
            raise ReplyError("reply names another request, device or retiree")
        if reply.status == "error":
            if reply.error == "unknown_retiree":
                raise UnknownRetireeError(f"central does not know retiree {retiree_id[-4:]}")
            raise ReplyError(f"central answered: {reply.error}")
        try:
            return messages.validate(lookups.StatusData, data)
        except MessageError as exc:
            raise ReplyError(f"reply refused: {exc}") from None


class KioskLookups:
    """The session's ``Lookups``: status and receipts from central, this terminal's passes."""

    def __init__(self, status: CentralStatus, receipts: CentralReceipts, outbox: Outbox) -> None:
        self._status, self._receipts, self._outbox = status, receipts, outbox

    def status(self, retiree_id: str) -> lookups.StatusData:
        try:
            return self._status.lookup(retiree_id)
        except (ReplyError, TimeoutError, OSError) as exc:
            raise CentralUnavailableError(str(exc)) from None

    def receipt(self, result_id: str) -> str | None:
        try:
            return self._receipts.fetch(uuid.UUID(result_id))[0]
        except (ReplyError, TimeoutError, OSError, ValueError) as exc:
            log.info("no receipt for %s yet: %s", result_id, exc)
            return None

    def last_receipt(self, retiree_id: str) -> str | None:
        result_id = self._outbox.last_pass(retiree_id)
        return None if result_id is None else self.receipt(result_id)
