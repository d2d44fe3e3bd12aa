"""The identity record every card reader returns, and the resident-ID text block.

The GA/T 467 "basic info" text is 256 bytes of UTF-16LE in fixed fields padded
with spaces: name (15 chars), sex code (1), nation code (2), birth date
YYYYMMDD (8), address (35), ID number (18), issuing authority (15), valid from
(8), valid until (8, or 长期 = no expiry), reserved (18).
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from common import idnumber
from hal.errors import CardReadError

TEXT_BYTES: Final = 256
# (field, characters) in block order
_LAYOUT: Final = (
    ("name", 15),
    ("sex", 1),
    ("nation", 2),
    ("birth", 8),
    ("address", 35),
    ("id_number", 18),
    ("authority", 15),
    ("valid_from", 8),
    ("valid_until", 8),
    ("reserved", 18),
)
NO_EXPIRY: Final = "长期"

NATIONS: Final = (
    "汉",
    "蒙古",
    "回",
    "藏",
    "维吾尔",
    "苗",
    "彝",
    "壮",
    "布依",
    "朝鲜",
    "满",
    "侗",
    "瑶",
    "白",
    "土家",
    "哈尼",
    "哈萨克",
    "傣",
    "黎",
    "傈僳",
    "佤",
    "畲",
    "高山",
    "拉祜",
    "水",
    "东乡",
    "纳西",
    "景颇",
    "柯尔克孜",
    "土",
    "达斡尔",
    "仫佬",
    "羌",
    "布朗",
    "撒拉",
    "毛南",
    "仡佬",
    "锡伯",
    "阿昌",
    "普米",
    "塔吉克",
    "怒",
    "乌孜别克",
    "俄罗斯",
    "鄂温克",
    "德昂",
    "保安",
    "裕固",
    "京",
    "塔塔尔",
    "独龙",
    "鄂伦春",
    "赫哲",
    "门巴",
    "珞巴",
    "基诺",
)
"""GB 3304 nationality names; code ``n`` (1-56) is ``NATIONS[n - 1]``."""


def nation_name(code: str) -> str:
    """Name of a GB 3304 nation code ('01'..'56', '97' other, '98' naturalised)."""
    special = {"97": "其他", "98": "外国血统中国籍人士"}
    if code in special:
        return special[code]
    if code.isdigit() and 1 <= int(code) <= len(NATIONS):
        return NATIONS[int(code) - 1]
    return f"未知({code})"


@dataclass(frozen=True)
class Identity:
    """Who is at the terminal, as read from a card.

    ``photo`` is the card photo as RGB uint8 (H x W x 3) when it could be
    decoded; otherwise ``photo_reason`` says why it is unavailable.
    """

    id_number: str
    name: str
    sex: str  # "M" / "F"
    nation: str  # GB 3304 code, e.g. "01"
    birth_date: dt.date
    source: str  # "resident-id" or "social-security"
    address: str = ""
    authority: str = ""
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None  # None = no expiry (长期)
    card_number: str = ""
    photo: np.ndarray | None = field(default=None, compare=False, repr=False)
    photo_reason: str | None = None

    def __post_init__(self) -> None:
        if self.photo is None and not self.photo_reason:
            raise ValueError("an identity without a photo must say why (photo_reason)")


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise CardReadError(f"card {what} {text!r} is not a date YYYYMMDD") from None


@dataclass(frozen=True)
class CardText:
    """The printed fields of a resident-ID card."""

    id_number: str
    name: str
    sex: str
    nation: str
    birth_date: dt.date
    address: str
    authority: str
    valid_from: dt.date
    valid_until: dt.date | None


def parse_text(block: bytes) -> CardText:
    """Fields of a 256-byte text block; raises ``CardReadError`` on bad content."""
    if len(block) != TEXT_BYTES:
        raise CardReadError(f"text block is {len(block)} bytes, expected {TEXT_BYTES}")
    try:
        text = block.decode("utf-16-le")
    except UnicodeDecodeError:
        raise CardReadError("text block is not UTF-16LE") from None
    raw: dict[str, str] = {}
    pos = 0
    for name, width in _LAYOUT:
        raw[name] = text[pos : pos + width].strip(" \x00")
        pos += width
    try:
        id_number = idnumber.validate(raw["id_number"])
    except idnumber.IdNumberError as exc:
        raise CardReadError(f"card ID number is invalid: {exc}") from None
    sexes = {"1": "M", "2": "F"}
    if raw["sex"] not in sexes:
        raise CardReadError(f"card sex code {raw['sex']!r} is neither 1 nor 2")
    return CardText(
        id_number=id_number,
        name=raw["name"],
        sex=sexes[raw["sex"]],
        nation=raw["nation"],
        birth_date=_date(raw["birth"], "birth date"),
        address=raw["address"],
        authority=raw["authority"],
        valid_from=_date(raw["valid_from"], "validity start"),
        valid_until=None
        if raw["valid_until"] == NO_EXPIRY
        else _date(raw["valid_until"], "validity end"),
    )


def build_text(card: CardText) -> bytes:
    """The 256-byte text block for ``card`` (used by the emulator and tests)."""
    values = {
        "name": card.name,
        "sex": {"M": "1", "F": "2"}[card.sex],
        "nation": card.nation,
        "birth": f"{card.birth_date:%Y%m%d}",
        "address": card.address,
        "id_number": card.id_number,
        "authority": card.authority,
        "valid_from": f"{card.valid_from:%Y%m%d}",
        "valid_until": f"{card.valid_until:%Y%m%d}" if card.valid_until else NO_EXPIRY,
        "reserved": "",
    }
    parts = []
    for key, width in _LAYOUT:
        value = values[key][:width]
        parts.append(value + " " * (width - len(value)))
    return "".join(parts).encode("utf-16-le")
