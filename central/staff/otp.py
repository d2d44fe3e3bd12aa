"""A staff member's second factor: TOTP codes (RFC 6238) from an authenticator app, with pyotp.

A member enrols a secret for themself (``enrol``: pending until ``confirm`` sees one valid
code); an administrator may ``reset`` someone else's (audited; the secret is never shown
to them). The secret is stored AES-256-GCM-encrypted with ``[staff] otp_key_file`` (the
staff id bound as associated data: a row copied to another account does not decrypt) and
is never logged or audited. ``verify`` checks a code inside the caller's transaction:
each time step is accepted once per person (the last used step is kept); a wrong code
counts toward the account's lockout (``count_wrong``) like a failed sign-in, and wrong
codes in a row are kept apart so that signing in again does not clear them.

Confirming the enrolment issues a set of recovery codes (``central.staff.recovery``),
which ``verify`` takes instead of a TOTP code, each once; ``renew_recovery`` issues a
new set (the member themself, with a code); ``reset`` deletes them. The codes are shown
once and never logged or audited: the audit says a set was issued or a code used, and
how many are left.
"""

import datetime as dt
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine

from central.staff import accounts, audit, recovery
from central.staff.identity import Actor
from central.staff.permissions import Permission, check
from central.staff.tables import staff_otp
from common import keyfile
from common.errors import ConfigError, LifecertError

ISSUER = "lifecert"
DRIFT_STEPS = 1  # a code of the time step before or after is accepted too (clock drift)
_NONCE = 12
_CODE = re.compile(r"^[0-9]{6}$")
MAKE_KEY = "lifecert-central staff otp init-key"

log = logging.getLogger(__name__)


class SecondFactorError(LifecertError, PermissionError):
    """A second factor refused (the message is for the person); ``counts``: a wrong code,
    which counts toward the lockout."""

    def __init__(self, message: str, counts: bool = False) -> None:
        super().__init__(message)
        self.counts = counts


class OtpCipher:
    """AES-256-GCM for TOTP secrets at rest; the staff id is bound as associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.recovery_key = recovery.derive_key(key)

    @classmethod
    def from_file(cls, path: Path) -> "OtpCipher":
        return cls(keyfile.read_key(path, "staff.otp_key_file", MAKE_KEY))

    def encrypt(self, secret: str, staff_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), _aad(staff_id))

    def decrypt(self, blob: bytes, staff_id: str) -> str:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _aad(staff_id)).decode()
        except InvalidTag:
            raise ConfigError(
                f"the second factor of {staff_id} does not decrypt: staff.otp_key_file is not "
                "the key it was enrolled with (or the row was changed); restore the key, or "
                "have an administrator reset it (`staff otp reset`)"
            ) from None


def _aad(staff_id: str) -> bytes:
    return b"lifecert staff otp:" + staff_id.encode()


def write_key(path: Path) -> Path:
    """Create the key that encrypts TOTP secrets (hex, mode 0600); refuses to overwrite."""
    return keyfile.write_key(path)


def uri(secret: str, staff_id: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as text or a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=staff_id, issuer_name=ISSUER)


@dataclass(frozen=True)
class Enrolment:
    """A new, pending secret: show it (``uri``) to its member only, then ``confirm``."""

    staff_id: str
    secret: str

    @property
    def uri(self) -> str:
        return uri(self.secret, self.staff_id)


def _row(conn: Connection, staff_id: str, for_update: bool = False) -> Any:
    query = sa.select(staff_otp).where(staff_otp.c.staff_id == staff_id)
    return conn.execute(query.with_for_update() if for_update else query).first()


def status_in(conn: Connection, staff_id: str) -> str:
    """``enrolled``, ``pending`` (not confirmed yet) or ``none``."""
    row = _row(conn, staff_id)
    if row is None:
        return "none"
    return "pending" if row.confirmed_at is None else "enrolled"


def status(engine: Engine, staff_id: str) -> str:
    """``staff_id``'s second factor: ``enrolled``, ``pending`` or ``none``."""
    with engine.connect() as conn:
        return status_in(conn, staff_id)


def recovery_left(engine: Engine, staff_id: str) -> int:
    """How many unused recovery codes ``staff_id`` has."""
    with engine.connect() as conn:
        return recovery.left(conn, staff_id)


