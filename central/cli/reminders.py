"""Commands of the reminders (central's notify room): ``reminders run``, ``reminders report``."""

import datetime as dt

import click

from central.cli.context import State
from central.cli.output import emit
from central.notify import reminders
from common.cli import friendly_errors

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.group("reminders")
def reminders_group() -> None:
    """Certification reminders before the due date, on it, and when payment is held.

    \b
    Example:
        lifecert-central reminders run
        lifecert-central reminders report --not-reacted
    """


@reminders_group.command("run")
@click.option("--date", "on", type=_DATE, help="The day to remind for (default: today).")
@click.pass_obj
@friendly_errors
def reminders_run(state: State, on: dt.datetime | None) -> None:
    """Enqueue the reminders due on a day (at most one per stage, retiree and due date;
    running it again sends nothing twice). ``run`` does this daily; the outbox sends them.

    \b
    Example:
        lifecert-central reminders run --date 2027-01-01
    """
    cfg = state.cfg
    engine = state.engine()
    day = on.date() if on else reminders.today(cfg.policy)
    settings = cfg.notify.reminders
    reminders.load_templates(settings.templates_dir)  # a broken template: refused up front
    total = reminders.count(engine, day, settings, cfg.policy)
    with click.progressbar(length=total, label=f"reminders for {day}") as bar:
        summary = reminders.run(engine, day, settings, cfg.policy, bar.update)
    for stage, seen in summary.seen.items():
        click.echo(f"{stage}: {summary.enqueued[stage]} enqueued ({seen} to remind)")


@reminders_group.command("report")
@click.option("--since", type=_DATE, help="Reminders sent on or after (default: 60 days ago).")
@click.option("--not-reacted", is_flag=True, help="Only those who have not certified since.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def reminders_report(
    state: State, since: dt.datetime | None, not_reacted: bool, as_json: bool
) -> None:
    """Who was reminded, and whether they certified since (the coordinator's view).

    \b
    Example:
        lifecert-central reminders report --since 2027-01-01 --not-reacted
    """
    first = since.date() if since else reminders.today(state.cfg.policy) - dt.timedelta(days=60)
    with state.engine().connect() as conn:
        rows = reminders.report(conn, first, not_reacted)
    columns = ["retiree_id", "name", "community", "stage", "due_date", "reminded_on"]
    emit(rows, as_json, [*columns, "channel", "delivery", "certified_until", "reacted"])
    if not as_json:
        reacted = sum(r["reacted"] for r in rows)
        click.echo(f"{len(rows)} reminded, {reacted} certified since, {len(rows) - reacted} not")


COMMANDS = (reminders_group,)
