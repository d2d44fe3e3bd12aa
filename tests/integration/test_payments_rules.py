"""Roster legality rules (two benefits, shared account, status transitions) on both engines."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central import roster, schema
from protocol import idnumber

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
