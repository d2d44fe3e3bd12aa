"""Roster legality rules (two benefits, shared account, status transitions) on both engines."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.people import roster
from central.store import schema
from common import idnumber

pytestmark = pytest.mark.integration

HEADER = "id_number,name,sex,birth_date,monthly_amount,bank_account,status\n"
BORN = dt.date(1950, 3, 7)
A = idnumber.make("110105", BORN, 124)
B = idnumber.make("110105", BORN, 126)
C = idnumber.make("310104", BORN, 128)


def _import(engine: Any, tmp_path: Path, body: str, partial: bool = False) -> Any:
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return roster.import_csv(engine, path, partial=partial)


def _row(number: str, name: str, account: str, status: str = "active") -> str:
    return f"{number},{name},{idnumber.sex(number)},{BORN},3200.00,{account},{status}\n"


def test_legality_rules_by_line_field_rule(central_engine: Any, tmp_path: Path) -> None:
    _import(central_engine, tmp_path, _row(A, "Wang Fang", "6222000000000001", "deceased"))
    body = (
        _row(A, "Wang Fang", "6222000000000001", "active")  # deceased -> active
        + _row(B, "Wang Fang", "6222000000000002")  # same name, region, birth date as A
        + _row(C, "Li Hua", "6222000000000001")  # A's account
    )
    with pytest.raises(roster.RosterError) as info:
        _import(central_engine, tmp_path, body)
    got = [(e.line, e.field) for e in info.value.errors]
    assert got == [(2, "status"), (3, "id_number"), (4, "bank_account")]
    text = str(info.value)
    assert "deceased -> active is not an allowed transition" in text
    assert f"already enrolled as {A} (two benefits" in text
    assert f"account already paid to {A} (one account for two people)" in text
    with central_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.retirees)) == 1


def test_partial_import_keeps_legal_rows_and_allowed_moves(
    central_engine: Any, tmp_path: Path
) -> None:
    _import(central_engine, tmp_path, _row(A, "Wang Fang", "6222000000000001"))
    body = _row(A, "Wang Fang", "6222000000000009", "suspended") + _row(
        C, "Li Hua", "6222000000000009"
    )
    report = _import(central_engine, tmp_path, body, partial=True)
    assert (report.updated, report.added) == (1, 0)
    assert [(e.line, e.field) for e in report.errors] == [(3, "bank_account")]
    with central_engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.retirees.c.status, schema.retirees.c.bank_account)
        ).one()
    assert tuple(row) == ("suspended", "6222000000000009")  # moving one's own account is fine


@pytest.mark.parametrize("new_first", [True, False], ids=["new-id-first", "new-id-last"])
def test_a_new_id_never_takes_a_stored_retirees_identity_or_account(
    central_engine: Any, tmp_path: Path, new_first: bool
) -> None:
    """The verdict does not depend on where the stored retiree's own row is (issue 13)."""
    _import(central_engine, tmp_path, _row(A, "Wang Fang", "6222000000000001"))
    own = _row(A, "Wang Fang", "6222000000000001")
    same_person = _row(B, "Wang Fang", "6222000000000002")  # A's name, region, birth date
    same_account = _row(C, "Li Hua", "6222000000000001")  # A's account
    rows = [same_person, same_account, own] if new_first else [own, same_person, same_account]
    report = _import(central_engine, tmp_path, "".join(rows), partial=True)
    flagged = {rows[e.line - 2] for e in report.errors}
    assert flagged == {same_person, same_account}
    assert (report.added, report.unchanged) == (0, 1)
    with central_engine.connect() as conn:
        ids = conn.scalars(sa.select(schema.retirees.c.id_number)).all()
    assert ids == [A]


D = idnumber.make("440106", BORN, 130)
NEW = [idnumber.make("510107", BORN, serial) for serial in range(140, 160, 2)]
STORED = [
    _row(A, "Wang Fang", "6222000000000001"),
    _row(D, "Zhao Lei", "6222000000000004", "deceased"),
]
FILE = [
    _row(A, "Wang Fang", "6222000000000001"),  # A's own row, unchanged
    _row(B, "Wang Fang", "6222000000000002"),  # A's person under a new number
    _row(C, "Li Hua", "6222000000000001"),  # A's account
    _row(D, "Zhao Lei", "6222000000000005", "active"),  # deceased -> active; moves account
    _row(NEW[0], "Sun Mei", "6222000000000004"),  # D's account, free if D's row counted
    _row(NEW[1], "Ma Jun", "6222000000000005"),  # the account D's row moves to
    _row(NEW[2], "Hu Bo", "6222000000000007"),  # two new numbers, one account
    _row(NEW[3], "Gao Yu", "6222000000000007"),
    _row(NEW[4], "Lin Na", "6222000000000008"),  # nothing wrong
]


def _verdict(engine: Any, tmp_path: Path, rows: list[str], partial: bool) -> Any:
    """(ID number, field) of every problem, and with ``partial`` the roster after the import."""
    with engine.begin() as conn:
        for table in (schema.events, schema.roster_versions, schema.retirees):
            conn.execute(table.delete())
    _import(engine, tmp_path, "".join(STORED))
    try:
        report = _import(engine, tmp_path, "".join(rows), partial=partial)
    except roster.RosterError as exc:
        errors = exc.errors
    else:
        errors = report.errors
    flagged = {(rows[e.line - 2].split(",")[0], e.field) for e in errors}
    r = schema.retirees
    with engine.connect() as conn:
        after = conn.execute(sa.select(r.c.id_number, r.c.bank_account, r.c.status)).all()
    return flagged, sorted(map(tuple, after))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=st.permutations(range(len(FILE))))
def test_the_verdict_does_not_depend_on_the_row_order(
    central_engine: Any, tmp_path: Path, order: list[int]
) -> None:
    shuffled = [FILE[i] for i in order]
    clashes = {
        (D, "status"),
        (B, "id_number"),
        (C, "bank_account"),
        (NEW[1], "bank_account"),
        (NEW[2], "bank_account"),
        (NEW[3], "bank_account"),
    }
    flagged, after = _verdict(central_engine, tmp_path, shuffled, partial=False)
    assert flagged == clashes
    assert [a[0] for a in after] == sorted([A, D])  # nothing written
    flagged, after = _verdict(central_engine, tmp_path, shuffled, partial=True)
    # D's row is refused, so D keeps its account: the new number taking it is refused too
    assert flagged == clashes | {(NEW[0], "bank_account")}
    assert after == sorted(
        [
            (A, "6222000000000001", "active"),
            (D, "6222000000000004", "deceased"),
            (NEW[4], "6222000000000008", "active"),
        ]
    )
