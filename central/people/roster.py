"""Retiree roster import from CSV: check every row, then upsert by ID number.

Every bad row is reported as ``line N, field F: problem (fix)``. The import is
all-or-nothing unless ``partial`` is set, in which case the good rows are
written and the bad ones reported. The file is streamed: memory does not grow
with its size.

A roster never moves ``certified_until`` of a retiree central already knows: only a
verified result from a terminal or an approved manual certification does (issue 14).
A file may give it for the retirees it adds (their last certification in the system the
roster comes from); for the others it is ignored and counted.

Staff import a roster through a proposal (``central.proposals``): ``stage`` and
``planned`` make its diff, ``write`` applies it once approved.
"""

import csv
import datetime as dt
import decimal
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.people import contacts, csvio, rules, staging
from central.people.csvio import RowError
from central.store import schema
from central.store.schema import RetireeStatus
from common import idnumber
from common.errors import LifecertError

REQUIRED = ("id_number", "name", "sex", "birth_date")
OPTIONAL = (
    "community",
    "monthly_amount",
    "bank_account",
    "account_name",
    "status",
    "retirement_date",
    "certified_until",
    "phone",
    "email",
    "next_of_kin_name",
    "next_of_kin_phone",
    "language",
    "reminder_opt_out",
)
_NEW: dict[str, Any] = {
    "community": None,
    "monthly_amount_cents": None,
    "bank_account": None,
    "account_name": None,
    "retirement_date": None,
    "certified_until": None,
    "status": RetireeStatus.ACTIVE.value,
    "phone": None,
    "email": None,
    "kin_name": None,
    "kin_phone": None,
    "language": None,
    "reminders_opt_out": None,
}
ACCOUNT_RE = re.compile(r"^[0-9]{6,34}$")
# free text: no formulas, no control characters
_TEXT = ("name", "community", "account_name", "next_of_kin_name")
_KEPT = ("id_number", "certified_until")  # never changed by a roster for a known retiree
_DATES = ("birth_date", "retirement_date", "certified_until")
_PRIVATE = ("bank_account", "phone", "email", "kin_phone")  # events say only "(changed)"


class RosterFileError(LifecertError, OSError):
    """The roster file cannot be read."""


class RosterError(LifecertError, ValueError):
    """The roster has bad rows; ``errors`` lists every one."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(
            f"{len(errors)} problem(s) in the roster, nothing imported:\n"
            + "\n".join(f"  {e}" for e in errors)
        )


@dataclass
class ImportReport:
    """What an import did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_certified_until: int = 0  # rows of known retirees whose date the file would move


class Planned(NamedTuple):
    """One row of a roster's diff: a retiree it adds (``before`` None) or changes."""

    line: int
    retiree_id: str
    before: dict[str, Any] | None
    after: dict[str, Any]


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def cents(value: str) -> int:
    amount = decimal.Decimal(value)
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError(value)
    return int(amount * 100)


def _parse_row(line: int, raw: dict[str, str]) -> tuple[dict[str, Any], list[RowError]]:
    """Validate one row: the values to store (only fields given) and its errors."""
    row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
    errors: list[RowError] = []
    out: dict[str, Any] = {}

    def bad(name: str, problem: str, fix: str) -> None:
        errors.append(RowError(line, name, problem, fix))

    for name in REQUIRED:
        if not row.get(name):
            bad(name, "missing", f"fill in {name}")
    id_number = row.get("id_number", "")
    if id_number:
        try:
            out["id_number"] = idnumber.validate(id_number)
        except idnumber.IdNumberError as exc:
            bad(
                "id_number",
                f"{id_number!r} is not a valid ID number: {exc}",
                "correct the ID number",
            )
    if full_name := row.get("name"):
        if len(full_name) > 100:
            bad("name", f"{len(full_name)} characters, at most 100", "shorten the name")
        out["name"] = full_name
    if sex := row.get("sex"):
        if sex.upper() not in ("M", "F"):
            bad("sex", f"{sex!r} is not M or F", "write M or F")
        else:
            out["sex"] = sex.upper()
            if "id_number" in out and idnumber.sex(out["id_number"]) != out["sex"]:
                bad(
                    "sex",
                    f"{out['sex']} but the ID number's 17th digit says "
                    f"{idnumber.sex(out['id_number'])}",
                    "check the sex or the ID number",
                )
    if birth := row.get("birth_date"):
        try:
            out["birth_date"] = _date(birth)
        except ValueError:
            bad("birth_date", f"{birth!r} is not a date", "write it as YYYY-MM-DD")
        else:
            if "id_number" in out and idnumber.birth_date(out["id_number"]) != out["birth_date"]:
                bad(
                    "birth_date",
                    f"{birth} but the ID number says {idnumber.birth_date(out['id_number'])}",
                    "check the birth date or the ID number",
                )
    for name in ("retirement_date", "certified_until"):
        if value := row.get(name):
            try:
                out[name] = _date(value)
            except ValueError:
                bad(name, f"{value!r} is not a date", "write it as YYYY-MM-DD")
    if (ret := out.get("retirement_date")) and (born := out.get("birth_date")) and ret <= born:
        bad("retirement_date", f"{ret} is not after the birth date {born}", "correct the date")
    if community := row.get("community"):
        if len(community) > 100:
            bad("community", f"{len(community)} characters, at most 100", "shorten it")
        out["community"] = community
    if amount := row.get("monthly_amount"):
        try:
            out["monthly_amount_cents"] = cents(amount)
        except (ValueError, decimal.InvalidOperation):
            bad("monthly_amount", f"{amount!r} is not an amount", "write e.g. 3200.50, no currency")
    if account := row.get("bank_account"):
        account = account.replace(" ", "")
        if not ACCOUNT_RE.match(account):
            bad("bank_account", "not 6-34 digits", "write the account number, digits only")
        out["bank_account"] = account
    if holder := row.get("account_name"):
        if len(holder) > 100:
            bad("account_name", f"{len(holder)} characters, at most 100", "shorten it")
        out["account_name"] = holder
    _parse_contact(row, out, bad)
    for name in _TEXT:
        if (text := row.get(name)) and (problem := csvio.text_problem(text)):
            bad(name, *problem)
    if status := row.get("status"):
        try:
            out["status"] = RetireeStatus(status.lower()).value
        except ValueError:
            bad(
                "status",
                f"{status!r} is not a status",
                "use one of " + ", ".join(s.value for s in RetireeStatus),
            )
    return out, errors


