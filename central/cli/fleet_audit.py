"""``lifecert-central fleet audit``: the fleet audit (see :mod:`central.fleet.audit`)."""

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from central.cli.context import State
from central.fleet import audit, brokerlog
from common.cli import friendly_errors
from common.errors import ConfigError


@click.command("audit")
@click.option(
    "--broker-log",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Mosquitto's log (connection messages); without it only central's tables are read",
)
@click.option(
    "--days",
    type=click.FloatRange(0, 3650, min_open=True),
    default=7,
    show_default=True,
    help="look at the last N days",
)
@click.option(
    "--tz",
    "tz_name",
    default="UTC",
    show_default=True,
    help="the sites' time zone for night hours and days, e.g. Asia/Shanghai",
)
@click.option("--night", default="22-6", show_default=True, help="night hours, START-END (local)")
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
@click.pass_obj
@friendly_errors
def audit_cmd(
    state: State, broker_log: Path | None, days: float, tz_name: str, night: str, as_json: bool
) -> None:
    """List what looks wrong in the fleet, each finding with its evidence.

    Revoked terminals still connecting, one terminal's key used from two hosts,
    client-id conflicts, refused logins, passes at night or in unusual numbers for a
    site, clock drift. Exit status 1 when a high-severity finding is listed.

    \b
    Example:
        lifecert-central fleet audit --broker-log fleet/broker/mosquitto.log --tz Asia/Shanghai
    """
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz: unknown time zone {tz_name!r}, e.g. Asia/Shanghai") from None
    try:
        start, end = (int(h) for h in night.split("-"))
        if not (0 <= start < 24 and 0 <= end < 24 and start != end):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--night: {night!r} is not START-END hours, e.g. 22-6") from None
    rules = audit.Rules(
        since=dt.datetime.now(dt.UTC) - dt.timedelta(days=days), tz=tz, night=(start, end)
    )
    files = state.cfg.fleet
    known = audit.read_fleet(files.crl_file, files.devices_dir)
    found = audit.result_findings(state.engine(), known, rules)
    if broker_log is not None:
        with broker_log.open(encoding="utf-8", errors="replace") as lines:
            found += audit.broker_findings(brokerlog.events(lines), known, rules)
    findings = audit.ordered(found)
    if as_json:
        click.echo(json.dumps([asdict(f) for f in findings], indent=2))
    elif not findings:
        click.echo(f"no findings in the last {days:g} day(s)")
    for f in [] if as_json else findings:
        click.echo(f"[{f.severity}] {f.check}  {f.subject}: {f.summary}")
        for line in f.evidence:
            click.echo(f"    {line}")
    if any(f.severity == "high" for f in findings):
        raise SystemExit(1)


COMMANDS: tuple[click.Command, ...] = (audit_cmd,)
