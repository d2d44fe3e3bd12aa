"""Fleet health commands: ``fleet status``, ``fleet alerts``, ``fleet ack``."""

import datetime as dt
from typing import Any

import click

from central.cli.context import State
from central.cli.output import emit
from central.fleet import alerts
from central.fleet import status as fleet_status_rows
from common.cli import friendly_errors

ALERT_COLUMNS = [
    "id", "rule", "subject", "raised_at", "cleared_at", "acked_by", "reason", "delivery",
]  # fmt: skip


def fleet_status(state: State) -> list[dict[str, Any]]:
    """One row per terminal: enrolled (certificate in the devices folder) or ever heard."""
    cfg = state.cfg
    trust = alerts.read_trust(cfg.fleet.devices_dir, cfg.fleet.crl_file)
    return fleet_status_rows.rows(state.engine(), trust, cfg.alerts.silent_after_s)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def status(state: State, as_json: bool) -> None:
    """Each terminal's state (online, offline, silent, stopped), backlog, versions, clock
    skew, disk, temperature, sessions today and failing devices.

    \b
    Example:
        lifecert-central fleet status --json
    """
    rows = fleet_status(state)
    emit(rows, as_json, fleet_status_rows.COLUMNS)
    if not as_json:
        online = sum(r["state"] == "online" for r in rows)
        click.echo(f"{online} of {len(rows)} terminal(s) online")


@click.command("alerts")
@click.option("--open", "open_only", is_flag=True, help="Only alerts not cleared yet.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def alerts_list(state: State, open_only: bool, limit: int, as_json: bool) -> None:
    """Fleet alerts, newest first: rule, terminal (* = the whole fleet), reason, and how far
    their delivery got (per event and channel: sent, pending or dead).

    \b
    Example:
        lifecert-central fleet alerts --open
    """
    rows = alerts.list_alerts(state.engine(), open_only, limit)
    emit(rows, as_json, ALERT_COLUMNS)


@click.command("ack")
@click.argument("alert_id", type=click.IntRange(1))
@click.option("--by", required=True, help="Who acknowledges it (your name or staff id).")
@click.pass_obj
@friendly_errors
def ack(state: State, alert_id: int, by: str) -> None:
    """Acknowledge an alert: someone is on it (it stays open until the cause is fixed); the
    acknowledgement goes to the alert channels ([alerts] notify) like a raised alert.

    \b
    Example:
        lifecert-central fleet ack 12 --by "J. Li"
    """
    name = by.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise click.BadParameter("give 1-64 printable characters", param_hint="--by")
    now = dt.datetime.now(dt.UTC)
    row = alerts.acknowledge(state.engine(), alert_id, name, now, state.cfg.alerts.notify)
    click.echo(f"alert {row['id']} ({row['rule']} on {row['subject']}) acknowledged by {name}")


COMMANDS = (status, alerts_list, ack)
