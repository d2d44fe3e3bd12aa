"""Death and prison registries: CSV import and matching (the hits report, with what was
overpaid, is ``central.payments.recovery``).

A registry record matches a retiree only when the ID number AND the birth date
agree; a name is never used to match. A record whose ID number is on the roster
with another birth date is reported for review and never applied.

Effects (read by the payment run): a death stops payment from the month after
the death (the month of death is paid); a prison record holds every month that
starts in prison (``start_date <= first day < release_date``), without back-pay.
"""

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.people import csvio
from central.people.csvio import RowError
from central.store import schema
from common import idnumber
from common.errors import LifecertError

RegistryKind = schema.RegistryKind
_reg, _r = schema.registry_records, schema.retirees

COLUMNS: dict[RegistryKind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    RegistryKind.DEATH: (("id_number", "birth_date", "death_date"), ("name",)),
    RegistryKind.PRISON: (("id_number", "birth_date", "start_date"), ("name", "release_date")),
}
_CHUNK = 500


class RegistryError(LifecertError, ValueError):
    """A registry file has bad rows; ``errors`` lists every one (nothing imported)."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(
            f"{len(errors)} problem(s) in the registry file, nothing imported:\n"
            + "\n".join(f"  {e}" for e in errors)
        )


class RegistryFileError(LifecertError, OSError):
    """A registry file cannot be read."""


@dataclass(frozen=True)
class Record:
    """One valid registry row."""

    line: int
    kind: RegistryKind
    id_number: str
    birth_date: dt.date
    start_date: dt.date
    end_date: dt.date | None
    name: str | None


@dataclass
class ImportReport:
    """What an import did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    matched: int = 0
    deceased: int = 0
    errors: list[RowError] = field(default_factory=list)


def _date(row: dict[str, str], name: str, line: int, errors: list[RowError]) -> dt.date | None:
    value = row.get(name, "")
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(RowError(line, name, f"{value!r} is not a date", "write it as YYYY-MM-DD"))
        return None


def _parse_row(
    kind: RegistryKind, line: int, row: dict[str, str], today: dt.date
) -> tuple[Record | None, list[RowError]]:
    required, _ = COLUMNS[kind]
    errors = [
        RowError(line, name, "missing", f"fill in {name}") for name in required if not row.get(name)
    ]
    number = None
    if raw := row.get("id_number"):
        try:
            number = idnumber.validate(raw)
        except idnumber.IdNumberError as exc:
            errors.append(
                RowError(
                    line, "id_number", f"{raw!r} is not a valid ID number: {exc}", "correct it"
                )
            )
    born = _date(row, "birth_date", line, errors)
    start_field = "death_date" if kind is RegistryKind.DEATH else "start_date"
    start = _date(row, start_field, line, errors)
    end = _date(row, "release_date", line, errors)
    if number and born and idnumber.birth_date(number) != born:
        errors.append(
            RowError(
                line,
                "birth_date",
                f"{born} but the ID number says {idnumber.birth_date(number)}",
                "check the birth date or the ID number",
            )
        )
    if born and start and start < born:
        errors.append(RowError(line, start_field, f"{start} is before birth", "correct the date"))
    if start and start > today:
        errors.append(RowError(line, start_field, f"{start} is in the future", "correct the date"))
    if start and end and end < start:
        errors.append(
            RowError(line, "release_date", f"{end} is before {start}", "correct the dates")
        )
    name = row.get("name") or None
    if name and len(name) > 100:
        errors.append(RowError(line, "name", f"{len(name)} characters, at most 100", "shorten it"))
    if name and (problem := csvio.text_problem(name)):
        errors.append(RowError(line, "name", *problem))
    if errors or number is None or born is None or start is None:
        return None, errors
    return Record(line, kind, number, born, start, end, name), []


def read(
    kind: RegistryKind, text: str, today: dt.date | None = None
) -> tuple[list[Record], list[RowError]]:
    """Parse and validate registry CSV text: good records and every error (line 1 = header)."""
    today = today or dt.date.today()
    required, optional = COLUMNS[kind]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.replace("\ufeff", "").strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        return [], [RowError(1, "*", f"not valid CSV: {exc}", "fix the quoting")]
    reader.fieldnames = header
    if errors := csvio.header_errors(header, required, optional):
        return [], errors
    records: list[Record] = []
    seen: dict[tuple[str, dt.date], int] = {}
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                errors.append(RowError(line, "*", "more values than columns", "check the commas"))
                continue
            row = {k: (v or "").strip() for k, v in raw.items()}
            if not any(row.values()):
                continue
            record, row_errors = _parse_row(kind, line, row, today)
            if record is not None:
                key = (record.id_number, record.start_date)
                if (first := seen.setdefault(key, line)) != line:
                    row_errors.append(
                        RowError(line, "id_number", f"same record as line {first}", "keep one")
                    )
                else:
                    records.append(record)
            errors.extend(row_errors)
    except csv.Error as exc:  # the rest cannot be read: no record of this file is kept
        # (DictReader's own line_num is the last row read; its reader's, the line that failed)
        fix = "fix the quoting; the rest of the file could not be read"
        return [], [*errors, RowError(reader.reader.line_num, "*", f"not valid CSV: {exc}", fix)]
    return records, errors


