"""``lifecert-central``: a thin click layer over central's Python API."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import Engine

from central import config, db, queries, roster, service
from central.devices import DeviceTrust
from protocol import logs
from protocol.cli import friendly_errors
from protocol.errors import ConfigError, LifecertError


class _State:
    """The ``--config`` path, loaded lazily by the commands that need it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cfg: config.CentralConfig | None = None

    @property
    def cfg(self) -> config.CentralConfig:
        if self._cfg is None:
            self._cfg = config.load(self.path)
        return self._cfg

    def engine(self, migrated: bool = True) -> Engine:
        """The configured database; an error if it is not at the code's migration head."""
        engine = service.engine_for(self.cfg)
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


def _check_all(cfg: config.CentralConfig) -> None:
    """Everything ``run`` would load: files present, CA/CRL/devices and signing key usable."""
    if missing := cfg.missing_files():
        raise ConfigError("missing files:\n  - " + "\n  - ".join(missing))
    cfg.require_mqtt()
    DeviceTrust(cfg.fleet.ca_file, cfg.fleet.crl_file, cfg.fleet.devices_dir)
    service.signer_for(cfg)


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
        _check_all(ctx.obj.cfg)
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
    _check_all(cfg)
    logs.setup(cfg.log_level, cfg.log_json, "lifecert-central")
    service.run(cfg, client_id)


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
    rows = queries.list_retirees(
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
    """Show one retiree: status, certified_until, holds, latest results and events.

    \b
    Example:
        lifecert-central retirees show 110105195003071242 --json
    """
    found = queries.get_retiree(state.engine(), id_number.strip().upper())
    if found is None:
        raise LifecertError(f"no retiree {id_number}: check the number or import the roster")
    found.pop("bank_account", None)
    if as_json:
        _emit(found, True, [])
        return
    for key in ("id_number", "name", "sex", "birth_date", "community", "status", "certified_until"):
        click.echo(f"{key:16} {'' if found[key] is None else found[key]}")
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
