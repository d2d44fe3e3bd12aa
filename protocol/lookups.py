"""Status lookup on the wire: a terminal asks central where a retiree stands, without
certifying (a card inserted, "check my status").

The request travels like a template request (``<root>/dev/<id>/req``, MQTT 5 response
topic and correlation data) with ``op`` ``status``; central answers with a signed
``messages.Reply`` whose ``data`` is ``StatusData``: only what the retiree or their
family needs, nothing that says why a payment is held except a missed certification.
"""

import datetime as dt
from typing import Literal

from pydantic import Field

from protocol.messages import Code, DeviceId, IdNumber, _Strict


class StatusRequest(_Strict):
    """What a terminal asks (the JSON payload on its ``req`` topic)."""

    op: Literal["status"]
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    retiree_id: IdNumber


class StatusData(_Strict):
    """``Reply.data`` of an ``ok`` answer to a ``status`` request."""

    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    device_id: DeviceId
    retiree_id: IdNumber
    certified_until: dt.date | None
    next_due: dt.date | None  # the day to certify by (= certified_until)
    window_opens: dt.date | None  # the first day a certification counts for the next cycle
    last_certified_on: dt.date | None
    last_channel: Literal["kiosk", "desk", "mobile"] | None
    last_place: str | None = Field(max_length=63)  # the terminal's site
    payment_period: str | None = Field(pattern=r"^[0-9]{4}-[0-9]{2}$")
    payment_decision: Literal["pay", "resume", "hold", "stop"] | None
    payment_reason: Code | None  # only ``certification_overdue``; other reasons stay private
