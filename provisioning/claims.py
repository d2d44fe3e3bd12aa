"""Claim enrolment: one-time tokens, terminals' CSRs, the operator's approval.

State lives in ``enrol/claims.json`` in the fleet directory (0600, replaced
atomically under an exclusive lock, like ``registry.json``): tokens are kept as
the SHA-256 of their secret, single use and expiring; a request holds the CSR and
the broker password the terminal chose only until it is decided.

Every input from a terminal is bounded and checked before anything changes: the
token (shape, secret, expiry, single use), the CSR (size, PEM, its signature, a
P-256 key, CN = the token's device id; its subject and extensions are otherwise
ignored: the certificate is built from the token's device id and site alone).
"""

import datetime as dt
import fcntl
import hmac
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field

from protocol import enrolment, signing, topics
from protocol.enrolment import ClaimReply, Token
from provisioning import pki
from provisioning.errors import ProvisioningError
from provisioning.fleet import Fleet

log = logging.getLogger(__name__)

State = Literal["pending", "approved", "rejected"]
MAX_TOKEN_HOURS = 24 * 30


class ClaimError(ProvisioningError):
    """A terminal's claim is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TokenRecord(BaseModel):
    """One enrolment token (its secret is not kept, only its SHA-256)."""

    model_config = ConfigDict(extra="forbid")

    device_id: str
    site: str
    secret_sha256: str
    auto_approve: bool = False
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None = None
    request: str | None = None


class ClaimRecord(BaseModel):
    """One terminal's request: its CSR, waiting for (or after) a decision."""

    model_config = ConfigDict(extra="forbid")

    id: str
    device_id: str
    site: str
    csr: str
    password: str | None = Field(default=None, description="erased once decided")
    peer: str = ""
    state: State = "pending"
    submitted_at: dt.datetime
    decided_at: dt.datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    certificate: str | None = None


