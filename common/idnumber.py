"""Resident identity numbers (GB 11643-1999): 18 characters, ISO 7064 MOD 11-2 check."""

import datetime as dt
from typing import Final

_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK: Final = "10X98765432"


class IdNumberError(ValueError):
    """An ID number is malformed; the message says which rule it breaks."""


def check_digit(first17: str) -> str:
    """The check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise IdNumberError("the first 17 characters must be digits")
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def birth_date(id_number: str) -> dt.date:
    """The birth date encoded in characters 7-14 (YYYYMMDD)."""
    try:
        return dt.datetime.strptime(id_number[6:14], "%Y%m%d").date()
    except ValueError:
        raise IdNumberError(
            f"characters 7-14 ({id_number[6:14]!r}) are not a valid birth date YYYYMMDD"
        ) from None


def validate(id_number: str) -> str:
    """Return the normalised ID number (upper-case X) or raise ``IdNumberError``."""
    value = id_number.strip().upper()
    if len(value) != 18:
        raise IdNumberError(f"must be 18 characters, got {len(value)}")
    if not value[:17].isascii() or not value[:17].isdigit():
        raise IdNumberError("the first 17 characters must be digits")
    if value[17] not in "0123456789X":
        raise IdNumberError("the last character must be a digit or X")
    expected = check_digit(value[:17])
    if value[17] != expected:
        raise IdNumberError(f"check digit is {value[17]!r}, expected {expected!r}")
    birth_date(value)
    return value


def sex(id_number: str) -> str:
    """'M' or 'F' from the 17th digit (odd = male)."""
    return "M" if int(id_number[16]) % 2 else "F"


def make(region: str, born: dt.date, serial: int) -> str:
    """Build a valid ID number (for generators and tests): 6-digit region, date, 3-digit serial."""
    first17 = f"{region}{born:%Y%m%d}{serial:03d}"
    return first17 + check_digit(first17)
