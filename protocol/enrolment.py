"""The wire contract of keys born on the device: claim enrolment (HTTPS) and renewal (MQTT).

Claim enrolment: the operator creates a one-time token ``<device_id>.<secret>.<pin>``
(``pin`` = base64url SHA-256 of the fleet CA's DER, so the terminal can check the
enrolment server before it trusts it). The terminal generates its P-256 key and a
broker password, sends a :class:`ClaimRequest` (token, CSR, password) and polls with
:class:`StatusRequest` until a :class:`ClaimReply` carries the enrolment
:class:`Document`: a JWS signed by the fleet CA's key (``kid`` = its key fingerprint)
with the certificate, the CA, the broker address and central's public keys.

Renewal: the terminal publishes on its ``csr`` topic a JWS signed with its *current*
certificate key holding a :class:`RenewalRequest` (a CSR for a new key); the renewal
service answers on the ``cert`` topic with a JWS signed by the CA key holding a
:class:`RenewalReply`; once the terminal runs on the new certificate it publishes a
:class:`RenewalDone` signed with the *new* key, and the old certificate is revoked.
"""

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from protocol import topics

MAX_CSR_BYTES: Final = 4096
"""A PEM CSR for a P-256 key is under 600 bytes; anything near this is not one."""
MAX_PEM_BYTES: Final = 8192
MAX_BODY_BYTES: Final = 16 * 1024
"""An HTTP request body to the enrolment server."""
MAX_DOCUMENT_BYTES: Final = 64 * 1024
MAX_RENEWAL_BYTES: Final = 8 * 1024
"""A renewal request, reply or confirmation on MQTT."""

PASSWORD_RE: Final = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
TOKEN_RE: Final = re.compile(
    r"^(?P<device_id>[a-z0-9][a-z0-9-]{2,62})\.(?P<secret>[A-Za-z0-9_-]{43})"
    r"\.(?P<pin>[A-Za-z0-9_-]{43})$"
)
SCHEMA: Final = 1

DeviceId = Annotated[str, AfterValidator(topics.check_device_id)]
Site = Annotated[str, AfterValidator(topics.check_site)]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ca_pin(ca_der: bytes) -> str:
    """The CA pin a token carries: base64url SHA-256 of the CA certificate's DER (43 chars)."""
    return _b64(hashlib.sha256(ca_der).digest())


def secret_hash(secret: str) -> str:
    """How the fleet stores a token's secret (256 random bits: SHA-256 suffices), hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Token:
    """A parsed enrolment token."""

    device_id: str
    secret: str
    pin: str

    def __str__(self) -> str:
        return f"{self.device_id}.{self.secret}.{self.pin}"


def parse_token(text: str) -> Token:
    """Split a token; ``ValueError`` saying what is wrong with its shape."""
    match = TOKEN_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "token: not an enrolment token (<device id>.<43 characters>.<43 characters>, "
            "as `lifecert fleet token create` printed it): copy it whole"
        )
    return Token(match["device_id"], match["secret"], match["pin"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimRequest(_Strict):
    """POST /v1/claims: the token, a PEM CSR and the broker password the terminal chose."""

    token: str = Field(max_length=200)
    csr: str = Field(max_length=MAX_CSR_BYTES)
    password: str = Field(pattern=PASSWORD_RE.pattern)


class StatusRequest(_Strict):
    """POST /v1/claims/status: the same token again."""

    token: str = Field(max_length=200)


class ClaimReply(_Strict):
    """What the server says about a claim: pending, approved (with the document) or rejected."""

    status: Literal["pending", "approved", "rejected"]
    request: str
    document: str | None = Field(default=None, max_length=MAX_DOCUMENT_BYTES)
    reason: str | None = None


class BrokerAddress(_Strict):
    """Where the terminal connects."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    root: str = Field(min_length=1, max_length=200)


class CentralPublicKeys(_Strict):
    """Central's public keys as PEM."""

    sign_pub: str = Field(max_length=MAX_PEM_BYTES)
    seal_pub: str = Field(max_length=MAX_PEM_BYTES)
    model_sign_pub: str | None = Field(default=None, max_length=MAX_PEM_BYTES)


class Document(_Strict):
    """The enrolment document (payload of the CA-signed JWS)."""

    v: Literal[1] = 1
    device_id: DeviceId
    site: Site
    certificate: str = Field(max_length=MAX_PEM_BYTES)
    ca: str = Field(max_length=MAX_PEM_BYTES)
    mqtt: BrokerAddress
    central: CentralPublicKeys
    issued_at: dt.datetime


class RenewalRequest(_Strict):
    """A terminal's renewal request (payload of a JWS signed with its current key)."""

    v: Literal[1] = 1
    type: Literal["renew"] = "renew"
    device_id: DeviceId
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    csr: str = Field(max_length=MAX_CSR_BYTES)
    sent_at: dt.datetime


class RenewalReply(_Strict):
    """The renewal service's answer (payload of a JWS signed by the CA key)."""

    v: Literal[1] = 1
    device_id: DeviceId
    request_id: str = Field(max_length=64)
    certificate: str | None = Field(default=None, max_length=MAX_PEM_BYTES)
    error: str | None = Field(default=None, max_length=1000)
    finished: bool = Field(default=False, description="the old certificate is now revoked")


class RenewalDone(_Strict):
    """The terminal runs on its new certificate (payload of a JWS signed with the new key)."""

    v: Literal[1] = 1
    type: Literal["renewed"] = "renewed"
    device_id: DeviceId
    request_id: str = Field(max_length=64)


RenewalMessage = Annotated[RenewalRequest | RenewalDone, Field(discriminator="type")]
_RENEWAL: TypeAdapter[RenewalRequest | RenewalDone] = TypeAdapter(RenewalMessage)


def parse_renewal(payload: bytes) -> RenewalRequest | RenewalDone:
    """A verified payload from a terminal's ``csr`` topic; ``ValidationError`` if malformed."""
    return _RENEWAL.validate_json(payload)
