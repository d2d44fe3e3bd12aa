"""``lifecert-central``: a thin click layer over central's Python API."""

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Engine

from central import bootstrap, config
from central.bootstrap import Central
from central.certification import queries
from central.fraud import cipher, duplicates, flags
from central.payments import bankfile, holds, recovery, review, runs, sftp
from central.payments.period import Period, PeriodError
from central.people import coverage, population, registries, roster
from central.people import queries as people_queries
from central.store import db
from common import idnumber, logs
from common.cli import friendly_errors
from common.errors import ConfigError, LifecertError


class _State:
    """The ``--config`` path; the config and central's parts built lazily by the commands
    that need them (``central.bootstrap``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._central: Central | None = None

    @property
    def central(self) -> Central:
        if self._central is None:
            self._central = Central(config.load(self.path))
        return self._central

    @property
    def cfg(self) -> config.CentralConfig:
        return self.central.cfg

    def engine(self, migrated: bool = True) -> Engine:
        """The configured database; an error if it is not at the code's migration head."""
        engine = self.central.engine
        if migrated:
            current, head = db.current_revision(engine), db.head_revision(engine)
            if current != head:
                raise LifecertError(
                    f"database is at revision {current or 'none'}, the code needs {head}: "
                    "run `lifecert-central db upgrade`"
                )
        return engine


def _emit(rows: list[dict[str, Any]] | dict[str, Any], as_json: bool, columns: list[str]) -> None:
    """Print rows as JSON or as an aligned table of ``columns``."""
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2, ensure_ascii=False))
        return
    items = rows if isinstance(rows, list) else [rows]
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in items]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@click.group(invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LIFECERT_CENTRAL_CONFIG",
    default=config.DEFAULT_PATH,
    show_default=True,
    help="central.toml (or $LIFECERT_CENTRAL_CONFIG).",
)
@click.option(
    "--validate-config", is_flag=True, help="Check the config and the files it names, then exit."
)
@click.pass_context
@friendly_errors
def main(ctx: click.Context, config_path: Path, validate_config: bool) -> None:
    """Central service: consume signed results, keep retirees' certification.

    \b
    Example:
        lifecert-central --config fleet/central/central.toml --validate-config
    """
    ctx.obj = _State(config_path)
    if validate_config:
        ctx.obj.central.check()
        click.echo(f"{config_path}: OK")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--client-id", help="MQTT client id for this process (default: from the config).")
@click.pass_obj
@friendly_errors
def run(state: _State, client_id: str | None) -> None:
    """Run the consumer (migrates the database first) until SIGTERM/SIGINT.

    \b
    Example:
        lifecert-central --config /etc/lifecert/central.toml run --client-id central-2
    """
    cfg = state.cfg
    state.central.check()
    logs.setup(cfg.log_level, cfg.log_json, "lifecert-central")
    bootstrap.run(cfg, client_id)


@main.group("db")
def db_group() -> None:
    """Database schema.

    \b
    Example:
        lifecert-central db upgrade
    """


@db_group.command()
@click.pass_obj
@friendly_errors
def upgrade(state: _State) -> None:
    """Migrate the database to the newest schema (safe to repeat).

    \b
    Example:
        lifecert-central --config central.toml db upgrade
    """
    revision = db.upgrade(state.engine(migrated=False))
    click.echo(f"database at revision {revision}")


@main.group("roster")
def roster_group() -> None:
    """The retiree roster.

    \b
    Example:
        lifecert-central roster import retirees.csv
    """


@roster_group.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--partial", is_flag=True, help="Import the good rows even if some are bad.")
@click.pass_obj
@friendly_errors
def roster_import(state: _State, csv_file: Path, partial: bool) -> None:
    """Import (add or update) retirees from a CSV file with a header row.

    Columns: id_number, name, sex, birth_date (required); community,
    monthly_amount, bank_account, account_name, status, retirement_date,
    certified_until (optional). Every bad row is reported by line and field;
    nothing is written unless all rows are good (or --partial).

    \b
    Example:
        lifecert-central roster import retirees.csv --partial
    """
    report = roster.import_csv(state.engine(), csv_file, partial=partial)
    for err in report.errors:
        click.echo(f"skipped: {err}", err=True)
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged"
        + (f", {len({e.line for e in report.errors})} bad row(s) skipped" if report.errors else "")
    )


