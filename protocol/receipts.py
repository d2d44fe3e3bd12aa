"""Verifiable certification receipts: a compact JWS anyone can check offline.

Central signs, with its signing key (ES256, ``kid`` = the SHA-256 fingerprint of its
public key), a small JSON payload::

    {"typ": "lifecert-receipt", "v": 1, "rid": "<result id, 32 hex>",
     "sub": "110***********1249", "on": "2026-12-20", "until": "2027-12-20", "iat": 1797...}

``sub`` is the retiree's ID number masked (first 3 and last 4 characters), ``on`` the
day of the certification and ``until`` the day it certifies to. The token (about 410
characters) fits a QR code a phone camera reads off paper or a screen. ``verify`` checks
it against central's published public key(s): a token signed by another key, altered,
forged or not a receipt is refused with a message saying which.
"""

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, ValidationError

from common.errors import LifecertError
from protocol import signing
from protocol.errors import SignatureError
from protocol.messages import _Strict

TYPE: Final = "lifecert-receipt"
MAX_TOKEN: Final = 1024  # characters; a receipt is about 410
_MASKED = r"^[0-9]{3}\*{11}[0-9]{3}[0-9X]$"


class ReceiptError(LifecertError, ValueError):
    """A receipt that cannot be trusted; the message says why."""


class Claims(_Strict):
    """The signed payload of a receipt."""

    typ: Literal["lifecert-receipt"]
    v: Literal[1]
    rid: str = Field(pattern=r"^[0-9a-f]{32}$")
    sub: str = Field(pattern=_MASKED)
    on: dt.date
    until: dt.date
    iat: int = Field(ge=0, le=2**40)


@dataclass(frozen=True)
class Receipt:
    """A verified receipt: its claims and the key that signed it."""

    result_id: uuid.UUID
    masked_id: str
    certified_on: dt.date
    certified_until: dt.date
    issued_at: dt.datetime
    kid: str


def mask_id(id_number: str) -> str:
    """An 18-character ID number with only its first 3 and last 4 characters shown."""
    return id_number[:3] + "*" * 11 + id_number[-4:]


def issue(
    signer: signing.Signer,
    result_id: uuid.UUID,
    id_number: str,
    certified_on: dt.date,
    certified_until: dt.date,
    now: dt.datetime,
) -> str:
    """The signed receipt (JWS compact) of one passing certification."""
    claims = Claims(
        typ=TYPE,
        v=1,
        rid=result_id.hex,
        sub=mask_id(id_number),
        on=certified_on,
        until=certified_until,
        iat=int(now.timestamp()),
    )
    return signer.sign(claims.model_dump_json().encode())


def published_keys(keys: Iterable[ec.EllipticCurvePublicKey]) -> dict[str, signing.Verifier]:
    """Verifiers by ``kid`` for central's published public key(s)."""
    return {signing.key_fingerprint(k): signing.Verifier(k) for k in keys}


def verify(token: str, keys: dict[str, signing.Verifier]) -> Receipt:
    """The receipt in ``token`` if central's key in ``keys`` signed it; ``ReceiptError``
    saying why not otherwise (never anything else, whatever ``token`` holds)."""
    token = token.strip()
    if not token:
        raise ReceiptError("empty: give the receipt's text (the QR code's content)")
    if len(token) > MAX_TOKEN:
        raise ReceiptError(f"{len(token)} characters, a receipt has at most {MAX_TOKEN}")
    try:
        kid = str(signing.unverified_header(token).get("kid", ""))
    except SignatureError as exc:
        raise ReceiptError(f"not a receipt: {exc}") from None
    verifier = keys.get(kid)
    if verifier is None:
        raise ReceiptError(
            f"signed by another key (kid {kid[:16]}...), not central's published key: "
            "forged, or check that you have the current key"
        )
    try:
        payload = verifier.verify(token)
    except SignatureError as exc:
        raise ReceiptError(f"altered or forged: {exc}") from None
    try:
        claims = Claims.model_validate(json.loads(payload))
    except (ValueError, ValidationError):
        raise ReceiptError(
            "signed by central but not a receipt (another kind of message)"
        ) from None
    if claims.until < claims.on:
        raise ReceiptError("signed by central but its dates are inconsistent")
    return Receipt(
        result_id=uuid.UUID(claims.rid),
        masked_id=claims.sub,
        certified_on=claims.on,
        certified_until=claims.until,
        issued_at=dt.datetime.fromtimestamp(claims.iat, dt.UTC),
        kid=kid,
    )