class Claims(BaseModel):
    """The whole ``claims.json``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    tokens: list[TokenRecord] = Field(default_factory=list)
    requests: list[ClaimRecord] = Field(default_factory=list)

    def token(self, device_id: str) -> TokenRecord | None:
        """The newest token for ``device_id``."""
        found = [t for t in self.tokens if t.device_id == device_id]
        return found[-1] if found else None

    def request(self, request_id: str) -> ClaimRecord | None:
        """The request with this id."""
        return next((r for r in self.requests if r.id == request_id), None)


def _pin(fleet: Fleet) -> str:
    return enrolment.ca_pin(
        pki.load_cert(fleet.paths.ca_cert).public_bytes(serialization.Encoding.DER)
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def claims_path(fleet: Fleet) -> Path:
    """``enrol/claims.json`` of the fleet."""
    return fleet.directory / "enrol" / "claims.json"


@contextmanager
def locked(fleet: Fleet) -> Iterator[Claims]:
    """Read ``claims.json`` under an exclusive lock, yield it, write it back on success."""
    path = claims_path(fleet)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path.with_name("claims.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        claims = Claims.model_validate_json(path.read_bytes()) if path.exists() else Claims()
        yield claims
        tmp = path.with_name("claims.json.tmp")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(out, "w", encoding="utf-8") as f:
            f.write(claims.model_dump_json(indent=1) + "\n")
        tmp.replace(path)
    finally:
        os.close(fd)


def read(fleet: Fleet) -> Claims:
    """The claims, unlocked (for listing)."""
    path = claims_path(fleet)
    return Claims.model_validate_json(path.read_bytes()) if path.exists() else Claims()


# -- the operator ------------------------------------------------------------------------------


def create_token(
    fleet: Fleet, device_id: str, site: str, *, auto_approve: bool = False, hours: float = 72
) -> tuple[Token, TokenRecord]:
    """A new one-time token for ``device_id`` at ``site`` (an older unused one stops working)."""
    try:
        topics.check_device_id(device_id)
        topics.check_site(site)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    if device_id.startswith("lifecert-"):
        raise ProvisioningError(f"invalid device_id {device_id!r}: 'lifecert-' ids are reserved")
    if not 0 < hours <= MAX_TOKEN_HOURS:
        raise ProvisioningError(f"--hours {hours:g}: give 1 to {MAX_TOKEN_HOURS} hours")
    if any(d.id == device_id for d in fleet.devices()):
        raise ProvisioningError(
            f"device {device_id!r} is already enrolled in this fleet: choose a new id "
            "(a revoked id is never reused)"
        )
    token = Token(device_id, secrets.token_urlsafe(32), _pin(fleet))
    now = _now()
    record = TokenRecord(
        device_id=device_id,
        site=site,
        secret_sha256=enrolment.secret_hash(token.secret),
        auto_approve=auto_approve,
        created_at=now,
        expires_at=now + dt.timedelta(hours=hours),
    )
    with locked(fleet) as claims:
        pending = [r for r in claims.requests if r.device_id == device_id and r.state == "pending"]
        if pending:
            raise ProvisioningError(
                f"{device_id} has a pending request {pending[0].id}: approve or reject it first"
            )
        claims.tokens = [t for t in claims.tokens if t.device_id != device_id or t.used_at]
        claims.tokens.append(record)
    log.info("token for %s (site %s) valid until %s", device_id, site, record.expires_at)
    return token, record


def pending(fleet: Fleet) -> list[ClaimRecord]:
    """Requests waiting for the operator."""
    return [r for r in read(fleet).requests if r.state == "pending"]


def approve(fleet: Fleet, request_id: str, by: str = "operator") -> tuple[ClaimRecord, str]:
    """Issue the certificate of a pending request; the request and what the broker was told."""
    with locked(fleet) as claims:
        record = _pending(claims, request_id)
        return record, _issue(fleet, record, by)


def reject(fleet: Fleet, request_id: str, reason: str) -> ClaimRecord:
    """Refuse a pending request (the terminal is told ``reason``)."""
    with locked(fleet) as claims:
        record = _pending(claims, request_id)
        record.state, record.reason, record.password = "rejected", reason or "rejected", None
        record.decided_at, record.decided_by = _now(), "operator"
    return record


def _pending(claims: Claims, request_id: str) -> ClaimRecord:
    record = claims.request(request_id)
    if record is None:
        raise ProvisioningError(
            f"no enrolment request {request_id!r}: see `lifecert fleet pending`"
        )
    if record.state != "pending":
        raise ProvisioningError(f"request {request_id} is already {record.state}")
    return record


def _issue(fleet: Fleet, record: ClaimRecord, by: str) -> str:
    """Enrol ``record``'s key (call with the claims locked); what the broker was told."""
    key = _csr_key(x509.load_pem_x509_csr(record.csr.encode("ascii")))
    if record.password is None:
        raise ProvisioningError(f"request {record.id} has no broker password left")
    _device, cert, told = fleet.enrol_public_key(
        record.device_id, record.site, key, record.password
    )
    record.state, record.certificate, record.password = "approved", pki.pem(cert), None
    record.decided_at, record.decided_by = _now(), by
    log.info("approved %s for %s (%s)", record.id, record.device_id, by)
    return told


# -- the terminal --------------------------------------------------------------------------------


def _check_token(fleet: Fleet, claims: Claims, text: str) -> tuple[Token, TokenRecord]:
    try:
        token = enrolment.parse_token(text)
    except ValueError as exc:
        raise ClaimError(str(exc), 401) from None
    if token.pin != _pin(fleet):
        raise ClaimError("token: made for another fleet (its CA pin differs from ours)", 401)
    record = claims.token(token.device_id)
    given = enrolment.secret_hash(token.secret)
    if record is None or not hmac.compare_digest(record.secret_sha256, given):
        raise ClaimError(
            "token: not valid (unknown, mistyped, or replaced by a newer one): ask the "
            "operator for a new one",
            401,
        )
    return token, record


