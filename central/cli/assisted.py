"""Commands about assisted certifications: ``assisted report``, ``assisted referred`` (the
review queue) and ``assisted decide`` (proposes a decision on one referred pass)."""

import datetime as dt

import click

from central.certification import assisted as share
from central.cli.context import State, require
from central.cli.output import emit
from central.cli.params import check_printable
from central.cli.proposals import propose
from central.proposals import assisted
from central.staff.permissions import Permission
from common.cli import friendly_errors


@click.group("assisted")
def assisted_group() -> None:
    """Assisted certifications: who assists how often, and the passes sent to review.

    \b
    Example:
        lifecert-central assisted report --days 90
    """


@assisted_group.command("report")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.pass_obj
@friendly_errors
def assisted_report(state: State, days: int, as_json: bool) -> None:
    """The share of assisted results per staff member and per terminal (last --days days).

    \b
    Example:
        lifecert-central assisted report --days 90 --json
    """
    require(state, Permission.RESULTS_READ)
    found = share.report(state.engine(), dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
    if as_json:
        emit({"since": found.since, "terminals": found.terminals, "staff": found.staff}, True, [])
        return
    click.echo(f"since {found.since:%Y-%m-%d %H:%M} UTC, per staff member:")
    emit(found.staff, False, ["staff_id", "assisted", "share_pct", "terminals", "referred"])
    click.echo("per terminal:")
    emit(found.terminals, False, ["device_id", "results", "assisted", "assisted_pct", "referred"])


@assisted_group.command("referred")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def assisted_referred(state: State, limit: int, as_json: bool) -> None:
    """Assisted passes the policy sent to review, waiting for a decision (oldest first).

    \b
    Example:
        lifecert-central assisted referred --json
    """
    require(state, Permission.RESULTS_READ)
    rows = assisted.referred(state.engine(), limit)
    cols = ["result_id", "retiree_id", "device_id", "staff_id", "why", "certified_until"]
    emit(rows, as_json, cols)


@assisted_group.command("decide")
@click.argument("result_id")
@click.option("--certify/--refuse", required=True, help="Certify the retiree from it, or not.")
@click.option("--reason", required=True, callback=check_printable(500, 1), help="Why.")
@click.pass_obj
@friendly_errors
def assisted_decide(state: State, result_id: str, certify: bool, reason: str) -> None:
    """Propose a decision on a referred assisted pass; it applies once approved by others.

    \b
    Example:
        lifecert-central assisted decide 3f1c… --certify --reason "called the family"
    """
    decision = "certify" if certify else "refuse"
    propose(
        state, "assisted_review", {"result_id": result_id, "decision": decision, "reason": reason}
    )


COMMANDS = (assisted_group,)
