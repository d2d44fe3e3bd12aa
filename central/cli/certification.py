"""Commands of central's certification room: ``run`` (the service), ``quarantine``, ``results``."""

import click

from central import bootstrap
from central.certification import queries
from central.cli.context import State
from central.cli.output import emit
from common import logs
from common.cli import friendly_errors


@click.command()
@click.option("--client-id", help="MQTT client id for this process (default: from the config).")
@click.pass_obj
@friendly_errors
def run(state: State, client_id: str | None) -> None:
    """Run the consumer (migrates the database first) until SIGTERM/SIGINT.

    \b
    Example:
        lifecert-central --config /etc/lifecert/central.toml run --client-id central-2
    """
    cfg = state.cfg
    state.central.check()
    logs.setup(cfg.log_level, cfg.log_json, "lifecert-central")
    bootstrap.run(state.central, client_id)


@click.group("quarantine")
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
    state: State, reason: str | None, summary: bool, limit: int, as_json: bool
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
        emit(rows, as_json, ["reason", "count"])
        return
    rows = queries.list_quarantine(engine, reason=reason, limit=limit)
    emit(rows, as_json, ["id", "received_at", "device_id", "reason", "acked", "detail"])


@quarantine_group.command("replay")
@click.argument("quarantine_id", type=int)
@click.pass_obj
@friendly_errors
def quarantine_replay(state: State, quarantine_id: int) -> None:
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


@click.group("results")
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
    state: State, device_id: str | None, retiree_id: str | None, limit: int, as_json: bool
) -> None:
    """List applied results, newest first.

    \b
    Example:
        lifecert-central results list --retiree 110105195003071242 --json
    """
    rows = queries.list_results(
        state.engine(), device_id=device_id, retiree_id=retiree_id, limit=limit
    )
    emit(
        rows,
        as_json,
        ["received_at", "device_id", "seq", "retiree_id", "method", "decision", "applied"],
    )


COMMANDS = (
    run,
    quarantine_group,
    results_group,
)
