"""A retiree's contact details: the roster's rules for them, masking, and ``contact_of``.

Phone numbers are stored E.164-like: ``+`` then 8-15 digits. A roster may write them as
people do (spaces, dashes, dots, brackets, ``00`` for ``+``); an 11-digit number starting
with 1 is a mainland mobile and gets ``+86``. Logs and reports show numbers masked
(``mask_phone``): never a full number.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.store import schema

MAX_RAW = 32  # characters a roster's phone cell may hold before it is refused unread
_SEPARATORS = re.compile(r"[\s\-.()/]")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# an address as RFC 5321 bounds it, with no room for header injection (no spaces, no commas)
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class Language(StrEnum):
    """The languages reminders and pages are written in."""

    ZH = "zh"
    EN = "en"


DEFAULT_LANGUAGE = Language.ZH


class ContactError(ValueError):
    """A contact detail cannot be stored: ``problem`` and ``fix`` say why and what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} ({fix})")
        self.problem = problem
        self.fix = fix


def normalise_phone(raw: str) -> str:
    """``raw`` as ``+`` and 8-15 digits, or ``ContactError``."""
    if len(raw) > MAX_RAW:
        raise ContactError(f"{len(raw)} characters, at most {MAX_RAW}", "write one phone number")
    number = _SEPARATORS.sub("", raw)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif _CN_MOBILE.fullmatch(number):
        number = "+86" + number
    if not _E164.fullmatch(number):
        raise ContactError(
            f"{mask_phone(raw)} is not a phone number",
            "write +<country code><number>, e.g. +8613800138000, or an 11-digit mobile",
        )
    return number


def normalise_email(raw: str) -> str:
    """``raw`` as a bounded e-mail address (domain lower-cased), or ``ContactError``."""
    if len(raw) > 254 or not _EMAIL.fullmatch(raw):
        raise ContactError("not an e-mail address", "write it as name@example.org")
    local, domain = raw.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def mask_phone(number: str) -> str:
    """A phone number fit for a log: at most its last 4 digits shown (``+86*******8000``)."""
    if len(number) <= 4:
        return "*" * len(number)
    head = "+" if number.startswith("+") else ""
    return head + "*" * (len(number) - len(head) - 4) + number[-4:]


def mask_email(address: str) -> str:
    """An e-mail address fit for a log: the first character and the domain."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_recipient(channel: str, recipient: str) -> str:
    """``recipient`` of ``channel`` masked for a log (phone and e-mail; others as they are)."""
    if channel == "sms":
        return mask_phone(recipient)
    if channel == "email":
        return mask_email(recipient)
    return recipient


def parse_opt_out(raw: str) -> bool:
    """A roster's ``reminder_opt_out`` cell: yes/no, true/false, 1/0; else ``ContactError``."""
    value = raw.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("no", "n", "false", "0"):
        return False
    raise ContactError(f"{raw[:20]!r} is not yes or no", "write yes or no")


@dataclass(frozen=True)
class Contact:
    """How to reach one retiree (or their next of kin), in their language."""

    id_number: str
    name: str
    phone: str | None
    email: str | None
    kin_name: str | None
    kin_phone: str | None
    language: Language
    opted_out: bool

    def __repr__(self) -> str:  # a Contact may end up in a log: numbers masked
        phone = mask_phone(self.phone) if self.phone else None
        kin = mask_phone(self.kin_phone) if self.kin_phone else None
        return f"Contact(id_number={self.id_number[:6]}..., phone={phone}, kin_phone={kin})"


_r = schema.retirees
COLUMNS = (
    _r.c.id_number,
    _r.c.name,
    _r.c.phone,
    _r.c.email,
    _r.c.kin_name,
    _r.c.kin_phone,
    _r.c.language,
    _r.c.reminders_opt_out,
)


def from_row(row: Any) -> Contact:
    """A ``Contact`` from a row selected with ``COLUMNS``."""
    m = row._mapping
    return Contact(
        id_number=m["id_number"],
        name=m["name"],
        phone=m["phone"],
        email=m["email"],
        kin_name=m["kin_name"],
        kin_phone=m["kin_phone"],
        language=Language(m["language"] or DEFAULT_LANGUAGE),
        opted_out=bool(m["reminders_opt_out"]),
    )


def contact_of(conn: Connection, id_number: str) -> Contact | None:
    """The contact details of retiree ``id_number``; None if no such retiree."""
    row = conn.execute(sa.select(*COLUMNS).where(_r.c.id_number == id_number)).first()
    return None if row is None else from_row(row)