def check_csr(pem: str, device_id: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a CSR whose CN is ``device_id``; ``ClaimError`` otherwise."""
    if len(pem.encode("utf-8", "replace")) > enrolment.MAX_CSR_BYTES:
        raise ClaimError(f"csr: larger than {enrolment.MAX_CSR_BYTES} bytes; send one P-256 CSR")
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ClaimError(
            "csr: not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)"
        ) from None
    key = _csr_key(csr)
    if not csr.is_signature_valid:
        raise ClaimError("csr: its signature does not verify (it must be signed by its own key)")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if len(names) == 1 else None
    if cn != device_id:
        raise ClaimError(
            f"csr: CN {cn!r} differs from the token's device id {device_id!r}: "
            f"request a certificate for CN={device_id}"
        )
    return key


def _csr_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    try:
        key = csr.public_key()
    except ValueError:
        raise ClaimError("csr: its public key cannot be read") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    if isinstance(key, rsa.RSAPublicKey):
        kind = f"RSA {key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        kind = f"EC {key.curve.name}"
    else:
        kind = type(key).__name__
    raise ClaimError(
        f"csr: key type {kind} refused: only ECDSA P-256 (secp256r1) keys are enrolled; "
        "generate the terminal's key as P-256"
    )


def submit(fleet: Fleet, request: enrolment.ClaimRequest, peer: str = "") -> ClaimReply:
    """Take a terminal's claim: check token and CSR, record it, auto-approve if the token says.

    Nothing changes when a check fails; the token is spent once the claim is recorded.
    """
    with locked(fleet) as claims:
        token, record = _check_token(fleet, claims, request.token)
        now = _now()
        if record.used_at is not None:
            raise ClaimError(
                f"token: already used at {record.used_at:%Y-%m-%d %H:%M} UTC (request "
                f"{record.request}); each token enrols once: ask the operator for a new one",
                409,
            )
        if now >= record.expires_at:
            raise ClaimError(
                f"token: expired at {record.expires_at:%Y-%m-%d %H:%M} UTC: ask the operator "
                f"for a new one (lifecert fleet token create --device-id {token.device_id})",
                410,
            )
        check_csr(request.csr, token.device_id)
        claim = ClaimRecord(
            id=secrets.token_hex(6),
            device_id=token.device_id,
            site=record.site,
            csr=request.csr,
            password=request.password,
            peer=peer[:100],
            submitted_at=now,
        )
        record.used_at, record.request = now, claim.id
        claims.requests.append(claim)
        if record.auto_approve:
            _issue(fleet, claim, "policy: auto-approve token")
    log.info("claim %s for %s from %s: %s", claim.id, claim.device_id, peer, claim.state)
    return reply(fleet, claim)


def status(fleet: Fleet, request: enrolment.StatusRequest) -> ClaimReply:
    """Where the claim made with this token stands (the document once approved)."""
    claims = read(fleet)
    _token, record = _check_token(fleet, claims, request.token)
    claim = claims.request(record.request) if record.request else None
    if claim is None:
        raise ClaimError("token: no claim was made with it yet: send the CSR first", 404)
    return reply(fleet, claim)


def reply(fleet: Fleet, claim: ClaimRecord) -> ClaimReply:
    """The answer for ``claim``; an approved one carries the CA-signed document."""
    if claim.state != "approved" or claim.certificate is None:
        return ClaimReply(status=claim.state, request=claim.id, reason=claim.reason)
    return ClaimReply(status="approved", request=claim.id, document=document(fleet, claim))


def document(fleet: Fleet, claim: ClaimRecord) -> str:
    """The enrolment document of an approved claim as a JWS signed by the fleet CA's key."""
    ca = fleet.authority()
    p = fleet.paths
    models_pub = p.models / "sign.pub.pem"
    broker = fleet.settings.broker
    payload = enrolment.Document(
        device_id=claim.device_id,
        site=claim.site,
        certificate=claim.certificate or "",
        ca=pki.pem(ca.cert),
        mqtt=enrolment.BrokerAddress(host=broker.host, port=broker.port, root=fleet.settings.root),
        central=enrolment.CentralPublicKeys(
            sign_pub=(p.central / "sign.pub.pem").read_text(encoding="ascii"),
            seal_pub=(p.central / "seal.pub.pem").read_text(encoding="ascii"),
            model_sign_pub=models_pub.read_text(encoding="ascii") if models_pub.exists() else None,
        ),
        issued_at=_now(),
    )
    signer = signing.Signer(ca.key, kid=signing.key_fingerprint(ca.key.public_key()))
    return signer.sign(payload.model_dump_json().encode("utf-8"))
