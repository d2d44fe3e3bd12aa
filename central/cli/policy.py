"""Commands of the versioned policy: ``policy show/history/propose``.

The versioned ``[policy]`` parameters (``central.certification.versions.VERSIONED``)
change only by a ``policy`` proposal for a new version in force from a date; versions are
never edited. ``central.toml``'s ``[policy]`` holds until the first version."""

import datetime as dt
import json
import zoneinfo
from typing import Any

import click

from central.certification import versions
from central.cli.context import State, require
from central.cli.output import emit
from central.cli.params import check_printable
from central.cli.proposals import propose
from central.staff.permissions import Permission
from common.cli import friendly_errors


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from None


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r}: use NAME=VALUE, e.g. validity_months=24")
    if raw.lower() in ("none", "null", ""):
        return name, None
    try:
        return name, json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
    except ValueError:
        return name, raw


def _assignments(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    out = dict(_assignment(v) for v in values)
    if not out:
        raise click.BadParameter(f"give NAME=VALUE for one of {', '.join(versions.VERSIONED)}")
    return out


@click.group("policy")
def policy_group() -> None:
    """The policy parameters, versioned with effective dates.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key policy show
    """


@policy_group.command("show")
@click.option("--date", "day", callback=_day, help="In force on this day (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def show(state: State, day: dt.date | None, as_json: bool) -> None:
    """The versioned parameters in force on a day, and which version they come from.

    \b
    Example:
        lifecert-central policy show --date 2027-01-01
    """
    require(state, Permission.RESULTS_READ)
    fallback = state.cfg.policy
    day = day or dt.datetime.now(zoneinfo.ZoneInfo(fallback.timezone)).date()
    with state.engine().connect() as conn:
        found = [v for v in versions.history(conn) if v.effective_from <= day]
    policy = versions.in_force(found, day, fallback)
    source = f"version {found[-1].id} from {found[-1].effective_from}" if found else "central.toml"
    values = versions.params_of(policy)
    if as_json:
        emit({"date": day.isoformat(), "source": source, "params": values}, True, [])
        return
    click.echo(f"policy in force on {day} ({source}):")
    for name, value in values.items():
        click.echo(f"  {name} = {json.dumps(value)}")


@policy_group.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def history(state: State, as_json: bool) -> None:
    """Every version, in the order they take effect.

    \b
    Example:
        lifecert-central policy history --json
    """
    require(state, Permission.RESULTS_READ)
    with state.engine().connect() as conn:
        found = versions.history(conn)
    rows = [
        {
            "version": v.id,
            "effective_from": v.effective_from.isoformat(),
            "params": ", ".join(f"{k}={json.dumps(x)}" for k, x in v.params.items()),
            "proposal": v.proposal_id,
            "approved_by": v.approved_by,
            "note": v.note,
        }
        for v in found
    ]
    if as_json:
        for row, v in zip(rows, found, strict=True):
            row["params"] = v.params
    emit(rows, as_json, ["version", "effective_from", "params", "proposal", "approved_by", "note"])


@policy_group.command("propose")
@click.option(
    "--effective-from", "effective_from", required=True, callback=_day, help="YYYY-MM-DD."
)
@click.option("--note", default="", callback=check_printable(500), help="Why (kept).")
@click.argument("params", nargs=-1, callback=_assignments)
@click.pass_obj
@friendly_errors
def propose_(state: State, effective_from: dt.date, note: str, params: dict[str, Any]) -> None:
    """Propose a new version: the parameters in force on --effective-from with NAME=VALUE
    changed (entry clerk; a reviewer and an approver decide it).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            policy propose --effective-from 2027-01-01 grace_days=15 assisted_review_age=85
    """
    payload = {"effective_from": effective_from.isoformat(), "params": params, "note": note}
    propose(state, "policy", payload)


COMMANDS = (policy_group,)
