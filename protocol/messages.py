"""Message schemas carried inside signed envelopes (schema version 1).

A result is the JSON payload of a JWS signed by the device; an ack is the
JSON payload of a JWS signed by central. Both are strict: unknown fields,
wrong types and unknown schema versions are errors.
"""

import datetime as dt
import json
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from common import idnumber
from protocol import topics
from protocol.errors import MessageError
from protocol.limits import (
    EARLIEST_TIME,
    LATEST_TIME,
    MAX_ACKS_PER_MESSAGE,
    MAX_MAGNITUDE,
    MAX_SEQ,
    MAX_TEMPLATE_BYTES,
)

MAX_COUNT: Final = 2**31 - 1
"""Counters in telemetry (outbox rows, sessions): what a 32-bit database integer holds."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_JWE_COMPACT = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){4}$"


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (use UTC, e.g. 2026-01-31T09:00:00Z)")
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise ValueError(f"must lie between {EARLIEST_TIME:%Y-%m-%d} and {LATEST_TIME:%Y-%m-%d}")
    return value


def _text(value: str) -> str:
    """Free text: no control characters but tab and newline (the database keeps any other)."""
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _id_number(value: str) -> str:
    try:
        return idnumber.validate(value)
    except idnumber.IdNumberError as exc:
        raise ValueError(f"not a valid ID number: {exc}") from None


def _device_id(value: str) -> str:
    return topics.check_device_id(value)


M = TypeVar("M", bound=BaseModel)

UtcDateTime = Annotated[dt.datetime, AfterValidator(_utc)]
IdNumber = Annotated[str, AfterValidator(_id_number)]
DeviceId = Annotated[str, AfterValidator(_device_id)]
Text = Annotated[str, AfterValidator(_text)]
Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
"""A finite score or threshold (NaN and infinity are refused by ``allow_inf_nan``)."""
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""A machine word: a challenge name, a reason code."""
Sealed = Annotated[str, Field(max_length=MAX_TEMPLATE_BYTES, pattern=_JWE_COMPACT)]
"""A JWE compact serialisation (a sealed template): base64url parts only."""


class _Strict(BaseModel):
    # Every field is bounded so that what validates here, the database can hold:
    # finite floats, 64-bit integers, dates within EARLIEST_TIME..LATEST_TIME, no NUL.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Method(StrEnum):
    """How the retiree was certified."""

    FACE = "face"
    VEIN = "vein"
    ASSISTED = "assisted"


class Decision(StrEnum):
    """The terminal's decision: certified, not certified, or refer to staff."""

    PASS = "pass"
    FAIL = "fail"
    REFER = "refer"


class Channel(StrEnum):
    """Where the certification took place."""

    KIOSK = "kiosk"
    DESK = "desk"
    MOBILE = "mobile"


class MatchEvidence(_Strict):
    """A biometric comparison: score against the threshold in force."""

    modality: Literal["face", "vein"]
    reference: Literal["template", "card_photo", "enrolled_vein"]
    score: Number = Field(description="distance (face) or similarity (vein) as the model defines")
    threshold: Number
    model: str = Field(
        max_length=128,
        pattern=r"^[\x20-\x7e]+$",
        description="model name and version from the bundle (printable ASCII)",
    )
    attempts: int = Field(ge=1, le=5)


class LivenessEvidence(_Strict):
    """The liveness challenges asked and how each went."""

    passed: bool
    challenges: tuple[Code, ...] = Field(max_length=5)
    pad_score: Number | None = None


class AssistedEvidence(_Strict):
    """A staff member saw the retiree in person."""

    staff_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    document: Literal["id_card", "ss_card", "other"] = "id_card"
    note: Text = Field(default="", max_length=500)


class Result(_Strict):
    """One certification attempt's outcome, as signed by the device."""

    schema_version: Literal[1] = 1
    result_id: uuid.UUID
    device_id: DeviceId
    seq: int = Field(ge=1, le=MAX_SEQ, description="per-device monotonic sequence number")
    device_time: UtcDateTime
    retiree_id: IdNumber
    method: Method
    decision: Decision
    channel: Channel = Channel.KIOSK
    match: MatchEvidence | None = None
    liveness: LivenessEvidence | None = None
    assisted: AssistedEvidence | None = None
    template: Sealed | None = Field(
        default=None, description="new template sealed to central (JWE)"
    )
    vein_template: Sealed | None = Field(
        default=None,
        description="finger-vein template enrolled at the desk in this visit, sealed (JWE)",
    )

    @model_validator(mode="after")
    def _evidence_fits_method(self) -> Self:
        if self.method is Method.ASSISTED and self.assisted is None:
            raise ValueError("method 'assisted' needs 'assisted' evidence (staff_id)")
        if self.method in (Method.FACE, Method.VEIN) and self.match is None:
            raise ValueError(f"method {self.method.value!r} needs 'match' evidence")
        if self.method is Method.FACE and self.liveness is None:
            raise ValueError("method 'face' needs 'liveness' evidence")
        if self.template is not None and self.decision is not Decision.PASS:
            raise ValueError("a template may only travel with a 'pass' decision")
        if self.vein_template is not None and (
            self.decision is not Decision.PASS or self.channel is not Channel.DESK
        ):
            raise ValueError("a vein template may only travel with a 'pass' result at the desk")
        return self


