"""Kinds that change a retiree: roster import, manual hold or release, amount and bank
account change, manual certification."""

import datetime as dt
import decimal
import hashlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central.certification.settings import Policy
from central.payments import holds
from central.people import roster, staging
from central.proposals.base import (
    Change,
    Context,
    Kind,
    PayloadField,
    Prepared,
    ProposalError,
    digest,
    pick,
    text,
)
from central.proposals.tables import proposal_rows
from central.store import schema
from common import idnumber

_r = schema.retirees
_rows = proposal_rows
_CHUNK = 2_000


def stored_rows(conn: Connection, proposal_id: int, size: int) -> Iterator[Sequence[Any]]:
    """A proposal's stored rows (``proposal_rows``) in line order, ``size`` at a time."""
    last = -1
    while rows := conn.execute(
        sa.select(_rows)
        .where(_rows.c.proposal_id == proposal_id, _rows.c.line > last)
        .order_by(_rows.c.line)
        .limit(size)
    ).all():
        last = rows[-1].line
        yield rows


MAX_CSV_CHARS = 256 * 1024 * 1024
"""The largest roster text a proposal takes (about 2 million rows)."""
_ALIVE = (schema.RetireeStatus.ACTIVE.value, schema.RetireeStatus.SUSPENDED.value)
RETIREE = PayloadField("retiree_id", "Retiree's ID number", help="18 characters", max_length=18)
PARTIAL = PayloadField(
    "partial",
    "Import the good rows even if some are bad",
    "checkbox",
    help="unticked: one bad row refuses the whole file",
    required=False,
)


def _retiree(conn: Connection, payload: dict[str, Any], lock: bool = False) -> Any:
    """The retiree ``payload["retiree_id"]`` names (``ProposalError`` if invalid or unknown)."""
    given = payload.get("retiree_id")
    try:
        retiree_id = idnumber.validate(given if isinstance(given, str) else "")
    except idnumber.IdNumberError as exc:
        raise ProposalError(f"retiree_id: {given!r} is not an ID number: {exc}") from None
    select = sa.select(_r).where(_r.c.id_number == retiree_id)
    found = conn.execute(select.with_for_update() if lock else select).first()
    if found is None:
        raise ProposalError(
            f"retiree_id: no retiree {retiree_id}: check the number or import the roster"
        )
    return found


def mask(account: str | None) -> str | None:
    """A bank account as shown to staff and kept in events: its last four digits."""
    return None if account is None else "*" * max(len(account) - 4, 0) + account[-4:]


def csv_payload(payload: dict[str, Any], what: str, file_error: type[Exception]) -> tuple[str, str]:
    """(source, text) of a CSV proposal's payload: ``csv`` (its text, at most
    ``MAX_CSV_CHARS``; source ``upload``) or ``path`` (a file the CLI reads; its name)."""
    if isinstance(payload.get("csv"), str):
        text: str = payload["csv"]
        if len(text) > MAX_CSV_CHARS:
            raise ProposalError(f"csv: more than {MAX_CSV_CHARS:,} characters: split the file")
        return "upload", text
    if isinstance(payload.get("path"), str):
        try:
            return Path(payload["path"]).name, Path(payload["path"]).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise file_error(
                f"path: cannot read {payload['path']}: {exc} (save it as UTF-8 CSV)"
            ) from None
    raise ProposalError(f"give path (a {what} CSV file) or csv (its text)")


