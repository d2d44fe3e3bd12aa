"""Social-security card data model (the national card specification, basic files).

The card's social-security application is selected by its DF name
``sx1.sh.社会保障`` (GBK). Two elementary files hold the public basic data,
read with READ RECORD by short file identifier; every record is
``tag, length, value``:

- EF05 (SFI 5), issuer data: 01 card identification code, 02 card type,
  03 specification version, 04 issuing organisation, 05 issue date (BCD
  YYYYMMDD), 06 valid until (BCD), 07 card number (ASCII).
- EF06 (SFI 6), holder data: 08 social-security number (= ID number, ASCII),
  09 name (GBK, space padded), 0A sex (ASCII '1' male / '2' female), 0B nation
  (BCD), 0C birthplace (BCD region code), 0D birth date (BCD YYYYMMDD).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Final

AID: Final = "sx1.sh.社会保障".encode("gbk")
EF_ISSUER: Final = 5
EF_HOLDER: Final = 6
OK: Final = 0x9000
FILE_NOT_FOUND: Final = 0x6A82
RECORD_NOT_FOUND: Final = 0x6A83
BAD_INS: Final = 0x6D00

# record tag -> (file, field)
RECORDS: Final = {
    0x07: (EF_ISSUER, "card_number"),
    0x06: (EF_ISSUER, "valid_until"),
    0x08: (EF_HOLDER, "ssn"),
    0x09: (EF_HOLDER, "name"),
    0x0A: (EF_HOLDER, "sex"),
    0x0B: (EF_HOLDER, "nation"),
    0x0D: (EF_HOLDER, "birth_date"),
}


def select_aid() -> list[int]:
    """SELECT by DF name."""
    return [0x00, 0xA4, 0x04, 0x00, len(AID), *AID]


def read_record(tag: int, sfi: int, le: int = 0) -> list[int]:
    """READ RECORD ``tag`` of the file with short identifier ``sfi``."""
    return [0x00, 0xB2, tag, (sfi << 3) | 0x04, le]


def bcd(value: str) -> bytes:
    """Digits packed two per byte."""
    return bytes.fromhex(value)


def unbcd(data: bytes) -> str:
    """Packed digits back to text."""
    return data.hex().upper()


@dataclass(frozen=True)
class SocialSecurityHolder:
    """What a social-security card tells about its holder."""

    card_number: str
    ssn: str
    name: str
    sex: str  # "M" / "F"
    nation: str  # GB 3304 code, two digits
    birth_date: dt.date
    valid_until: dt.date | None = None

    def records(self) -> dict[int, bytes]:
        """Record values by tag, encoded as the card stores them."""
        return {
            0x07: self.card_number.encode("ascii"),
            0x06: bcd(f"{self.valid_until:%Y%m%d}") if self.valid_until else bcd("99991231"),
            0x08: self.ssn.encode("ascii"),
            0x09: self.name.encode("gbk").ljust(30, b" "),
            0x0A: b"1" if self.sex == "M" else b"2",
            0x0B: bcd(self.nation),
            0x0D: bcd(f"{self.birth_date:%Y%m%d}"),
        }