def match(conn: Connection, now: dt.datetime) -> tuple[int, int]:
    """Link unmatched records to retirees (ID number AND birth date); mark the dead.

    Returns (records newly matched, retirees newly marked deceased).
    """
    same = sa.select(_r.c.id_number).where(
        _r.c.id_number == _reg.c.id_number, _r.c.birth_date == _reg.c.birth_date
    )
    matched = conn.execute(
        _reg.update()
        .where(_reg.c.retiree_id.is_(None), sa.exists(same))
        .values(retiree_id=_reg.c.id_number)
    ).rowcount
    dead = sa.select(_reg.c.retiree_id).where(
        _reg.c.kind == RegistryKind.DEATH.value, _reg.c.retiree_id.is_not(None)
    )
    alive = sa.and_(_r.c.id_number.in_(dead), _r.c.status != schema.RetireeStatus.DECEASED.value)
    conn.execute(
        schema.events.insert().from_select(
            ["at", "kind", "retiree_id", "actor", "detail"],
            sa.select(
                sa.literal(now, schema.UtcDateTime),
                sa.literal("roster_updated"),
                _r.c.id_number,
                sa.literal("death-registry"),
                sa.literal({"status": ["(alive)", "deceased"]}, sa.JSON),
            ).where(alive),
        )
    )
    deceased = conn.execute(
        _r.update().where(alive).values(status=schema.RetireeStatus.DECEASED.value, updated_at=now)
    ).rowcount
    return matched, deceased


def store(engine: Engine, records: Iterable[Record], source: str, now: dt.datetime) -> ImportReport:
    """Upsert records (key: kind, ID number, start date), then match, in one transaction."""
    with engine.begin() as conn:
        return store_in(conn, records, source, now)


def store_in(
    conn: Connection, records: Iterable[Record], source: str, now: dt.datetime
) -> ImportReport:
    """``store`` in ``conn``'s transaction (a registry proposal's approval)."""
    report = ImportReport()
    listed = list(records)
    for start in range(0, len(listed), _CHUNK):
        chunk = listed[start : start + _CHUNK]
        existing = {
            (row.kind, row.id_number, row.start_date): row
            for row in conn.execute(
                sa.select(_reg).where(_reg.c.id_number.in_({r.id_number for r in chunk}))
            )
        }
        inserts = []
        for rec in chunk:
            old = existing.get((rec.kind.value, rec.id_number, rec.start_date))
            if old is None:
                inserts.append(
                    {
                        "kind": rec.kind.value,
                        "id_number": rec.id_number,
                        "birth_date": rec.birth_date,
                        "name": rec.name,
                        "start_date": rec.start_date,
                        "end_date": rec.end_date,
                        "source": source[:200],
                        "imported_at": now,
                    }
                )
                report.added += 1
            elif (old.end_date, old.birth_date) != (rec.end_date, rec.birth_date):
                conn.execute(
                    _reg.update()
                    .where(_reg.c.id == old.id)
                    .values(
                        end_date=rec.end_date,
                        birth_date=rec.birth_date,
                        retiree_id=None,
                        source=source[:200],
                        imported_at=now,
                    )
                )
                report.updated += 1
            else:
                report.unchanged += 1
        if inserts:
            conn.execute(_reg.insert(), inserts)
    report.matched, report.deceased = match(conn, now)
    return report


def import_csv(
    engine: Engine,
    kind: RegistryKind,
    path: Path,
    *,
    partial: bool = False,
    now: dt.datetime | None = None,
) -> ImportReport:
    """Validate and store a registry file; ``RegistryError`` lists bad rows (nothing written)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryFileError(f"cannot read {path}: {exc} (save it as UTF-8 CSV)") from None
    records, errors = read(kind, text, now.date())
    if errors and (not partial or any(e.line == 1 for e in errors)):
        raise RegistryError(errors)
    report = store(engine, records, f"{kind.value}:{path.name}", now)
    report.errors = errors
    return report