def enrol(engine: Engine, cipher: OtpCipher, actor: Actor, now: dt.datetime) -> Enrolment:
    """A new secret for ``actor`` themself, pending until ``confirm``; refused while a
    confirmed one exists (someone holding the member's certificate must not swap it: an
    administrator resets it first)."""
    secret = pyotp.random_base32()
    with engine.begin() as conn:
        accounts.need(conn, actor.staff_id, for_update=True)
        before = status_in(conn, actor.staff_id)
        if before == "enrolled":
            raise SecondFactorError(
                f"{actor.staff_id} has a second factor already: to enrol a new one (a lost "
                "phone), ask an administrator to reset it (`staff otp reset`)"
            )
        conn.execute(staff_otp.delete().where(staff_otp.c.staff_id == actor.staff_id))
        conn.execute(
            staff_otp.insert().values(
                staff_id=actor.staff_id,
                secret=cipher.encrypt(secret, actor.staff_id),
                created_at=now,
                confirmed_at=None,
                last_step=None,
                failed=0,
            )
        )
        audit.record(
            conn,
            actor,
            "staff.otp_enrol",
            f"staff:{actor.staff_id}",
            {"second_factor": before},
            {"second_factor": "pending"},
            at=now,
        )
    log.info("second factor of %s pending (enrolled by themself)", actor.staff_id)
    return Enrolment(actor.staff_id, secret)


