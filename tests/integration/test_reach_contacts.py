"""Contact details on the roster: validated per field, normalised, kept through imports."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central.people import contacts, roster
from central.people.contacts import Language
from central.store import schema
from common import idnumber

pytestmark = pytest.mark.integration

HEADER = (
    "id_number,name,sex,birth_date,phone,email,next_of_kin_name,next_of_kin_phone,"
    "language,reminder_opt_out\n"
)
BORN = dt.date(1950, 3, 7)
A = idnumber.make("110105", BORN, 124)
B = idnumber.make("110105", BORN, 126)


def _row(number: str, *contact: str) -> str:
    name = "Wang Fang" if number == A else "Zhao Lei"
    return f"{number},{name},{idnumber.sex(number)},{BORN}," + ",".join(contact) + "\n"


def _import(engine: Any, tmp_path: Path, body: str, header: str = HEADER, **kw: Any) -> Any:
    path = tmp_path / "roster.csv"
    path.write_text(header + body, encoding="utf-8")
    return roster.import_csv(engine, path, **kw)


def test_contacts_imported_normalised_and_kept(central_engine: Any, tmp_path: Path) -> None:
    body = _row(A, "138 0013 8000", "Wang@Example.ORG", "Li Wei", "0044 20 7946 0000", "EN", "yes")
    body += _row(B, "", "", "", "", "", "")
    report = _import(central_engine, tmp_path, body)
    assert report.added == 2
    with central_engine.connect() as conn:
        a = contacts.contact_of(conn, A)
        b = contacts.contact_of(conn, B)
        assert contacts.contact_of(conn, idnumber.make("110105", BORN, 128)) is None
    assert a == contacts.Contact(
        A, "Wang Fang", "+8613800138000", "Wang@example.org", "Li Wei", "+442079460000",
        Language.EN, True,
    )  # fmt: skip
    assert b is not None and (b.phone, b.language, b.opted_out) == (None, Language.ZH, False)
    assert "13800138000" not in repr(a) and "8000" in repr(a)

    # a roster without the contact columns leaves them alone
    plain = "id_number,name,sex,birth_date\n"
    _import(central_engine, tmp_path, f"{A},Wang Fang,{idnumber.sex(A)},{BORN}\n", header=plain)
    # a change is kept, and its event does not carry the number
    report = _import(central_engine, tmp_path, _row(A, "+86 139 0000 0000", "", "", "", "", "no"))
    assert report.updated == 1
    with central_engine.connect() as conn:
        a = contacts.contact_of(conn, A)
        detail = conn.scalar(
            sa.select(schema.events.c.detail)
            .where(schema.events.c.kind == "roster_updated")
            .order_by(schema.events.c.id.desc())
        )
    assert a is not None and (a.phone, a.email, a.opted_out) == (
        "+8613900000000",
        "Wang@example.org",
        False,
    )
    assert detail["phone"] == ["(changed)", "(changed)"]
    assert "13900000000" not in str(detail)


def test_bad_contacts_named_by_line_and_field(central_engine: Any, tmp_path: Path) -> None:
    body = _row(A, "12345", "not-an-address", "=HYPERLINK()", "+86" + "1" * 40, "fr", "maybe")
    with pytest.raises(roster.RosterError) as caught:
        _import(central_engine, tmp_path, body)
    problems = {(e.line, e.field) for e in caught.value.errors}
    assert problems == {
        (2, "phone"),
        (2, "email"),
        (2, "next_of_kin_name"),
        (2, "next_of_kin_phone"),
        (2, "language"),
        (2, "reminder_opt_out"),
    }
    text = str(caught.value)
    assert "write zh or en" in text and "write yes or no" in text
    assert "1" * 40 not in text  # a bad number is not echoed whole either
    with central_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.retirees)) == 0


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("13800138000", "+8613800138000"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("0086-138-0013-8000", "+8613800138000"),
    ],
)
def test_phone_normalised(raw: str, stored: str) -> None:
    assert contacts.normalise_phone(raw) == stored


@pytest.mark.parametrize("raw", ["", "+0123456789", "+12", "12345678901", "+86 138 abc", "9" * 33])
def test_phone_refused(raw: str) -> None:
    with pytest.raises(contacts.ContactError):
        contacts.normalise_phone(raw)


def test_masks() -> None:
    assert contacts.mask_phone("+8613800138000") == "+*********8000"
    assert contacts.mask_email("wang@example.org") == "w***@example.org"
    assert contacts.mask_recipient("sms", "+8613800138000").endswith("8000")
