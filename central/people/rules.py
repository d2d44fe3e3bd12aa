"""Legality rules for a roster import, checked against the file and the stored roster.

The logic rules (ID number check digit, dates, amounts, required fields, free text) live
in ``central.people.roster``; these need the other rows, and run in SQL over the import's
staging table (``central.people.staging``), so their memory does not grow with the file:

- ``same person enrolled twice``: one ID number on two rows (every such row refused);
- ``two benefits``: the same name under two ID numbers that share region and birth
  date (characters 1-14), i.e. one person holding two numbers and two pensions;
- ``one account for two people``: a bank account held by another ID number;
- ``status transition``: only the moves in ``TRANSITIONS``.

The verdict does not depend on the order of the rows. For the two rules of a value one
ID number may hold (an account, a person), what counts is the roster after the import
(a row's value, else the stored one), and when two ID numbers would hold one value the
stronger claim keeps it: stored with that value > enrolled with another > new in this
file; equal claims are all refused. So a new ID number never takes an enrolled
retiree's account or identity, before or after that retiree's own row, and an enrolled
retiree's own row is never the one refused.

With ``partial`` the rows refused are left out and the two rules run again over the
rest until nothing new is refused: a refused row keeps its stored values, which another
row may then clash with.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.people import staging
from central.people.csvio import RowError
from central.store import schema
from central.store.schema import RetireeStatus as S

TRANSITIONS: dict[str, frozenset[str]] = {
    S.ACTIVE: frozenset({S.SUSPENDED, S.DECEASED, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.DECEASED, S.TERMINATED}),
    S.DECEASED: frozenset(),
    S.TERMINATED: frozenset(),
}
_s, _r = staging.table, schema.retirees
_STREAM = {"yield_per": staging.CHUNK}
# a stored claim on a value: held already > enrolled with another value > new ID number
_HELD, _ENROLLED, _NEW = 2, 1, 0


def check(conn: Connection, *, partial: bool) -> list[RowError]:
    """Every legality problem of the staged rows; with ``partial`` their rows refused
    (``staging.refuse``), repeated until the rows left clash with nothing."""
    errors = [*_same_id(conn), *_status_moves(conn), *_held_once(conn)]
    if not partial:
        return errors
    new = errors
    while new:
        staging.refuse(conn, (e.line for e in new))
        new = list(_held_once(conn))
        errors += new
    return errors


def _same_id(conn: Connection) -> Iterator[RowError]:
    other, grouped = _s.alias("other"), _s.alias("grouped")
    twice = sa.select(grouped.c.id_number).group_by(grouped.c.id_number).having(sa.func.count() > 1)
    first_other = (
        sa.select(sa.func.min(other.c.line))
        .where(other.c.id_number == _s.c.id_number, other.c.line != _s.c.line)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(_s.c.line, first_other).where(_s.c.id_number.in_(twice)).order_by(_s.c.line),
        execution_options=_STREAM,
    )
    for line, first in rows:
        yield RowError(line, "id_number", f"also on line {first}", "keep one row")


def _status_moves(conn: Connection) -> Iterator[RowError]:
    rows = conn.execute(
        sa.select(_s.c.line, _r.c.status, _s.c.status)
        .join_from(_s, _r, _r.c.id_number == _s.c.id_number)
        .where(_s.c.status.is_not(None), _s.c.status != _r.c.status)
        .order_by(_s.c.line),
        execution_options=_STREAM,
    )
    for line, old, new in rows:
        allowed = TRANSITIONS.get(old, frozenset())
        if new not in allowed:
            yield RowError(
                line,
                "status",
                f"{old} -> {new} is not an allowed transition "
                f"(from {old}: {', '.join(sorted(allowed)) or 'none'})",
                "correct the status, or fix the record with an audited manual change",
            )


@dataclass(frozen=True)
class _Once:
    """A value one ID number may hold: its staged column and its stored expression."""

    column: str
    stored: Callable[[Any], sa.ColumnElement[Any]]
    error: Callable[[Any], RowError]


def _account_error(row: Any) -> RowError:
    where = "already paid to" if row.held else "also given to"
    at = "" if row.held else f" on line {row.other_line}"
    return RowError(
        row.line,
        "bank_account",
        f"account {where} {row.other}{at} (one account for two people)",
        "give each retiree their own account",
    )


def _person_error(row: Any) -> RowError:
    number, name = row.id, row.key[14:]
    who = f"{name} born {number[6:14]} in region {number[:6]}"
    where = "is already enrolled as" if row.held else f"is also on line {row.other_line} as"
    return RowError(
        row.line,
        "id_number",
        f"{who} {where} {row.other} (two benefits for one person)",
        "keep one ID number per person",
    )


_RULES = (
    _Once("bank_account", lambda r: r.c.bank_account, _account_error),
    _Once(
        "person",
        lambda r: staging.person_sql(r.c.id_number, r.c.name),
        _person_error,
    ),
)


def _held_once(conn: Connection) -> Iterator[RowError]:
    for rule in _RULES:
        for row in conn.execute(_clashes(rule), execution_options=_STREAM):
            yield rule.error(row)


def _clashes(rule: _Once) -> sa.Select[Any]:
    """The staged rows (not refused) whose value another ID number holds after the import
    with an equal or stronger claim: line, id, key, the other ID number, whether it is
    stored with the value (``held``), else its line.

    Only values held more than once are ranked: values on two staged rows (an index
    scan of the staging table) and stored values a staged row also gives (one scan of
    the roster, probing the staging table's index).
    """
    mine = _s.c[rule.column]
    stored_key = rule.stored(_r)
    same_key, same_id = _s.alias("same_key"), _s.alias("same_id")
    kept = (  # stored values not replaced by the file that a staged row also gives
        sa.select(
            sa.null().cast(sa.Integer).label("line"),
            _r.c.id_number.label("id"),
            stored_key.label("key"),
            sa.literal(_HELD).label("claim"),
        )
        .where(
            sa.exists().where(same_key.c[rule.column] == stored_key, ~same_key.c.refused),
            ~sa.exists().where(
                same_id.c.id_number == _r.c.id_number,
                ~same_id.c.refused,
                same_id.c[rule.column].is_not(None),
            ),
        )
        .cte("kept")
    )
    twice = sa.select(mine).where(~_s.c.refused, mine.is_not(None)).group_by(mine)
    contested = sa.union(twice.having(sa.func.count() > 1), sa.select(kept.c.key)).cte("contested")
    claim = sa.case((_r.c.id_number.is_(None), _NEW), (stored_key == mine, _HELD), else_=_ENROLLED)
    staged = (
        sa.select(_s.c.line, _s.c.id_number.label("id"), mine.label("key"), claim.label("claim"))
        .select_from(_s.outerjoin(_r, _r.c.id_number == _s.c.id_number))
        .where(~_s.c.refused, mine.in_(sa.select(contested.c[0])))
    )
    holders = sa.union_all(staged, sa.select(kept)).subquery("holders")
    h = holders.c
    # the strongest holder (lowest ID number among equals), and the highest ID number
    # holding at least this row's claim: one of them is another ID number iff one exists
    top = sa.func.first_value(h.id).over(partition_by=h.key, order_by=(h.claim.desc(), h.id))
    high = sa.func.max(h.id).over(partition_by=h.key, order_by=h.claim.desc())
    ranked = sa.select(h.line, h.id, h.key, top.label("top"), high.label("high")).subquery("ranked")
    w = ranked.c
    flagged = (
        sa.select(w.line, w.id, w.key, sa.case((w.top != w.id, w.top), else_=w.high).label("other"))
        .where(w.line.is_not(None), sa.or_(w.top != w.id, w.high != w.id))
        .subquery("flagged")
    )
    f = flagged.c
    theirs, line_of = _r.alias("theirs"), _s.alias("line_of")
    other_line = (
        sa.select(sa.func.min(line_of.c.line))
        .where(
            line_of.c.id_number == f.other,
            line_of.c[rule.column] == f.key,
            ~line_of.c.refused,
        )
        .scalar_subquery()
    )
    return (
        sa.select(
            f.line,
            f.id,
            f.key,
            f.other,
            sa.func.coalesce(rule.stored(theirs) == f.key, False).label("held"),
            other_line.label("other_line"),
        )
        .select_from(flagged.outerjoin(theirs, theirs.c.id_number == f.other))
        .order_by(f.line)
    )