def _match(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step ``code`` is valid for around ``now`` (within the drift), or None."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _clean(code: str | None, what: str) -> str:
    """A 6-digit TOTP code, or a normalised recovery code; else ``SecondFactorError``."""
    code = (code or "").replace(" ", "")
    if not code:
        raise SecondFactorError(
            f"otp: {what} needs a second factor: give the current 6-digit code from your "
            "authenticator app, or one of your recovery codes (--otp CODE in the CLI)"
        )
    if _CODE.match(code):
        return code
    plain = recovery.normalise(code)
    if plain is None:
        raise SecondFactorError(
            "otp: a code is 6 digits, from your authenticator app, or a recovery code of "
            f"{recovery.LENGTH} letters and digits (like ABCDE-FGHJK)"
        )
    return plain


def _issue(
    conn: Connection, cipher: OtpCipher, actor: Actor, now: dt.datetime, before: int
) -> list[str]:
    """A new set of recovery codes for ``actor``, audited without the codes."""
    codes = recovery.issue(conn, cipher.recovery_key, actor.staff_id, now)
    audit.record(
        conn,
        actor,
        "staff.otp_recovery_issue",
        f"staff:{actor.staff_id}",
        {"recovery_codes": before},
        {"recovery_codes": len(codes)},
        at=now,
    )
    return codes


def low_note(staff_id: str, left: int | None) -> str | None:
    """What to tell ``staff_id`` after using a recovery code, ``left`` remaining: a
    warning when few are left (None: no recovery code used, or enough left)."""
    if left is None or left > recovery.LOW:
        return None
    return (
        f"only {left} recovery code(s) of {staff_id} left: issue a new set with "
        f"`lifecert-central staff otp recovery-codes {staff_id} --otp CODE`"
    )


def confirm(
    engine: Engine, cipher: OtpCipher, actor: Actor, code: str, now: dt.datetime
) -> list[str]:
    """Confirm ``actor``'s pending secret with one valid code: from now on it counts. The
    member's recovery codes (shown once: they are stored as hashes only)."""
    code = _clean(code, "confirming the enrolment")
    with engine.begin() as conn:
        row = _row(conn, actor.staff_id, for_update=True)
        if row is None or row.confirmed_at is not None:
            state = "none" if row is None else "enrolled"
            raise SecondFactorError(
                f"{actor.staff_id} has no pending second factor ({state}): "
                "run `lifecert-central staff otp enrol` first"
            )
        step = _match(cipher.decrypt(row.secret, actor.staff_id), code, now)
        if step is None:
            raise SecondFactorError(
                "otp: the code does not match: check the phone's clock and type the code "
                "the app shows now"
            )
        conn.execute(
            staff_otp.update()
            .where(staff_otp.c.staff_id == actor.staff_id)
            .values(confirmed_at=now, last_step=step)
        )
        audit.record(
            conn,
            actor,
            "staff.otp_confirm",
            f"staff:{actor.staff_id}",
            {"second_factor": "pending"},
            {"second_factor": "enrolled"},
            at=now,
        )
        codes = _issue(conn, cipher, actor, now, recovery.left(conn, actor.staff_id))
    log.info("second factor of %s confirmed, %d recovery codes issued", actor.staff_id, len(codes))
    return codes


def renew_recovery(
    engine: Engine,
    cipher: OtpCipher,
    actor: Actor,
    staff_id: str,
    code: str | None,
    now: dt.datetime,
    *,
    limit: int,
) -> list[str]:
    """A new set of recovery codes for ``actor`` themself (``staff_id``), replacing the
    old one; needs a current code (TOTP or recovery: a stolen certificate alone must not
    mint codes). A wrong code counts toward the lockout (``limit``)."""
    if actor.staff_id != staff_id:
        raise accounts.StaffError(
            f"only {staff_id} may issue their recovery codes, signed in as themself (an "
            "administrator resets a lost second factor: `staff otp reset`)"
        )
    try:
        with engine.begin() as conn:
            verify(conn, cipher, actor, code, "issuing new recovery codes", now)
            codes = _issue(conn, cipher, actor, now, recovery.left(conn, staff_id))
    except SecondFactorError as refused:
        if refused.counts:
            count_wrong(engine, actor, limit=limit, reason=str(refused))
        raise
    log.info("%d new recovery codes issued for %s", len(codes), staff_id)
    return codes


def reset(engine: Engine, by: Actor, staff_id: str) -> None:
    """Remove ``staff_id``'s second factor (a lost phone), so they can enrol again; by an
    administrator, never for themself."""
    check(by, Permission.STAFF_MANAGE)
    if by.staff_id == staff_id:
        raise accounts.StaffError(
            "nobody may reset their own second factor: ask another administrator"
        )
    with engine.begin() as conn:
        accounts.need(conn, staff_id, for_update=True)
        before = status_in(conn, staff_id)
        if before == "none":
            raise SecondFactorError(f"{staff_id} has no second factor to reset")
        codes = recovery.left(conn, staff_id)
        recovery.delete(conn, staff_id)
        conn.execute(staff_otp.delete().where(staff_otp.c.staff_id == staff_id))
        audit.record(
            conn,
            by,
            "staff.otp_reset",
            f"staff:{staff_id}",
            {"second_factor": before, "recovery_codes": codes},
            {"second_factor": "none", "recovery_codes": 0},
        )
    log.info("second factor of %s reset by %s", staff_id, by.staff_id)


def verify(
    conn: Connection,
    cipher: OtpCipher,
    actor: Actor,
    code: str | None,
    what: str,
    now: dt.datetime,
) -> int | None:
    """Check ``actor``'s ``code`` (TOTP or recovery) for ``what`` in ``conn``'s
    transaction (it commits with the step it guards), or ``SecondFactorError``: not
    enrolled, no code, a locked account, a wrong code, one of a time step already used or
    a recovery code used already (these three count). How many recovery codes are left
    when one was used (its use audited), else None."""
    staff_id = actor.staff_id
    account = accounts.need(conn, staff_id, for_update=True)
    if account.locked:
        raise SecondFactorError(f"{staff_id}'s account is locked: an administrator must unlock it")
    row = _row(conn, staff_id, for_update=True)
    if row is None or row.confirmed_at is None:
        raise SecondFactorError(
            f"otp: {what} needs a second factor and {staff_id} has none enrolled: enrol "
            "first (`lifecert-central staff otp enrol`, then `staff otp confirm CODE`)"
        )
    code = _clean(code, what)
    if not _CODE.match(code):
        return _use_recovery(conn, cipher, actor, account, code, what, now)
    step = _match(cipher.decrypt(row.secret, staff_id), code, now)
    if step is None:
        raise SecondFactorError("otp: wrong code (it counts toward the lockout)", counts=True)
    if row.last_step is not None and step <= row.last_step:
        raise SecondFactorError(
            "otp: this code was used already: wait for the next one", counts=True
        )
    conn.execute(
        staff_otp.update().where(staff_otp.c.staff_id == staff_id).values(last_step=step, failed=0)
    )
    accounts.signed_in(conn, account)
    return None


def _use_recovery(
    conn: Connection,
    cipher: OtpCipher,
    actor: Actor,
    account: Any,
    code: str,
    what: str,
    now: dt.datetime,
) -> int:
    """Use ``actor``'s recovery ``code`` (``verify``'s locks held): how many are left."""
    left = recovery.use(conn, cipher.recovery_key, actor.staff_id, code)
    if left is None:
        raise SecondFactorError(
            "otp: wrong recovery code, or one used already (it counts toward the lockout)",
            counts=True,
        )
    conn.execute(staff_otp.update().where(staff_otp.c.staff_id == actor.staff_id).values(failed=0))
    accounts.signed_in(conn, account)
    audit.record(
        conn,
        actor,
        "staff.otp_recovery_use",
        f"staff:{actor.staff_id}",
        {"recovery_codes": left + 1},
        {"recovery_codes": left, "for": what},
        at=now,
    )
    log.info("recovery code of %s used for %s: %d left", actor.staff_id, what, left)
    return left


def count_wrong(engine: Engine, actor: Actor, *, limit: int, reason: str) -> bool:
    """Count a wrong code of ``actor`` (in its own transaction, after the refused step
    rolled back) toward the lockout; whether the account is now locked."""
    log.warning("second factor of %s refused: %s", actor.staff_id, reason)
    with engine.begin() as conn:
        accounts.need(conn, actor.staff_id, for_update=True)  # the order ``verify`` locks in
        row = _row(conn, actor.staff_id, for_update=True)
        streak = 0 if row is None else row.failed + 1
        if row is not None:
            conn.execute(
                staff_otp.update()
                .where(staff_otp.c.staff_id == actor.staff_id)
                .values(failed=streak)
            )
        return accounts.count_failure(
            conn,
            actor.staff_id,
            limit=limit,
            via=actor.via,
            address=actor.address,
            reason=f"second factor: {reason}",
            streak=streak,
        )