@main.group("retirees")
def retirees_group() -> None:
    """Retirees and their certification status.

    \b
    Example:
        lifecert-central retirees show 110105195003071242
    """


@retirees_group.command("list")
@click.option("--status", help="Only this status (active, suspended, deceased, terminated).")
@click.option(
    "--due-before",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Only those certified until before this date (or never).",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def retirees_list(
    state: _State, status: str | None, due_before: dt.datetime | None, limit: int, as_json: bool
) -> None:
    """List retirees with status, certified_until and open holds.

    \b
    Example:
        lifecert-central retirees list --due-before 2026-07-01 --json
    """
    rows = people_queries.list_retirees(
        state.engine(),
        status=status,
        due_before=due_before.date() if due_before else None,
        limit=limit,
    )
    _emit(rows, as_json, ["id_number", "name", "status", "certified_until", "open_holds"])


@retirees_group.command("show")
@click.argument("id_number")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def retirees_show(state: _State, id_number: str, as_json: bool) -> None:
    """Show one retiree: status, certified_until, the latest run's decision, holds, results.

    \b
    Example:
        lifecert-central retirees show 110105195003071242 --json
    """
    engine = state.engine()
    found = people_queries.get_retiree(engine, id_number.strip().upper())
    if found is None:
        raise LifecertError(f"no retiree {id_number}: check the number or import the roster")
    found["payment"] = runs.latest_line(engine, found["id_number"])
    found.pop("bank_account", None)
    if as_json:
        _emit(found, True, [])
        return
    for key in ("id_number", "name", "sex", "birth_date", "community", "status", "certified_until"):
        click.echo(f"{key:16} {'' if found[key] is None else found[key]}")
    if (paid := found["payment"]) is not None:
        why = f" ({paid['reason']})" if paid["reason"] else ""
        click.echo(f"{'payment':16} {paid['period']} {paid['decision']}{why}")
    click.echo("holds:")
    for h in found["holds"]:
        state_txt = f"released {h['released_at']:%Y-%m-%d}" if h["released_at"] else "OPEN"
        click.echo(f"  {h['reason']} since {h['since']:%Y-%m-%d} {state_txt}")
    click.echo("results:")
    for r in found["results"]:
        click.echo(
            f"  {r['received_at']:%Y-%m-%d %H:%M} {r['device_id']} #{r['seq']} "
            f"{r['method']} {r['decision']}"
        )


@main.group("quarantine")
def quarantine_group() -> None:
    """Refused messages and why.

    \b
    Example:
        lifecert-central quarantine list --reason bad_signature
    """


@quarantine_group.command("list")
@click.option("--reason", help="Only this reason code (see the README's table).")
@click.option("--summary", is_flag=True, help="Counts per reason instead of rows.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def quarantine_list(
    state: _State, reason: str | None, summary: bool, limit: int, as_json: bool
) -> None:
    """List quarantined messages, newest first, with their reasons.

    \b
    Example:
        lifecert-central quarantine list --summary
    """
    engine = state.engine()
    if summary:
        counts = queries.count_by_reason(engine)
        rows = [{"reason": k, "count": v} for k, v in sorted(counts.items())]
        _emit(rows, as_json, ["reason", "count"])
        return
    rows = queries.list_quarantine(engine, reason=reason, limit=limit)
    _emit(rows, as_json, ["id", "received_at", "device_id", "reason", "acked", "detail"])


@quarantine_group.command("replay")
@click.argument("quarantine_id", type=int)
@click.pass_obj
@friendly_errors
def quarantine_replay(state: _State, quarantine_id: int) -> None:
    """Ingest again a message refused with internal_error, once its cause is fixed.

    The message is verified and judged as of when it first arrived; a result
    already applied meanwhile is reported as a duplicate. The terminal got a
    'rejected' ack at the time and is not told.

    \b
    Example:
        lifecert-central quarantine list --reason internal_error
        lifecert-central quarantine replay 42
    """
    state.engine()  # at the code's migration head, or an error saying to upgrade
    outcome = state.central.ingestor.replay(quarantine_id)
    why = f": {outcome.reason.value} ({outcome.detail})" if outcome.reason else ""
    click.echo(f"message {quarantine_id}: {outcome.status.value}{why}")


