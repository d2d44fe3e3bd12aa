"""Legality rules for a roster import, checked against the file and the stored roster.

The logic rules (ID number check digit, dates, amounts, required fields) live in
``central.roster``; these need the other rows:

- ``same person enrolled twice``: one ID number on two rows (``roster.read``);
- ``two benefits``: the same name under two ID numbers that share region and birth
  date (characters 1-14), i.e. one person holding two numbers and two pensions;
- ``one account for two people``: a bank account already paid to another ID number;
- ``status transition``: only the moves in ``TRANSITIONS``.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central import schema
from central.roster import RowError
from central.schema import RetireeStatus as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.ACTIVE: frozenset({S.SUSPENDED, S.DECEASED, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.DECEASED, S.TERMINATED}),
    S.DECEASED: frozenset(),
    S.TERMINATED: frozenset(),
}


def _stored(engine: Engine) -> list[Any]:
    r = schema.retirees
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(r.c.id_number, r.c.name, r.c.bank_account, r.c.status),
                execution_options={"yield_per": 50_000},
            )
        )


def legality(engine: Engine, rows: Sequence[tuple[int, dict[str, Any]]]) -> list[RowError]:
    """Every legality problem of ``rows`` (line, values) against each other and the store."""
    if not rows:
        return []
    mine = {values["id_number"] for _, values in rows}
    status: dict[str, str] = {}
    accounts: dict[str, str] = {}
    people: dict[tuple[str, str], str] = {}
    for row in _stored(engine):
        status[row.id_number] = row.status
        if row.id_number in mine:
            continue  # its stored values are being replaced by the file's
        if row.bank_account:
            accounts[row.bank_account] = row.id_number
        people[(row.name, row.id_number[:14])] = row.id_number
    errors: list[RowError] = []
    for line, values in rows:
        number = values["id_number"]
        old, new = status.get(number), values.get("status")
        if old and new and new != old and new not in TRANSITIONS[old]:
            allowed = ", ".join(sorted(TRANSITIONS[old])) or "none"
            errors.append(
                RowError(
                    line,
                    "status",
                    f"{old} -> {new} is not an allowed transition (from {old}: {allowed})",
                    "correct the status, or fix the record with an audited manual change",
                )
            )
        if (account := values.get("bank_account")) and accounts.setdefault(
            account, number
        ) != number:
            errors.append(
                RowError(
                    line,
                    "bank_account",
                    f"account already paid to {accounts[account]} (one account for two people)",
                    "give each retiree their own account",
                )
            )
        name = values.get("name")
        if name and people.setdefault((name, number[:14]), number) != number:
            errors.append(
                RowError(
                    line,
                    "id_number",
                    f"{name} born {number[6:14]} in region {number[:6]} is already enrolled as "
                    f"{people[(name, number[:14])]} (two benefits for one person)",
                    "keep one ID number per person",
                )
            )
    return errors