def _parse_contact(row: dict[str, str], out: dict[str, Any], bad: Any) -> None:
    """The contact columns of ``row`` into ``out`` (column names of the table), problems
    through ``bad(field, problem, fix)``."""
    for name, column in (("phone", "phone"), ("next_of_kin_phone", "kin_phone")):
        if value := row.get(name):
            try:
                out[column] = contacts.normalise_phone(value)
            except contacts.ContactError as exc:
                bad(name, exc.problem, exc.fix)
    if address := row.get("email"):
        try:
            out["email"] = contacts.normalise_email(address)
        except contacts.ContactError as exc:
            bad("email", exc.problem, exc.fix)
    if kin := row.get("next_of_kin_name"):
        if len(kin) > 100:
            bad("next_of_kin_name", f"{len(kin)} characters, at most 100", "shorten it")
        out["kin_name"] = kin
    if language := row.get("language"):
        try:
            out["language"] = contacts.Language(language.lower()).value
        except ValueError:
            bad("language", f"{language[:20]!r} is not a language", "write zh or en")
    if opt_out := row.get("reminder_opt_out"):
        try:
            out["reminders_opt_out"] = contacts.parse_opt_out(opt_out)
        except contacts.ContactError as exc:
            bad("reminder_opt_out", exc.problem, exc.fix)


