"""Central's answers to remote terminals about one-time codes (MQTT request/response).

Requests arrive on a device's ``req`` topic beside template requests
(``central.certification.templates`` checks the device is trusted and within its request
budget, hands the ops ``phone_code`` and ``phone_verify`` here and signs the reply). Only
the devices named in ``[phone] remote_devices`` are answered; the signed reply is
``{request_id, device_id, retiree_id, outcome}``: ``sent`` / ``rate_limited`` for a code
request, ``ok`` / ``wrong`` / ``locked`` for a check. Nothing in a reply depends on
whether the ID number is on the roster.
"""

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from central.channels.codes import PhoneCodes
from central.channels.settings import PhoneSettings
from protocol import messages
from protocol.errors import MessageError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], messages.Reply]
"""Answers one request of a trusted device: ``(device_id, payload)`` -> the reply to sign."""


class CodeRequest(BaseModel):
    """A remote terminal asks central to text a code for an ID number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["phone_code"]
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    retiree_id: messages.IdNumber
    client: str = Field(min_length=1, max_length=64)


class CodeCheck(BaseModel):
    """A remote terminal asks whether a code is an ID number's current one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["phone_verify"]
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    retiree_id: messages.IdNumber
    code: str = Field(pattern=r"^[0-9]{6}$")
    client: str = Field(min_length=1, max_length=64)


class PhoneAnswers:
    """Answers the two code ops for the remote terminals named in the settings."""

    def __init__(self, codes: PhoneCodes, settings: PhoneSettings) -> None:
        self.codes, self.settings = codes, settings

    def handlers(self) -> dict[str, Handler]:
        """``op`` -> handler, for ``TemplateAnswers(ops=...)``."""
        return {
            "phone_code": lambda device_id, payload: self.answer(CodeRequest, device_id, payload),
            "phone_verify": lambda device_id, payload: self.answer(CodeCheck, device_id, payload),
        }

    def answer(
        self, kind: type[CodeRequest] | type[CodeCheck], device_id: str, payload: bytes
    ) -> messages.Reply:
        """The reply to one code request or check from a trusted device."""
        if device_id not in self.settings.remote_devices:
            log.warning("code request from %s refused: not a remote terminal", device_id)
            return _reply("error", {"device_id": device_id}, "not_a_remote_terminal")
        try:
            request: CodeRequest | CodeCheck = messages.decode(kind, payload)
        except MessageError as exc:
            return _reply("error", {"device_id": device_id}, f"bad_request: {exc}"[:200])
        ids = {
            "request_id": request.request_id,
            "device_id": device_id,
            "retiree_id": request.retiree_id,
        }
        if isinstance(request, CodeCheck):
            outcome: str = self.codes.check(
                request.retiree_id, request.code, request.client, device_id
            )
        else:
            outcome = self.codes.send(request.retiree_id, request.client)
        return _reply("ok", {**ids, "outcome": outcome})


def _reply(
    status: Literal["ok", "error"], data: dict[str, Any], error: str | None = None
) -> messages.Reply:
    return messages.Reply(status=status, data=data, error=error)
