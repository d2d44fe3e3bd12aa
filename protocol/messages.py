"""Message schemas carried inside signed envelopes (schema version 1).

A result is the JSON payload of a JWS signed by the device; an ack is the
JSON payload of a JWS signed by central. Both are strict: unknown fields,
wrong types and unknown schema versions are errors.
"""

import datetime as dt
import json
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from protocol import idnumber, topics
from protocol.errors import MessageError
from protocol.limits import MAX_ACKS_PER_MESSAGE


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (use UTC, e.g. 2026-01-31T09:00:00Z)")
    return value.astimezone(dt.UTC)


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    score: float = Field(description="distance (face) or similarity (vein) as the model defines")
    threshold: float
    model: str = Field(max_length=128, description="model name and version from the bundle")
    attempts: int = Field(ge=1, le=5)


class LivenessEvidence(_Strict):
    """The liveness challenges asked and how each went."""

    passed: bool
    challenges: tuple[str, ...] = Field(max_length=5)
    pad_score: float | None = None


class AssistedEvidence(_Strict):
    """A staff member saw the retiree in person."""

    staff_id: str = Field(min_length=1, max_length=64)
    document: Literal["id_card", "ss_card", "other"] = "id_card"
    note: str = Field(default="", max_length=500)


class Result(_Strict):
    """One certification attempt's outcome, as signed by the device."""

    schema_version: Literal[1] = 1
    result_id: uuid.UUID
    device_id: DeviceId
    seq: int = Field(ge=1, description="per-device monotonic sequence number")
    device_time: UtcDateTime
    retiree_id: IdNumber
    method: Method
    decision: Decision
    channel: Channel = Channel.KIOSK
    match: MatchEvidence | None = None
    liveness: LivenessEvidence | None = None
    assisted: AssistedEvidence | None = None
    template: str | None = Field(
        default=None, max_length=16 * 1024, description="new template sealed to central (JWE)"
    )
    vein_template: str | None = Field(
        default=None,
        max_length=16 * 1024,
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
    reason: str | None = Field(default=None, max_length=200)
    certified_until: dt.date | None = None


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
    error: str | None = None


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
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise MessageError(f"invalid {model.__name__}: {fields}") from None
