"""The resident-ID text block and the identity record."""

import datetime as dt

import numpy as np
import pytest

from common import idnumber
from hal.card.identity import NO_EXPIRY, CardText, Identity, build_text, nation_name, parse_text
from hal.errors import CardReadError

BORN = dt.date(1946, 11, 2)


def card(**changes: object) -> CardText:
    fields: dict[str, object] = {
        "id_number": idnumber.make("440106", BORN, 27),
        "name": "欧阳秀兰",
        "sex": "M",
        "nation": "03",
        "birth_date": BORN,
        "address": "广东省广州市天河区体育西路100号之三",
        "authority": "广州市公安局天河分局",
        "valid_from": dt.date(2012, 4, 1),
        "valid_until": dt.date(2032, 4, 1),
    }
    fields.update(changes)
    return CardText(**fields)  # type: ignore[arg-type]


def test_text_block_round_trip() -> None:
    block = build_text(card())
    assert len(block) == 256
    assert parse_text(block) == card()


def test_field_offsets_follow_the_layout() -> None:
    text = build_text(card()).decode("utf-16-le")
    assert text[15] == "1"  # sex code after 15 name characters
    assert text[16:18] == "03"
    assert text[18:26] == "19461102"
    assert text[61:79] == card().id_number


def test_no_expiry_is_none() -> None:
    block = build_text(card(valid_until=None))
    assert NO_EXPIRY in block.decode("utf-16-le")
    assert parse_text(block).valid_until is None


def test_bad_check_digit_is_rejected() -> None:
    good = card().id_number
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(CardReadError, match="ID number is invalid"):
        parse_text(build_text(card(id_number=bad)))


@pytest.mark.parametrize("size", [0, 255, 257])
def test_wrong_block_size_is_rejected(size: int) -> None:
    with pytest.raises(CardReadError, match="256"):
        parse_text(bytes(size))


def test_bad_date_is_named() -> None:
    block = bytearray(build_text(card()))
    block[18 * 2 : 26 * 2] = "19461340".encode("utf-16-le")
    with pytest.raises(CardReadError, match="birth date"):
        parse_text(bytes(block))


def test_nation_names() -> None:
    assert nation_name("01") == "汉"
    assert nation_name("56") == "基诺"
    assert nation_name("97") == "其他"
    assert nation_name("77").startswith("未知")


def test_identity_needs_a_photo_or_a_reason() -> None:
    fields = {
        "id_number": card().id_number,
        "name": "x",
        "sex": "M",
        "nation": "01",
        "birth_date": BORN,
        "source": "resident-id",
    }
    with pytest.raises(ValueError, match="photo_reason"):
        Identity(**fields)  # type: ignore[arg-type]
    assert Identity(**fields, photo=np.zeros((2, 2, 3), np.uint8)).photo is not None  # type: ignore[arg-type]
