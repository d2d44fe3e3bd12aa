"""Kinds that move money: file a payment run (make its bank file), release the bank file
(send it over SFTP). Computing a run (``payments run``) is a draft anyone with the entry
role may make and remake; filing it is the step that is reviewed, against the very totals
the approvers saw (a recomputed run makes the proposal stale).

These are ``external``: they run in their own transaction or leave the database, after
the last approval is committed; a failure marks the proposal ``failed`` with the error. A
resumed one (``proposals resume``) is recorded ``applied`` without acting again when the
run shows it done: filed with its sealed file on disk as recorded, or sent.
"""

import hashlib
import posixpath
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from central.payments import bankfile, runs, sftp
from central.payments.period import Period, PeriodError
from central.proposals.base import Context, Kind, PayloadField, Prepared, ProposalError, digest
from central.store import schema

_runs = schema.payment_runs


def _period(payload: dict[str, Any]) -> Period:
    try:
        return Period.parse(str(payload.get("period")))
    except PeriodError as exc:
        raise ProposalError(f"period: {exc}") from None


def _run(conn: Connection, period: Period) -> Any:
    try:
        return runs.get_run(conn, period)
    except runs.RunError as exc:
        raise ProposalError(f"period: {exc}") from None


def _state(conn: Connection, period: Period) -> Any:
    """The run of ``period`` as it stands (None: none yet)."""
    row = conn.execute(_runs.select().where(_runs.c.period == str(period))).first()
    if row is None:
        return None
    return [row.id, row.status, row.roster_revision, row.summary, row.file_sha256]


def _approved_run(conn: Connection, period: Period, proposal: Any) -> Any:
    """The run of ``period``; ``ProposalError`` unless it is the run ``proposal`` was about."""
    run = _run(conn, period)
    if run.id != proposal.payload["run_id"]:
        raise ProposalError(
            f"period: the run for {period} is run {run.id} now, not run "
            f"{proposal.payload['run_id']} that was approved: check it (`payments show`)"
        )
    return run


def _totals(run: Any) -> str:
    """A run's decision counts and payable total, as approvers see them."""
    summary = run.summary
    counts = ", ".join(f"{n} {d}" for d, n in sorted(summary.get("decisions", {}).items()))
    payable, arrears = summary.get("payable_cents", 0), summary.get("arrears_cents", 0)
    return f"{counts}; payable {payable / 100:,.2f} (arrears {arrears / 100:,.2f})"


class BankMake(Kind):
    """File a computed payment run: write its signed, encrypted bank file (freezes it).

    Payload: ``period``. Stale when the run was recomputed since it was proposed."""

    name = "bank_make"
    external = True
    fields = (PayloadField("period", "Month", "month", "YYYY-MM: the payment run's month"),)

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        period = _period(payload)
        run = _run(conn, period)
        if run.status != "computed":
            raise ProposalError(f"period: the run for {period} is already {run.status}")
        return Prepared(
            {"period": str(period), "run_id": run.id},
            str(period),
            f"file run {run.id} of {period} (bank file): {_totals(run)}",
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        return digest(_state(conn, Period.parse(proposal.payload["period"])))

    def apply_outside(
        self, engine: Engine, proposal: Any, actor: str, ctx: Context
    ) -> dict[str, Any]:
        res = ctx.need(self.name)
        bank = res.cfg.bank
        made = bankfile.make(
            engine,
            Period.parse(proposal.payload["period"]),
            bank.payer,
            bank.out_dir,
            res.sign_key,
            bankfile.load_public_key(bank.encrypt_pub, "bank.encrypt_pub"),
            now=ctx.now,
        )
        return {
            "path": str(made.path),
            "count": made.count,
            "total_cents": made.total_cents,
            "sha256": made.sha256,
            "withheld": made.withheld,
        }

    def finished(self, engine: Engine, proposal: Any, ctx: Context) -> dict[str, Any] | None:
        bank = ctx.need(self.name).cfg.bank
        period = Period.parse(proposal.payload["period"])
        with engine.connect() as conn:
            run = _approved_run(conn, period, proposal)
        if run.status == "computed":
            return None
        path = bank.out_dir / f"{bank.payer}-{period}.jwe"
        file = run.summary.get("file", {})
        sealed = file.get("sealed_sha256")
        if sealed is None or _file_sha(path) != sealed:
            raise ProposalError(
                f"period: run {run.id} of {period} is {run.status}, but {path} is missing or "
                "not the file it was filed with: find the file (the SHA-256 the run recorded "
                f"is {sealed}) before anything is sent"
            )
        return {
            "path": str(path),
            "count": file.get("count"),
            "total_cents": file.get("total_cents"),
            "sha256": run.file_sha256,
            "withheld": file.get("withheld", []),
        }


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class BankSend(Kind):
    """Release a filed run's bank file: upload it to the bank's SFTP server.

    Payload: ``period``. Stale when the file on disk or the run changed since."""

    name = "bank_send"
    external = True
    fields = (PayloadField("period", "Month", "month", "YYYY-MM: the payment run's month"),)

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        period = _period(payload)
        run = _run(conn, period)
        if run.status != "filed":
            raise ProposalError(
                f"period: the run for {period} is {run.status}: only a filed run's file is sent"
            )
        bank = ctx.need(self.name).cfg.bank
        path = bank.out_dir / f"{bank.payer}-{period}.jwe"
        sha = _file_sha(path)
        if sha is None:
            raise ProposalError(f"period: {path} does not exist: the run's file is missing")
        count = run.summary.get("file", {}).get("count")
        total = run.summary.get("file", {}).get("total_cents", 0)
        return Prepared(
            {"period": str(period), "run_id": run.id, "path": str(path), "file_sha256": sha},
            str(period),
            f"send {path.name} to the bank: {count} records, {total / 100:,.2f}",
        )

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        return digest(
            [
                _state(conn, Period.parse(proposal.payload["period"])),
                _file_sha(Path(proposal.payload["path"])),
            ]
        )

    def apply_outside(
        self, engine: Engine, proposal: Any, actor: str, ctx: Context
    ) -> dict[str, Any]:
        cfg = ctx.need(self.name).cfg
        remote = sftp.upload(cfg.bank.sftp, Path(proposal.payload["path"]))
        bankfile.mark_sent(engine, Period.parse(proposal.payload["period"]))
        return {"remote": remote, "host": cfg.bank.sftp.host}

    def finished(self, engine: Engine, proposal: Any, ctx: Context) -> dict[str, Any] | None:
        settings = ctx.need(self.name).cfg.bank.sftp
        period = Period.parse(proposal.payload["period"])
        with engine.connect() as conn:
            run = _approved_run(conn, period, proposal)
        if run.status not in ("sent", "reconciled"):
            return None
        name = Path(proposal.payload["path"]).name
        return {"remote": posixpath.join(settings.remote_dir, name), "host": settings.host}
