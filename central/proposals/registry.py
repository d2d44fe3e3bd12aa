"""Registry imports as proposals: the death or prison records a file adds or changes, and the
retirees it would mark deceased, shown before anyone approves them."""

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.people import registries
from central.people.registries import Record, RegistryKind
from central.proposals.base import (
    Change,
    Context,
    Kind,
    PayloadField,
    Prepared,
    ProposalError,
    digest,
    pick,
)
from central.proposals.people import PARTIAL, csv_payload, stored_rows
from central.proposals.tables import proposal_rows
from central.store import schema

_reg, _r, _rows = schema.registry_records, schema.retirees, proposal_rows
_CHUNK = 500


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _key(kind: str, id_number: str, start: str) -> tuple[str, str, str]:
    return kind, id_number, start


class RegistryImport(Kind):
    """Add or change death or prison registry records from a file (and mark the matched
    dead as deceased) once approved.

    Payload: ``kind`` (death or prison), ``path`` (CLI only) or ``csv``, ``partial``."""

    name = "registry_import"
    fields = (
        PayloadField("kind", "Registry", "select", choices=pick(*(k.value for k in RegistryKind))),
        PayloadField(
            "csv",
            "Registry file",
            "file",
            help="UTF-8 CSV: id_number, birth_date and death_date (death) or start_date "
            "(prison, release_date optional); name optional",
        ),
        PARTIAL,
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        try:
            kind = RegistryKind(str(payload.get("kind")))
        except ValueError:
            raise ProposalError("kind: death or prison") from None
        partial = payload.get("partial", False)
        if not isinstance(partial, bool):
            raise ProposalError("partial: true or false")
        source, text = csv_payload(payload, "registry", registries.RegistryFileError)
        records, errors = registries.read(kind, text.lstrip("\ufeff"), ctx.now.date())
        if errors and (not partial or any(e.line == 1 for e in errors)):
            raise registries.RegistryError(errors)
        rows = list(self._changes(conn, records))
        dying = self._would_die(conn, rows) if kind is RegistryKind.DEATH else []
        added = sum(1 for r in rows if r.change == "added")
        summary = (
            f"{kind.value} registry {source}: {added} added, {len(rows) - added} changed"
            + (f", {len(dying)} retiree(s) would be marked deceased" if dying else "")
            + (f", {len({e.line for e in errors})} bad row(s) skipped" if errors else "")
        )
        if not rows:
            raise ProposalError(f"{summary}: nothing to change")
        return Prepared(
            {
                "kind": kind.value,
                "source": f"{kind.value}:{source}"[:200],
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "partial": partial,
                "added": added,
                "changed": len(rows) - added,
                "deceased": dying[:1000],
                "skipped": [str(e) for e in errors[:100]],
            },
            source[:64],
            summary[:500],
            rows,
        )

    @staticmethod
    def _changes(conn: Connection, records: list[Record]) -> Iterator[Change]:
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            stored = {
                (row.kind, row.id_number, row.start_date): row
                for row in conn.execute(
                    sa.select(_reg).where(_reg.c.id_number.in_({r.id_number for r in chunk}))
                )
            }
            for rec in chunk:
                after = {
                    "kind": rec.kind.value,
                    "birth_date": rec.birth_date.isoformat(),
                    "start_date": rec.start_date.isoformat(),
                    "end_date": _iso(rec.end_date),
                    "name": rec.name,
                }
                old = stored.get((rec.kind.value, rec.id_number, rec.start_date))
                if old is None:
                    yield Change(rec.line, rec.id_number, "added", None, after)
                elif (old.end_date, old.birth_date) != (rec.end_date, rec.birth_date):
                    before = {"end_date": _iso(old.end_date), "birth_date": _iso(old.birth_date)}
                    yield Change(rec.line, rec.id_number, "changed", before, after)

    @staticmethod
    def _would_die(conn: Connection, rows: list[Change]) -> list[str]:
        """The living retirees these death records match (ID number and birth date)."""
        found: list[str] = []
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            born = {(r.retiree_id, r.after["birth_date"]) for r in chunk}
            for person in conn.execute(
                sa.select(_r.c.id_number, _r.c.birth_date).where(
                    _r.c.id_number.in_({r.retiree_id for r in chunk}),
                    _r.c.status != schema.RetireeStatus.DECEASED.value,
                )
            ):
                if (person.id_number, person.birth_date.isoformat()) in born:
                    found.append(person.id_number)
        return sorted(found)

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        """The stored records these rows add or change, and the statuses of their retirees."""
        running = hashlib.sha256()
        for chunk in stored_rows(conn, proposal.id, _CHUNK):
            ids = {r.retiree_id for r in chunk}
            stored = {
                (row.kind, row.id_number, row.start_date.isoformat()): [
                    _iso(row.end_date),
                    _iso(row.birth_date),
                ]
                for row in conn.execute(sa.select(_reg).where(_reg.c.id_number.in_(ids)))
            }
            status = dict(
                conn.execute(
                    sa.select(_r.c.id_number, _r.c.status).where(_r.c.id_number.in_(ids))
                ).all()
            )
            for row in chunk:
                key = _key(row.after["kind"], row.retiree_id, row.after["start_date"])
                running.update(
                    digest([row.line, stored.get(key), status.get(row.retiree_id)]).encode()
                )
        return running.hexdigest()

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        records = [
            Record(
                row.line,
                RegistryKind(row.after["kind"]),
                row.retiree_id,
                dt.date.fromisoformat(row.after["birth_date"]),
                dt.date.fromisoformat(row.after["start_date"]),
                row.after["end_date"] and dt.date.fromisoformat(row.after["end_date"]),
                row.after["name"],
            )
            for chunk in stored_rows(conn, proposal.id, _CHUNK)
            for row in chunk
        ]
        report = registries.store_in(conn, records, proposal.payload["source"], ctx.now)
        return {k: v for k, v in report.__dict__.items() if k != "errors"}