class AckStatus(StrEnum):
    """What central did with a result."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Ack(_Strict):
    """Central's application-level acknowledgement, signed by central."""

    schema_version: Literal[1] = 1
    result_id: uuid.UUID
    device_id: DeviceId
    status: AckStatus
    reason: Code | None = None
    certified_until: dt.date | None = Field(
        default=None, ge=EARLIEST_TIME.date(), le=LATEST_TIME.date()
    )


class AckBatch(_Strict):
    """Central's acks for one device, several results at once, signed once by central."""

    schema_version: Literal[1] = 1
    device_id: DeviceId
    acks: tuple[Ack, ...] = Field(min_length=1, max_length=MAX_ACKS_PER_MESSAGE)

    @model_validator(mode="after")
    def _one_device(self) -> Self:
        if any(a.device_id != self.device_id for a in self.acks):
            raise ValueError("every ack in a batch must name the batch's device_id")
        return self


class Reply(_Strict):
    """Shape of every request/response reply: ``{status, data, error}``."""

    status: Literal["ok", "error"]
    data: dict[str, Any] | None = None
    error: Text | None = Field(default=None, max_length=200)


class FaceTemplateData(_Strict):
    """``Reply.data`` of an ``ok`` answer to a ``face_template`` request."""

    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    device_id: DeviceId
    retiree_id: IdNumber
    kind: Literal["face"]
    template: Sealed | None
    result_id: uuid.UUID | None = None
    certified_at: UtcDateTime | None = None


Version = Annotated[str, Field(max_length=64, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")]
"""A software or model-bundle version (printable ASCII)."""


DevicePart = Literal["camera", "id_card", "ss_card", "vein", "speaker"]


class DeviceCheck(_Strict):
    """One piece of hardware's self-check: fitted and answering, or why not."""

    name: DevicePart
    ok: bool
    detail: Text = Field(default="", max_length=200)


class Telemetry(_Strict):
    """A terminal's periodic health report (``<root>/dev/<id>/telemetry``, QoS 0, unsigned:
    the broker's login and ACL say which device sent it)."""

    schema_version: Literal[1] = 1
    device_id: DeviceId
    device_time: UtcDateTime = Field(description="the terminal's clock (central derives skew)")
    uptime_s: float = Field(ge=0, le=10 * 365 * 86_400)
    software: Version
    model_bundle: Version | None = Field(default=None, description="name and version, if any")
    outbox_pending: int = Field(ge=0, le=MAX_COUNT, description="results not yet acked")
    outbox_inflight: int = Field(ge=0, le=MAX_COUNT, description="published, awaiting acks")
    outbox_delivered: int = Field(default=0, ge=0, le=MAX_COUNT)
    outbox_rejected: int = Field(default=0, ge=0, le=MAX_COUNT)
    oldest_pending_s: float | None = Field(
        default=None, ge=0, le=100 * 365 * 86_400, description="age of the oldest pending result"
    )
    sessions_today: int = Field(ge=0, le=MAX_COUNT, description="results recorded since midnight")
    disk_free_bytes: int | None = Field(default=None, ge=0, le=2**62)
    disk_total_bytes: int | None = Field(default=None, ge=0, le=2**62)
    temperature_c: float | None = Field(default=None, ge=-100, le=200)
    devices: tuple[DeviceCheck, ...] = Field(default=(), max_length=8)


def encode(message: BaseModel) -> bytes:
    """Canonical JSON bytes for a message (compact, keys sorted)."""
    return json.dumps(
        message.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
    ).encode()


def decode(model: type[M], data: bytes) -> M:
    """Parse and validate a message; ``MessageError`` names the bad fields."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise _invalid(model, exc) from None


def validate(model: type[M], data: object) -> M:
    """Validate already parsed JSON (e.g. a reply's ``data``); ``MessageError`` as ``decode``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(model, exc) from None


def _invalid(model: type[BaseModel], exc: ValidationError) -> MessageError:
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
    )
    return MessageError(f"invalid {model.__name__}: {fields}")
