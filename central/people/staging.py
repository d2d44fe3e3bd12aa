"""The temporary table a roster import is checked in, so memory does not grow with the file.

The rows that pass the per-row rules are written here in chunks as the file is read;
the legality rules (``central.people.rules``) then compare them with each other and with the
stored roster in SQL, marking the rows they refuse, and the import reads back in chunks
the rows that add or change a retiree to write them (a re-import of an unchanged roster
reads back nothing). A temporary table lives in the importing connection only
(SQLite keeps it in a temporary file, PostgreSQL spills it past ``temp_buffers``): the
import drops it before its commit, and a rollback takes its creation back.
"""

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.store import schema

CHUNK = 2_000
_r = schema.retirees
_metadata = sa.MetaData()
VALUES = (
    "id_number",
    "name",
    "sex",
    "birth_date",
    "community",
    "monthly_amount_cents",
    "bank_account",
    "account_name",
    "status",
    "retirement_date",
    "certified_until",
    "phone",
    "email",
    "kin_name",
    "kin_phone",
    "language",
    "reminders_opt_out",
)
"""The roster columns a row may carry; NULL in the table = not given (left alone)."""

table = sa.Table(
    "roster_import",
    _metadata,
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    *(sa.Column(name, _r.c[name].type.copy()) for name in VALUES),
    # the person a name rule compares: region and birth date (the ID's first 14
    # characters), then the name
    sa.Column("person", sa.String(120), nullable=False),
    sa.Column("refused", sa.Boolean, nullable=False, default=False),
    prefixes=["TEMPORARY"],
)
_INDEXES = (
    sa.Index("ix_roster_import_id_number", table.c.id_number),
    sa.Index("ix_roster_import_bank_account", table.c.bank_account),
    sa.Index("ix_roster_import_person", table.c.person),
)


def person(id_number: str, name: str) -> str:
    """The key of the two-benefits rule: region and birth date of the ID, then the name."""
    return id_number[:14] + name


def person_sql(id_number: Any, name: Any) -> sa.ColumnElement[str]:
    """``person`` in SQL, of an ID number column and a name column."""
    return sa.func.substr(id_number, 1, 14, type_=sa.String).concat(name)


def create(conn: Connection) -> None:
    """The empty table, in ``conn``'s transaction (its indexes come after the rows)."""
    conn.execute(sa.schema.CreateTable(table))


def load(conn: Connection, rows: Iterable[tuple[int, dict[str, Any]]]) -> int:
    """Write (line, values) rows in chunks, then index them; how many.

    Through the driver's ``executemany`` with plain tuples: SQLAlchemy's processing of
    each parameter was two thirds of the time (SQLite takes dates as ISO text, as
    SQLAlchemy's ``Date`` stores them)."""
    columns = ["line", *VALUES, "person", "refused"]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(columns))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    as_text = conn.dialect.name == "sqlite"
    count = 0
    chunk: list[tuple[Any, ...]] = []
    for line, values in rows:
        cells = [values.get(name) for name in VALUES]
        if as_text:
            cells = [c.isoformat() if isinstance(c, dt.date) else c for c in cells]
        chunk.append((line, *cells, person(values["id_number"], values["name"]), False))
        if len(chunk) == CHUNK:
            conn.exec_driver_sql(sql, chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        conn.exec_driver_sql(sql, chunk)
        count += len(chunk)
    for index in _INDEXES:
        index.create(conn)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {table.name}")
    return count


def refuse(conn: Connection, lines: Iterable[int]) -> None:
    """Mark rows as refused: the rules and the write leave them out from now on."""
    todo = sorted(set(lines))
    for start in range(0, len(todo), CHUNK):
        conn.execute(
            table.update().where(table.c.line.in_(todo[start : start + CHUNK])).values(refused=True)
        )


def _given_differs(name: str) -> sa.ColumnElement[bool]:
    given, stored = table.c[name], _r.c[name]
    return sa.and_(given.is_not(None), sa.or_(stored.is_(None), given != stored))


def _differs() -> sa.ColumnElement[bool]:
    """A staged row that would change the roster: a new ID number, or a value given that
    differs from the stored one (never ``certified_until``: a roster does not move it)."""
    changes: list[sa.ColumnElement[bool]] = [_r.c.id_number.is_(None)]
    changes += [_given_differs(name) for name in VALUES[1:] if name != "certified_until"]
    return sa.or_(*changes)


def ignored_certifications(conn: Connection) -> int:
    """How many rows not refused give a known retiree a ``certified_until`` other than the
    stored one (left alone: a roster never moves it)."""
    return int(
        conn.scalar(
            sa.select(sa.func.count())
            .select_from(table.join(_r, _r.c.id_number == table.c.id_number))
            .where(~table.c.refused, _given_differs("certified_until"))
        )
        or 0
    )


def changes(conn: Connection, *, with_line: bool = False) -> Iterator[list[dict[str, Any]]]:
    """The rows not refused that add a retiree or change one, in file order, a chunk at a
    time; each row only the values given (the others are left alone), and its ``line``
    when ``with_line``. The unchanged ones never leave the database: ``accepted`` less
    these."""
    last = 0
    differs = _differs()
    while True:
        rows = conn.execute(
            sa.select(table.c.line, *(table.c[name] for name in VALUES))
            .outerjoin(_r, _r.c.id_number == table.c.id_number)
            .where(table.c.line > last, ~table.c.refused, differs)
            .order_by(table.c.line)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        last = rows[-1].line
        yield [
            {k: v for k, v in row._mapping.items() if (with_line or k != "line") and v is not None}
            for row in rows
        ]


def accepted(conn: Connection) -> int:
    """How many rows are not refused."""
    return int(conn.scalar(sa.select(sa.func.count()).where(~table.c.refused)) or 0)


def drop(conn: Connection) -> None:
    """Remove the table (SQLite keeps temporary tables for the connection's life)."""
    table.drop(conn)
