"""Asks central to send and to check a retiree's one-time code, over the terminal's link.

The same MQTT 5 request/response as template requests (``edge.adapters.templates``):
JSON ``{op, request_id, retiree_id, client[, code]}`` on the device's ``req`` topic, a
reply signed by central naming this request, device and retiree. Central answers only
remote terminals (``central.channels``); the answer never says whether the ID number is
on the roster.
"""

import json
import secrets
from typing import Literal

from edge.adapters.templates import ReplyError, Requester
from protocol import messages
from protocol.errors import MessageError, SignatureError
from protocol.signing import Verifier

Sent = Literal["sent", "rate_limited"]
Checked = Literal["ok", "wrong", "locked"]
_SENT: tuple[Sent, ...] = ("sent", "rate_limited")
_CHECKED: tuple[Checked, ...] = ("ok", "wrong", "locked")


class CentralCodes:
    """``send`` and ``check`` one-time codes through central."""

    def __init__(
        self, link: Requester, device_id: str, verifier: Verifier, timeout_s: float
    ) -> None:
        self.device_id, self.timeout_s = device_id, timeout_s
        self._link, self._verifier = link, verifier

    def send(self, retiree_id: str, client: str) -> Sent:
        """Ask central to text a code to the retiree's phone (if the roster has one)."""
        outcome = self._ask({"op": "phone_code", "retiree_id": retiree_id, "client": client})
        if outcome not in _SENT:
            raise ReplyError(f"unexpected answer {outcome!r} to a code request")
        return outcome

    def check(self, retiree_id: str, code: str, client: str) -> Checked:
        """Ask central whether ``code`` is the retiree's current code."""
        body = {"op": "phone_verify", "retiree_id": retiree_id, "code": code, "client": client}
        outcome = self._ask(body)
        if outcome not in _CHECKED:
            raise ReplyError(f"unexpected answer {outcome!r} to a code check")
        return outcome

    def _ask(self, body: dict[str, str]) -> str:
        request_id = secrets.token_hex(16)
        payload = self._link.request(
            json.dumps({**body, "request_id": request_id}).encode(),
            bytes.fromhex(request_id),
            self.timeout_s,
        )
        try:
            reply = messages.decode(messages.Reply, self._verifier.verify(payload))
        except (SignatureError, MessageError) as exc:
            raise ReplyError(f"reply refused: {exc}") from None
        data = reply.data or {}
        expected = {
            "request_id": request_id,
            "device_id": self.device_id,
            "retiree_id": body["retiree_id"],
        }
        if {k: data.get(k) for k in expected} != expected:
            raise ReplyError("reply names another request, device or retiree")
        if reply.status == "error":
            raise ReplyError(f"central answered: {reply.error}")
        outcome = data.get("outcome")
        if not isinstance(outcome, str):
            raise ReplyError("reply without an outcome")
        return outcome
