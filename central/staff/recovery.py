"""Recovery codes: single-use stand-ins for a TOTP code when a member's phone is lost.

A set is ``COUNT`` codes of ``LENGTH`` characters from an alphabet without look-alikes
(no 0/O, 1/I/L, U), shown once as ``ABCDE-FGHJK``; typed in any case, with or without
dashes and spaces. Only a keyed hash is stored: HMAC-SHA256 under a key derived from
``[staff] otp_key_file``, over the staff id and the code. Not a slow hash (scrypt):
the codes are random, 30^10 ≈ 2^49, so a slow hash adds little against guessing, while a
keyed one makes a copy of the database alone useless for guessing offline, and lets a
code be found by one indexed lookup and used by one conditional DELETE (atomic on both
engines: of two uses at once, one deletes the row, the other finds none). Online guesses
count toward the lockout (``central.staff.otp``).
"""

import hashlib
import hmac
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.staff.tables import staff_otp_recovery

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
COUNT = 10
LOW = 2  # at most this many left: the answer tells the member to issue a new set
_DERIVE = b"lifecert staff otp recovery codes"
_r = staff_otp_recovery


def derive_key(otp_key: bytes) -> bytes:
    """The HMAC key of recovery codes, apart from the key that encrypts TOTP secrets."""
    return hmac.new(otp_key, _DERIVE, hashlib.sha256).digest()


def normalise(code: str) -> str | None:
    """``code`` upper-cased without spaces and dashes, or None when it is not one."""
    plain = "".join(code.split()).replace("-", "").upper()
    if len(plain) != LENGTH or any(c not in ALPHABET for c in plain):
        return None
    return plain


def shown(code: str) -> str:
    """A code as it is shown: two groups of five (``ABCDE-FGHJK``)."""
    return f"{code[:5]}-{code[5:]}"


def _hash(key: bytes, staff_id: str, code: str) -> str:
    return hmac.new(key, f"{staff_id}\0{code}".encode(), hashlib.sha256).hexdigest()


def left(conn: Connection, staff_id: str) -> int:
    """How many unused recovery codes ``staff_id`` has."""
    query = sa.select(sa.func.count()).select_from(_r).where(_r.c.staff_id == staff_id)
    return int(conn.scalar(query) or 0)


def delete(conn: Connection, staff_id: str) -> None:
    """Remove every recovery code of ``staff_id``."""
    conn.execute(_r.delete().where(_r.c.staff_id == staff_id))


def issue(conn: Connection, key: bytes, staff_id: str, now: datetime) -> list[str]:
    """A new set for ``staff_id`` replacing any old one, in ``conn``'s transaction: the
    codes as shown (``shown``), which are stored nowhere."""
    codes = ["".join(secrets.choice(ALPHABET) for _ in range(LENGTH)) for _ in range(COUNT)]
    delete(conn, staff_id)
    conn.execute(
        _r.insert(),
        [
            {"staff_id": staff_id, "code_hash": _hash(key, staff_id, c), "created_at": now}
            for c in codes
        ],
    )
    return [shown(c) for c in codes]


def use(conn: Connection, key: bytes, staff_id: str, code: str) -> int | None:
    """Use ``staff_id``'s recovery ``code`` (normalised) once, in ``conn``'s transaction:
    how many are left, or None when it is none of theirs (wrong, or used already)."""
    gone = conn.execute(
        _r.delete().where(_r.c.staff_id == staff_id, _r.c.code_hash == _hash(key, staff_id, code))
    )
    if gone.rowcount != 1:
        return None
    return left(conn, staff_id)