def parse(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any], list[RowError]]]:
    """Check roster CSV as it is read (``lines``: an open file or any lines of text): for
    each row with a value, its line, the values to store and its problems (none: good).
    A bad header, or CSV that cannot be read on, raises ``RosterError``. The rules that
    compare rows are ``central.people.rules``."""
    reader = csv.DictReader(lines)
    try:
        header = [h.replace("\ufeff", "").strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise RosterError([RowError(1, "*", f"not valid CSV: {exc}", "fix the quoting")]) from None
    if errors := csvio.header_errors(header, REQUIRED, OPTIONAL):
        raise RosterError(errors)
    reader.fieldnames = header
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                yield (
                    line,
                    {},
                    [RowError(line, "*", "more values than columns", "check the commas")],
                )
                continue
            if not any((v or "").strip() for v in raw.values()):
                continue
            values, errors = _parse_row(line, raw)
            yield line, values, errors
    except csv.Error as exc:  # the rest cannot be read: refused, even partial (DictReader's
        # own line_num is the last row read; its reader's, the line that failed)
        problem = f"not valid CSV: {exc}"
        fix = "fix the quoting; the rest of the file could not be read"
        raise RosterError([RowError(reader.reader.line_num, "*", problem, fix)]) from None


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == staging.CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def upsert(
    engine: Engine, rows: Iterable[dict[str, Any]], actor: str, now: dt.datetime
) -> ImportReport:
    """Insert new retirees and update changed ones, one event per change, in one transaction.

    ``certified_until`` is written for new retirees only (see the module's docstring).
    """
    report = ImportReport()
    with engine.begin() as conn:
        for chunk in _chunks(rows):
            write(conn, chunk, actor, now, report)
    return report


def write(
    conn: Connection,
    chunk: list[dict[str, Any]],
    actor: str,
    now: dt.datetime,
    report: ImportReport,
) -> None:
    """Add or change the retirees of ``chunk`` (one row per ID number: the values given,
    dates as dates), an event each, in ``conn``'s transaction; never ``certified_until``
    of a known retiree."""
    t = schema.retirees
    existing = {
        row.id_number: row._mapping
        for row in conn.execute(
            sa.select(t).where(t.c.id_number.in_([r["id_number"] for r in chunk]))
        )
    }
    inserts, events = [], []
    for values in chunk:
        old = existing.get(values["id_number"])
        if old is None:
            inserts.append(_NEW | values | {"created_at": now, "updated_at": now})
            events.append(_event(now, "roster_added", values["id_number"], actor, {}))
            report.added += 1
            continue
        changes = {k: v for k, v in values.items() if k not in _KEPT and old[k] != v}
        if not changes:
            report.unchanged += 1
            continue
        conn.execute(
            t.update().where(t.c.id_number == values["id_number"]).values(**changes, updated_at=now)
        )
        detail = {k: [_json(old[k]), _json(v)] for k, v in changes.items() if k not in _PRIVATE}
        for k in _PRIVATE:
            if k in changes:
                detail[k] = ["(changed)", "(changed)"]
        events.append(_event(now, "roster_updated", values["id_number"], actor, detail))
        report.updated += 1
    if inserts:
        conn.execute(t.insert(), inserts)
    if events:
        conn.execute(schema.events.insert(), events)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def as_json(values: dict[str, Any]) -> dict[str, Any]:
    """Row values with dates as ISO text (to store a planned row)."""
    return {k: _json(v) for k, v in values.items()}


def from_json(values: dict[str, Any]) -> dict[str, Any]:
    """``as_json`` undone: the dates back as dates."""
    return {k: _date(v) if k in _DATES and isinstance(v, str) else v for k, v in values.items()}


def _event(
    now: dt.datetime, kind: str, retiree: str, actor: str, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "at": now,
        "kind": kind,
        "retiree_id": retiree,
        "result_id": None,
        "device_id": None,
        "actor": actor,
        "detail": detail,
    }


def stage(conn: Connection, lines: Iterable[str], *, partial: bool = False) -> list[RowError]:
    """Check roster CSV ``lines`` into the staging table in ``conn``'s transaction (drop it
    with ``staging.drop``); the bad rows, or ``RosterError`` listing them unless ``partial``
    (a bad header is refused either way)."""
    errors: list[RowError] = []

    def good(rows: Iterable[tuple[int, dict[str, Any], list[RowError]]]) -> Iterator[Any]:
        for line, values, problems in rows:
            errors.extend(problems)
            if not problems:
                yield line, values

    staging.create(conn)
    staging.load(conn, good(parse(lines)))
    errors.extend(rules.check(conn, partial=partial))
    errors.sort(key=lambda e: e.line)
    if errors and not partial:
        raise RosterError(errors)
    return errors


def planned(conn: Connection) -> Iterator[Planned]:
    """The staged rows that add or change a retiree, in file order: for a change, the
    fields it changes as they are (``before``) and as they would be (``after``)."""
    t = schema.retirees
    for chunk in staging.changes(conn, with_line=True):
        existing = {
            row.id_number: row._mapping
            for row in conn.execute(
                sa.select(t).where(t.c.id_number.in_([r["id_number"] for r in chunk]))
            )
        }
        for values in chunk:
            line, retiree = values.pop("line"), values["id_number"]
            old = existing.get(retiree)
            if old is None:
                yield Planned(line, retiree, None, values)
                continue
            after = {k: v for k, v in values.items() if k not in _KEPT and old[k] != v}
            if after:
                yield Planned(line, retiree, {k: old[k] for k in after}, after)


def import_csv(
    engine: Engine,
    path: Path,
    *,
    partial: bool = False,
    actor: str = "roster-import",
    now: dt.datetime | None = None,
) -> ImportReport:
    """Check ``path`` and upsert its rows in one transaction, at once: for setting up a
    database (tests, benchmarks); staff propose an import (``central.proposals``).
    ``RosterError`` lists every bad row (nothing written) unless ``partial``, which writes
    the good ones (a bad header is refused either way).

    Streamed: the rows that pass the per-row rules go to a staging table as the file is
    read, the legality rules (``central.people.rules``) check them there, and those that add or
    change a retiree are written from it a chunk at a time.
    """
    now = now or dt.datetime.now(dt.UTC)
    try:
        with path.open(encoding="utf-8-sig", newline="") as lines, engine.begin() as conn:
            errors = stage(conn, lines, partial=partial)
            report = ImportReport(errors=errors)
            report.ignored_certified_until = staging.ignored_certifications(conn)
            for chunk in staging.changes(conn):
                write(conn, chunk, actor, now, report)
            report.unchanged = staging.accepted(conn) - report.added - report.updated
            staging.drop(conn)
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterFileError(f"cannot read {path}: {exc} (save it as UTF-8 CSV)") from None
    return report