@main.group("results")
def results_group() -> None:
    """Applied results.

    \b
    Example:
        lifecert-central results list --device term-0001
    """


@results_group.command("list")
@click.option("--device", "device_id", help="Only results from this device.")
@click.option("--retiree", "retiree_id", help="Only results for this retiree.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def results_list(
    state: _State, device_id: str | None, retiree_id: str | None, limit: int, as_json: bool
) -> None:
    """List applied results, newest first.

    \b
    Example:
        lifecert-central results list --retiree 110105195003071242 --json
    """
    rows = queries.list_results(
        state.engine(), device_id=device_id, retiree_id=retiree_id, limit=limit
    )
    _emit(
        rows,
        as_json,
        ["received_at", "device_id", "seq", "retiree_id", "method", "decision", "applied"],
    )


# -- payments, registries, bank files, coverage, duplicates (issue 5) ---------------------


def _period(_ctx: click.Context, _param: click.Parameter, value: str) -> Period:
    try:
        return Period.parse(value)
    except PeriodError as exc:
        raise click.BadParameter(str(exc)) from None


def _id_number(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return idnumber.validate(value)
    except idnumber.IdNumberError as exc:
        raise click.BadParameter(f"{value!r} is not an ID number: {exc}") from None


def _printable(limit: int, least: int = 0) -> Any:
    """A click callback: text of ``least``-``limit`` printable characters (it goes into
    events; PostgreSQL refuses NUL, a terminal acts on control characters)."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        if not least <= len(value) <= limit or not value.isprintable():
            raise click.BadParameter(
                f"{least}-{limit} printable characters (no tabs, newlines or control characters)"
            )
        return value

    return check


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _public_key(path: Path, field: str) -> Any:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field}: cannot load a PEM public key from {path}: {exc}") from None


@main.group("payments")
def payments_group() -> None:
    """Monthly payment runs: pay, hold, stop, resume with arrears.

    \b
    Example:
        lifecert-central payments run 2026-04
    """


@payments_group.command("run")
@click.argument("period", callback=_period)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def payments_run(state: _State, period: Period, as_json: bool) -> None:
    """Compute and store the run of PERIOD (YYYY-MM); again = recompute until filed.

    Runs go in order (the month after the latest, or the latest again). PERIOD must
    be within [payments] months_ahead (default 1) after this month and months_back
    (default 12) before it, and not before the roster's first month: the month of
    the first roster import. A wrong run not yet filed: `payments discard`.

    \b
    Example:
        lifecert-central --config central.toml payments run 2026-04
    """
    cfg = state.cfg
    done = runs.run(state.engine(), period, cfg.policy, actor="cli", window=cfg.payments)
    if as_json:
        _emit(done.as_json() | {"period": str(period), "run_id": done.run_id}, True, [])
        return
    verb = "recomputed" if done.recomputed else "computed"
    click.echo(f"run {done.run_id} for {period} {verb}:")
    for decision, n in sorted(done.decisions.items()):
        click.echo(f"  {decision:8} {n}")
    for reason, n in sorted(done.reasons.items()):
        click.echo(f"    {reason:24} {n}")
    click.echo(f"payable {_money(done.payable_cents)} (arrears {_money(done.arrears_cents)})")


@payments_group.command("discard")
@click.argument("period", callback=_period)
@click.option(
    "--reason", required=True, callback=_printable(500, 1), help="Why (kept in the event)."
)
@click.option(
    "--actor",
    default="staff",
    show_default=True,
    callback=_printable(100, 1),
    help="Who discards it.",
)
@click.pass_obj
@friendly_errors
def payments_discard(state: _State, period: Period, reason: str, actor: str) -> None:
    """Discard the latest run while no bank file is made (e.g. a mistyped month).

    Its lines go, an event keeps the reason and its totals; the month before is then
    the latest again. A filed or sent run stands: correct it in the next run.

    \b
    Example:
        lifecert-central payments discard 2027-04 --reason "typed 2027 for 2026"
    """
    run_id = runs.discard(state.engine(), period, reason, actor)
    click.echo(f"run {run_id} for {period} discarded")


@payments_group.command("show")
@click.argument("period", callback=_period)
@click.option("--decision", type=click.Choice([d.value for d in runs.Decision]))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def payments_show(
    state: _State, period: Period, decision: str | None, limit: int, as_json: bool
) -> None:
    """List the lines of a run (ID order).

    \b
    Example:
        lifecert-central payments show 2026-04 --decision hold
    """
    rows = []
    for row in runs.lines(state.engine(), period, decision=decision):
        rows.append(dict(row._mapping))
        if len(rows) == limit:
            break
    columns = ["retiree_id", "decision", "reason", "amount_cents", "arrears_cents"]
    _emit(rows, as_json, [*columns, "payable_cents", "basis_date"])


@payments_group.command("explain")
@click.argument("period", callback=_period)
@click.argument("id_number", callback=_id_number)
@click.pass_obj
@friendly_errors
def payments_explain(state: _State, period: Period, id_number: str) -> None:
    """Say what a run decided for one retiree, and why.

    \b
    Example:
        lifecert-central payments explain 2026-04 110105195003071242
    """
    engine = state.engine()
    click.echo(review.explain(engine, period, id_number, state.cfg.policy))


@payments_group.command("diff")
@click.argument("period", callback=_period)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def payments_diff(state: _State, period: Period, limit: int, as_json: bool) -> None:
    """What changed since the previous month's run: counts per transition, then examples.

    \b
    Example:
        lifecert-central payments diff 2026-05 --limit 50
    """
    found = review.diff(state.engine(), period, limit=limit)
    if as_json:
        _emit(found.__dict__, True, [])
        return
    if found.previous is None:
        click.echo(f"no run for {period.shift(-1)}: nothing to compare")
        return
    click.echo(f"{found.previous} -> {found.period}:")
    for transition, n in sorted(found.transitions.items()):
        click.echo(f"  {transition:48} {n}")
    if found.changes:
        _emit(found.changes, False, ["retiree_id", "old", "new", "new_payable_cents"])


@main.group("holds")
def holds_group() -> None:
    """Manual payment holds.

    \b
    Example:
        lifecert-central holds place 110105195003071242 --note "bank letter returned"
    """


@holds_group.command("place")
@click.argument("id_number", callback=_id_number)
@click.option("--note", default="", callback=_printable(500), help="Why (kept in the event).")
@click.option(
    "--actor",
    default="staff",
    show_default=True,
    callback=_printable(100, 1),
    help="Who places it.",
)
@click.pass_obj
@friendly_errors
def holds_place(state: _State, id_number: str, note: str, actor: str) -> None:
    """Place a manual hold: the retiree is held from the next run until released.

    \b
    Example:
        lifecert-central holds place 110105195003071242 --actor staff-7 --note "letter returned"
    """
    hold = holds.place(state.engine(), id_number, actor, note)
    click.echo(f"hold {hold} placed" + (f" ({note})" if note else ""))


@holds_group.command("release")
@click.argument("id_number", callback=_id_number)
@click.option("--note", default="", callback=_printable(500), help="Why (kept in the events).")
@click.option(
    "--actor",
    default="staff",
    show_default=True,
    callback=_printable(100, 1),
    help="Who releases it.",
)
@click.pass_obj
@friendly_errors
def holds_release(state: _State, id_number: str, note: str, actor: str) -> None:
    """Release a retiree's open manual holds (no back-pay for the held months).

    \b
    Example:
        lifecert-central holds release 110105195003071242 --note "address confirmed"
    """
    n = holds.release(state.engine(), id_number, actor, note)
    click.echo(f"{n} manual hold(s) released")


@main.group("registry")
def registry_group() -> None:
    """Death and prison registries.

    \b
    Example:
        lifecert-central registry import death deaths-2026-04.csv
    """


@registry_group.command("import")
@click.argument("kind", type=click.Choice([k.value for k in registries.RegistryKind]))
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--partial", is_flag=True, help="Import the good rows even if some are bad.")
@click.pass_obj
@friendly_errors
def registry_import(state: _State, kind: str, csv_file: Path, partial: bool) -> None:
    """Import a registry CSV; records match retirees on ID number AND birth date.

    death: id_number, birth_date, death_date (name optional).
    prison: id_number, birth_date, start_date, release_date (empty: still inside).

    \b
    Example:
        lifecert-central registry import prison prison-2026-04.csv --partial
    """
    report = registries.import_csv(
        state.engine(), registries.RegistryKind(kind), csv_file, partial=partial
    )
    for err in report.errors:
        click.echo(f"skipped: {err}", err=True)
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged; "
        f"{report.matched} matched to retirees, {report.deceased} marked deceased"
    )


@registry_group.command("hits")
@click.option("--summary", is_flag=True, help="Counts and amounts per category.")
@click.option("--category", help="Only this category (e.g. died_still_paid).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def registry_hits(state: _State, summary: bool, category: str | None, as_json: bool) -> None:
    """Registry records by category, with overpayments to recover.

    \b
    Example:
        lifecert-central registry hits --category died_still_paid
    """
    found = recovery.hits(state.engine())
    if summary:
        _emit(recovery.summary(found), as_json, ["category", "count", "amount_cents"])
        return
    rows = [h.__dict__ for h in found if category in (None, h.category)]
    _emit(rows, as_json, ["category", "id_number", "name", "amount_cents", "detail"])


@main.group("bank")
def bank_group() -> None:
    """Bank payment files: make, send over SFTP, reconcile the return file.

    \b
    Example:
        lifecert-central bank make 2026-04 && lifecert-central bank send 2026-04
    """


def _file_of(state: _State, period: Period) -> Path:
    return state.cfg.bank.out_dir / f"{state.cfg.bank.payer}-{period}.jwe"


@bank_group.command("make")
@click.argument("period", callback=_period)
@click.pass_obj
@friendly_errors
def bank_make(state: _State, period: Period) -> None:
    """Write the signed, encrypted payment file of a run (freezes the run).

    \b
    Example:
        lifecert-central --config central.toml bank make 2026-04
    """
    cfg = state.cfg
    made = bankfile.make(
        state.engine(),
        period,
        cfg.bank.payer,
        cfg.bank.out_dir,
        state.central.sign_key,
        _public_key(cfg.bank.encrypt_pub, "bank.encrypt_pub"),
    )
    for w in made.withheld:
        click.echo(f"withheld: {w['id_number']}: {w['problem']}", err=True)
    click.echo(
        f"{made.path}: {made.count} records, {_money(made.total_cents)}, sha256 {made.sha256}"
    )


@bank_group.command("send")
@click.argument("period", callback=_period)
@click.pass_obj
@friendly_errors
def bank_send(state: _State, period: Period) -> None:
    """Upload the payment file to the bank's SFTP server (pinned host key).

    \b
    Example:
        lifecert-central bank send 2026-04
    """
    path = _file_of(state, period)
    if not path.exists():
        raise LifecertError(f"{path} does not exist: run `lifecert-central bank make {period}`")
    remote = sftp.upload(state.cfg.bank.sftp, path)
    bankfile.mark_sent(state.engine(), period)
    click.echo(f"sent to {state.cfg.bank.sftp.host}:{remote}")


@bank_group.command("reconcile")
@click.argument("period", callback=_period)
@click.argument("return_file")
@click.option("--fetch", is_flag=True, help="Download RETURN_FILE from the SFTP server first.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def bank_reconcile(
    state: _State, period: Period, return_file: str, fetch: bool, as_json: bool
) -> None:
    """Verify the bank's signed return file and list every payable/paid difference.

    \b
    Example:
        lifecert-central bank reconcile 2026-04 LIFECERT-2026-04.return --fetch
    """
    cfg = state.cfg
    local = Path(return_file)
    if fetch:
        local = sftp.download(cfg.bank.sftp, return_file, cfg.bank.out_dir / Path(return_file).name)
    try:
        token = local.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LifecertError(f"cannot read {local}: {exc}") from None
    data = bankfile.verify_return(
        token, _public_key(cfg.bank.return_sign_pub, "bank.return_sign_pub")
    )
    rec = bankfile.reconcile(state.engine(), period, data)
    cols = ["kind", "id_number", "payable_cents", "paid_cents", "detail"]
    if as_json:
        _emit(rec.__dict__, True, cols)
        return
    click.echo(
        f"payable {_money(rec.payable_cents)}, paid {_money(rec.paid_cents)}, "
        f"{len(rec.differences)} difference(s)"
    )
    if rec.differences:
        _emit(rec.differences, False, cols)


@main.command("coverage")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Date (default: today).")
@click.option(
    "--csv", "csv_out", type=click.Path(path_type=Path, dir_okay=False), help="Write CSV."
)
@click.option(
    "--png", "png_out", type=click.Path(path_type=Path, dir_okay=False), help="Write a bar chart."
)
@click.pass_obj
@friendly_errors
def coverage_cmd(
    state: _State, as_of: dt.datetime | None, csv_out: Path | None, png_out: Path | None
) -> None:
    """Certification coverage per community: certified %, due soon, overdue.

    \b
    Example:
        lifecert-central coverage --as-of 2026-04-01 --csv coverage.csv --png coverage.png
    """
    day = as_of.date() if as_of else dt.date.today()
    rows = coverage.report(state.engine(), day, state.cfg.policy.reminder_days)
    cells = [r.__dict__ | {"certified_pct": f"{r.certified_pct:.1f}"} for r in rows]
    _emit(cells, False, ["community", "retirees", "certified", "certified_pct", "due", "overdue"])
    if csv_out:
        csv_out.write_text(coverage.to_csv(rows), encoding="utf-8")
    if png_out:
        coverage.to_png(rows, png_out, day)


@main.group("duplicates")
def duplicates_group() -> None:
    """1:N face search: the same face certified under two identities.

    \b
    Example:
        lifecert-central duplicates scan --watch 60
    """


@duplicates_group.command("init-key")
@click.pass_obj
@friendly_errors
def duplicates_init_key(state: _State) -> None:
    """Create the AES-256 key that encrypts stored templates ([duplicates] key_file).

    \b
    Example:
        lifecert-central --config central.toml duplicates init-key
    """
    path = state.cfg.duplicates.key_file
    if path.exists():
        raise LifecertError(f"{path} exists: keep it (stored templates need it)")
    click.echo(f"wrote {cipher.write_key(path)}")


@duplicates_group.command("scan")
@click.option("--watch", type=click.FloatRange(1), help="Keep scanning every N seconds.")
@click.pass_obj
@friendly_errors
def duplicates_scan(state: _State, watch: float | None) -> None:
    """Search every new sealed template against all stored ones; flag duplicates.

    \b
    Example:
        lifecert-central duplicates scan
    """
    cfg = state.cfg
    engine = state.engine()
    key = cipher.TemplateCipher.from_file(cfg.duplicates.key_file)
    index = duplicates.FaceIndex.load(engine, key)
    click.echo(f"{len(index)} stored template(s) loaded")
    while True:
        done = duplicates.scan(engine, index, key, state.central.seal_key, cfg.duplicates.distance)
        if done.indexed or done.problems or not watch:
            click.echo(
                f"{done.indexed} indexed, {done.problems} unreadable, {len(done.flags)} flagged"
            )
        if not watch:
            return
        time.sleep(watch)


@main.group("flags")
def flags_group() -> None:
    """Fraud flags (duplicate faces, passes for deceased retirees).

    \b
    Example:
        lifecert-central flags list --kind duplicate_face
    """


@flags_group.command("list")
@click.option("--kind", help="Only this kind (duplicate_face, pass_while_deceased, ...).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def flags_list(state: _State, kind: str | None, limit: int, as_json: bool) -> None:
    """List fraud flags, newest first.

    \b
    Example:
        lifecert-central flags list --json
    """
    rows = flags.list_flags(state.engine(), kind, limit)
    _emit(rows, as_json, ["id", "created_at", "kind", "retiree_id", "other_retiree_id", "score"])


@main.group("population")
def population_group() -> None:
    """Synthetic retirees for benchmarks and demos.

    \b
    Example:
        lifecert-central population generate 1000 --out retirees.csv
    """


@population_group.command("generate")
@click.argument("count", type=click.IntRange(1))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--seed", default=1, show_default=True, help="Same seed, same people.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Reference date (certifications).")
@friendly_errors
def population_generate(count: int, out: Path, seed: int, as_of: dt.datetime | None) -> None:
    """Write COUNT synthetic retirees (valid ID numbers) as a roster CSV.

    \b
    Example:
        lifecert-central population generate 100000 --out synthetic.csv --seed 7
    """
    day = as_of.date() if as_of else dt.date.today()
    n = population.write_csv(population.generate(count, seed=seed, as_of=day), out)
    click.echo(f"wrote {n} retirees to {out}")
