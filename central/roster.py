"""Retiree roster import from CSV: validate every row, then upsert by ID number.

Every bad row is reported as ``line N, field F: problem (fix)``. The import is
all-or-nothing unless ``partial`` is set, in which case the good rows are
written and the bad ones reported.
"""

import csv
import datetime as dt
import decimal
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central import schema
from central.schema import RetireeStatus
from protocol import idnumber
from protocol.errors import LifecertError

REQUIRED = ("id_number", "name", "sex", "birth_date")
OPTIONAL = (
    "community",
    "monthly_amount",
    "bank_account",
    "account_name",
    "status",
    "retirement_date",
    "certified_until",
)
_CHUNK = 500
_NEW: dict[str, Any] = {
    "community": None,
    "monthly_amount_cents": None,
    "bank_account": None,
    "account_name": None,
    "retirement_date": None,
    "certified_until": None,
    "status": RetireeStatus.ACTIVE.value,
}
_ACCOUNT_RE = re.compile(r"^[0-9]{6,34}$")


@dataclass(frozen=True)
class RowError:
    """One problem in one row (``line`` 1 is the header)."""

    line: int
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.problem} ({self.fix})"


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


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _cents(value: str) -> int:
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
            out["monthly_amount_cents"] = _cents(amount)
        except (ValueError, decimal.InvalidOperation):
            bad("monthly_amount", f"{amount!r} is not an amount", "write e.g. 3200.50, no currency")
    if account := row.get("bank_account"):
        account = account.replace(" ", "")
        if not _ACCOUNT_RE.match(account):
            bad("bank_account", "not 6-34 digits", "write the account number, digits only")
        out["bank_account"] = account
    if holder := row.get("account_name"):
        if len(holder) > 100:
            bad("account_name", f"{len(holder)} characters, at most 100", "shorten it")
        out["account_name"] = holder
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


def read(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """Parse and validate CSV text: the good rows (with their line) and every error."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    errors: list[RowError] = []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [
        c or f"(column {i} has no name)"
        for i, c in enumerate(header, 1)
        if c not in REQUIRED + OPTIONAL
    ]
    if missing:
        errors.append(RowError(1, ",".join(missing), "column missing", "add it to the header"))
    if unknown:
        errors.append(
            RowError(1, ",".join(unknown), "unknown column", "remove it or check its spelling")
        )
    if errors:
        return [], errors
    good: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                errors.append(RowError(line, "*", "more values than columns", "check the commas"))
                continue
            if not any((v or "").strip() for v in raw.values()):
                continue
            values, row_errors = _parse_row(line, raw)
            if "id_number" in values and not row_errors:
                if (first := seen.get(values["id_number"])) is not None:
                    row_errors.append(
                        RowError(line, "id_number", f"also on line {first}", "keep one row")
                    )
                seen.setdefault(values["id_number"], line)
            errors.extend(row_errors)
            if not row_errors:
                good.append((line, values))
    except csv.Error as exc:
        errors.append(RowError(reader.line_num, "*", f"not valid CSV: {exc}", "fix the quoting"))
    return good, errors


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def upsert(
    engine: Engine, rows: Iterable[dict[str, Any]], actor: str, now: dt.datetime
) -> ImportReport:
    """Insert new retirees and update changed ones, one event per change, in one transaction.

    ``certified_until`` never moves backwards: an older roster export cannot undo a
    certification applied since.
    """
    report = ImportReport()
    t = schema.retirees
    listed = list(rows)
    with engine.begin() as conn:
        for chunk in _chunks(listed):
            ids = [r["id_number"] for r in chunk]
            existing = {
                row.id_number: row._mapping
                for row in conn.execute(sa.select(t).where(t.c.id_number.in_(ids)))
            }
            inserts, events = [], []
            for values in chunk:
                old = existing.get(values["id_number"])
                if old is None:
                    inserts.append(_NEW | values | {"created_at": now, "updated_at": now})
                    events.append(_event(now, "roster_added", values["id_number"], actor, {}))
                    report.added += 1
                    continue
                changes = {
                    k: v
                    for k, v in values.items()
                    if k != "id_number"
                    and old[k] != v
                    and not (k == "certified_until" and old[k] is not None and v < old[k])
                }
                if not changes:
                    report.unchanged += 1
                    continue
                conn.execute(
                    t.update()
                    .where(t.c.id_number == values["id_number"])
                    .values(**changes, updated_at=now)
                )
                detail = {
                    k: [_json(old[k]), _json(v)] for k, v in changes.items() if k != "bank_account"
                }
                if "bank_account" in changes:
                    detail["bank_account"] = ["(changed)", "(changed)"]
                events.append(_event(now, "roster_updated", values["id_number"], actor, detail))
                report.updated += 1
            if inserts:
                conn.execute(t.insert(), inserts)
            if events:
                conn.execute(schema.events.insert(), events)
    return report


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


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


def import_csv(
    engine: Engine,
    path: Path,
    *,
    partial: bool = False,
    actor: str = "roster-import",
    now: dt.datetime | None = None,
) -> ImportReport:
    """Validate ``path`` and upsert its rows; ``RosterError`` lists bad rows (nothing written)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterFileError(f"cannot read {path}: {exc} (save it as UTF-8 CSV)") from None
    good, errors = read(text)
    if not any(e.line == 1 for e in errors):
        from central.rules import legality  # rules builds on this module's RowError

        if illegal := legality(engine, good):
            bad = {e.line for e in illegal}
            good = [(line, values) for line, values in good if line not in bad]
            errors = sorted(errors + illegal, key=lambda e: e.line)
    if errors and (not partial or any(e.line == 1 for e in errors)):
        raise RosterError(errors)
    report = upsert(engine, (values for _, values in good), actor, now or dt.datetime.now(dt.UTC))
    report.errors = errors
    return report