class RosterImport(Kind):
    """Add and change retirees from a roster file, shown as a diff before approval.

    Payload: ``path`` (a CSV file on central's machine: for the CLI only, never from a web
    client) or ``csv`` (its text, at most ``MAX_CSV_CHARS``), ``partial`` (import the good
    rows even if some are bad). The rows are checked and the diff
    stored when proposed; the approval writes exactly that diff, refused as stale when
    any retiree it touches changed since."""

    name = "roster_import"
    fields = (
        PayloadField(
            "csv",
            "Roster file",
            "file",
            help="UTF-8 CSV: id_number, name, sex, birth_date, community, monthly_amount, "
            "bank_account, account_name (certified_until optional)",
        ),
        PARTIAL,
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        partial = payload.get("partial", False)
        if not isinstance(partial, bool):
            raise ProposalError("partial: true or false")
        source, data = csv_payload(payload, "roster", roster.RosterFileError)
        errors = roster.stage(conn, io.StringIO(data.lstrip("\ufeff"), newline=""), partial=partial)
        ignored = staging.ignored_certifications(conn)
        rows = [
            Change(
                p.line,
                p.retiree_id,
                "added" if p.before is None else "changed",
                None if p.before is None else roster.as_json(p.before),
                roster.as_json(p.after),
            )
            for p in roster.planned(conn)
        ]
        staging.drop(conn)
        added = sum(1 for r in rows if r.change == "added")
        summary = (
            f"roster {source}: {added} added, {len(rows) - added} changed"
            + (f", {len({e.line for e in errors})} bad row(s) skipped" if errors else "")
            + (f", certified_until ignored on {ignored} row(s)" if ignored else "")
        )
        if not rows:
            raise ProposalError(f"{summary}: nothing to change")
        return Prepared(
            {
                "source": source,
                "sha256": hashlib.sha256(data.encode()).hexdigest(),
                "partial": partial,
                "added": added,
                "changed": len(rows) - added,
                "skipped": [str(e) for e in errors[:100]],
                "skipped_rows": len({e.line for e in errors}),
                "ignored_certified_until": ignored,
            },
            source[:64],
            summary[:500],
            rows,
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        """The touched retirees' changed fields as they are now (added ones: whether they
        exist now)."""
        running = hashlib.sha256()
        for chunk in stored_rows(conn, proposal.id, _CHUNK):
            now = {
                row.id_number: row._mapping
                for row in conn.execute(
                    sa.select(_r).where(_r.c.id_number.in_([r.retiree_id for r in chunk]))
                )
            }
            for row in chunk:
                current = now.get(row.retiree_id)
                state = (
                    current is not None
                    if row.before is None
                    else current and roster.as_json({k: current[k] for k in row.before})
                )
                running.update(digest([row.line, row.retiree_id, state]).encode())
        return running.hexdigest()

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        report = roster.ImportReport()
        for chunk in stored_rows(conn, proposal.id, _CHUNK):
            values = [roster.from_json(r.after) | {"id_number": r.retiree_id} for r in chunk]
            roster.write(conn, values, actor, ctx.now, report)
        return {"added": report.added, "updated": report.updated}


class Hold(Kind):
    """Place a manual payment hold on a retiree, or release their open ones.

    Payload: ``retiree_id``, ``action`` (``place`` or ``release``), ``note`` (why)."""

    name = "hold"
    fields = (
        RETIREE,
        PayloadField("action", "Action", "select", choices=pick("place", "release")),
        PayloadField("note", "Why", "textarea", max_length=500),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        found = _retiree(conn, payload)
        action = payload.get("action")
        if action not in ("place", "release"):
            raise ProposalError("action: place or release")
        note = text(payload, "note", 500, 1)
        if action == "release" and not holds.open_holds(conn, found.id_number):
            raise ProposalError(f"retiree_id: {found.id_number} has no open manual hold")
        return Prepared(
            {"retiree_id": found.id_number, "action": action, "note": note},
            found.id_number,
            f"{action} manual hold on {found.id_number} ({found.name}): {note}",
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        retiree_id = proposal.payload["retiree_id"]
        return digest([retiree_id, holds.open_holds(conn, retiree_id)])

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        if p["action"] == "place":
            return {"hold_id": holds.place_in(conn, p["retiree_id"], actor, p["note"], ctx.now)}
        return {"released": holds.release_in(conn, p["retiree_id"], actor, p["note"], ctx.now)}


class RetireeChange(Kind):
    """Change one retiree's monthly amount, bank account or account holder's name.

    Payload: ``retiree_id``, one or more of ``monthly_amount`` (e.g. ``"3200.50"``),
    ``bank_account`` (6-34 digits), ``account_name``; ``note`` (why)."""

    name = "retiree_change"
    fields = (
        RETIREE,
        PayloadField(
            "monthly_amount", "New monthly amount", "decimal", "e.g. 3200.50", required=False
        ),
        PayloadField(
            "bank_account", "New bank account", help="6-34 digits", required=False, max_length=40
        ),
        PayloadField("account_name", "New account holder's name", required=False, max_length=100),
        PayloadField("note", "Why", "textarea", max_length=500),
    )
    _FIELDS = ("monthly_amount_cents", "bank_account", "account_name")

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        found = _retiree(conn, payload)
        after: dict[str, Any] = {}
        if (amount := payload.get("monthly_amount")) is not None:
            try:
                after["monthly_amount_cents"] = roster.cents(str(amount))
            except (ValueError, decimal.InvalidOperation):
                raise ProposalError(
                    f"monthly_amount: {amount!r} is not an amount: write e.g. 3200.50"
                ) from None
        if (account := payload.get("bank_account")) is not None:
            account = str(account).replace(" ", "")
            if not roster.ACCOUNT_RE.match(account):
                raise ProposalError("bank_account: not 6-34 digits: write the digits only")
            after["bank_account"] = account
        if payload.get("account_name") is not None:
            after["account_name"] = text(payload, "account_name", 100, 1)
        after = {k: v for k, v in after.items() if found._mapping[k] != v}
        if not after:
            raise ProposalError(
                "give monthly_amount, bank_account or account_name differing from the stored one"
            )
        note = text(payload, "note", 500, 1)
        shown = {k: mask(v) if k == "bank_account" else v for k, v in after.items()}
        return Prepared(
            {"retiree_id": found.id_number, "after": after, "note": note},
            found.id_number,
            f"change {found.id_number} ({found.name}): "
            + ", ".join(f"{k} -> {v}" for k, v in shown.items()),
            [Change(0, found.id_number, "changed", self._shown(found, after), after)],
        )

    def _shown(self, row: Any, after: dict[str, Any]) -> dict[str, Any]:
        return {k: mask(row._mapping[k]) if k == "bank_account" else row._mapping[k] for k in after}

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        found = _retiree(conn, proposal.payload)
        return digest([found.status, {k: found._mapping[k] for k in self._FIELDS}])

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        found = _retiree(conn, p, lock=True)
        conn.execute(
            _r.update()
            .where(_r.c.id_number == found.id_number)
            .values(**p["after"], updated_at=ctx.now)
        )
        before = self._shown(found, p["after"])
        after = {k: mask(v) if k == "bank_account" else v for k, v in p["after"].items()}
        conn.execute(
            schema.events.insert().values(
                at=ctx.now,
                kind="retiree_changed",
                retiree_id=found.id_number,
                actor=actor,
                detail={
                    "before": before,
                    "after": after,
                    "note": p["note"],
                    "proposal": proposal.id,
                },
            )
        )
        return {"changed": sorted(p["after"])}


class Certification(Kind):
    """Certify a retiree by hand: move ``certified_until`` forward, with a reason and a
    reference to the evidence (the only way besides a terminal's verified result).

    Payload: ``retiree_id``, ``certified_until`` (YYYY-MM-DD, later than the stored date,
    at most ``[policy] validity_months`` ahead), ``reason``, ``evidence``."""

    name = "certification"
    fields = (
        RETIREE,
        PayloadField(
            "certified_until",
            "Certified until",
            "date",
            "after the stored date, at most [policy] validity_months ahead",
        ),
        PayloadField("reason", "Reason", "textarea", max_length=500),
        PayloadField("evidence", "Evidence", help="e.g. letter 2026/118", max_length=200),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        found = _retiree(conn, payload)
        if found.status not in _ALIVE:
            raise ProposalError(f"retiree_id: {found.id_number} is {found.status}: not certifiable")
        try:
            until = dt.date.fromisoformat(str(payload.get("certified_until")))
        except ValueError:
            raise ProposalError("certified_until: a date, YYYY-MM-DD") from None
        policy = ctx.resources.cfg.policy if ctx.resources else Policy()
        today = ctx.now.date()
        limit = today + dt.timedelta(days=31 * policy.validity_months)
        if found.certified_until is not None and until <= found.certified_until:
            raise ProposalError(
                f"certified_until: {until} is not after the stored {found.certified_until}"
            )
        if not today <= until <= limit:
            raise ProposalError(
                f"certified_until: {until} is not between today and {limit} "
                f"([policy] validity_months = {policy.validity_months})"
            )
        reason = text(payload, "reason", 500, 1)
        evidence = text(payload, "evidence", 200, 1)
        before = found.certified_until and found.certified_until.isoformat()
        return Prepared(
            {
                "retiree_id": found.id_number,
                "certified_until": until.isoformat(),
                "reason": reason,
                "evidence": evidence,
            },
            found.id_number,
            f"certify {found.id_number} ({found.name}) until {until}: {reason} [{evidence}]",
            [
                Change(
                    0,
                    found.id_number,
                    "changed",
                    {"certified_until": before},
                    {"certified_until": until.isoformat()},
                )
            ],
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        found = _retiree(conn, proposal.payload)
        return digest([found.status, found.certified_until])

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        found = _retiree(conn, p, lock=True)
        until = dt.date.fromisoformat(p["certified_until"])
        conn.execute(
            _r.update()
            .where(_r.c.id_number == found.id_number)
            .values(certified_until=until, updated_at=ctx.now)
        )
        conn.execute(
            schema.events.insert().values(
                at=ctx.now,
                kind="manual_certification",
                retiree_id=found.id_number,
                actor=actor,
                detail={
                    "from": found.certified_until and found.certified_until.isoformat(),
                    "to": p["certified_until"],
                    "reason": p["reason"],
                    "evidence": p["evidence"],
                    "proposal": proposal.id,
                },
            )
        )
        return {"certified_until": p["certified_until"]}
