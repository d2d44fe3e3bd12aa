"""``lifecert-edge``: the terminal's command line, a thin layer over the edge API."""

import datetime as dt
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

import click

from common import idnumber, logs
from common.cli import friendly_errors
from edge import config as edge_config
from edge import enrolment
from edge.adapters import keys as edge_keys
from edge.adapters.outbox import Row, Status
from edge.adapters.recorder import Recorder
from edge.bootstrap import open_directory
from edge.config import EdgeConfig
from edge.fleet.agent import RESTART_EXIT
from edge.service import EdgeService, open_outbox
from edge.session.model import Document, assisted


@dataclass
class _State:
    path: Path
    cfg: EdgeConfig | None = None

    def config(self) -> EdgeConfig:
        if self.cfg is None:
            self.cfg = edge_config.load(self.path)
        return self.cfg


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LIFECERT_EDGE_CONFIG",
    default=edge_config.DEFAULT_PATH,
    show_default=True,
    help="edge.toml (or $LIFECERT_EDGE_CONFIG)",
)
@click.option("--validate-config", is_flag=True, help="Check the config file, print OK, exit.")
@click.pass_context
@friendly_errors
def main(ctx: click.Context, config_path: Path, validate_config: bool) -> None:
    """The lifecert terminal: deliver signed results, record desk certifications.

    \b
    Example:
      lifecert-edge --config /etc/lifecert/edge.toml --validate-config
      lifecert-edge --config bundle/edge.toml run
    """
    state = _State(config_path)
    ctx.obj = state
    if validate_config:
        cfg = state.config()
        edge_keys.load(cfg)
        click.echo(f"OK: {config_path} (device {cfg.device_id})")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.pass_obj
@friendly_errors
def run(state: _State) -> None:
    """Deliver the outbox to central until SIGTERM or Ctrl-C.

    Works offline: results wait in the outbox until the broker is reachable and
    central acks them.

    \b
    Example:
      lifecert-edge --config /etc/lifecert/edge.toml run
    """
    cfg = state.config()
    logs.setup(cfg.log_level, json=cfg.log_json, service="lifecert-edge")
    service = EdgeService(cfg)

    def _stop(signum: int, frame: FrameType | None) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.run()
    if service.restart_requested:
        sys.exit(RESTART_EXIT)  # Restart=on-failure starts it again


def _id_number(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return idnumber.validate(value)
    except idnumber.IdNumberError as exc:
        raise click.BadParameter(f"{value!r} is not a valid ID number: {exc}") from None


@main.command("certify-assisted")
@click.option(
    "--retiree", required=True, callback=_id_number, help="Retiree's 18-character ID number."
)
@click.option("--staff", required=True, help="Id of the staff member who saw the retiree.")
@click.option(
    "--document",
    type=click.Choice(["id_card", "ss_card", "other"]),
    default="id_card",
    show_default=True,
    help="Document the staff member checked.",
)
@click.option("--note", default="", help="Free-text note (at most 500 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
@click.pass_obj
@friendly_errors
def certify_assisted(
    state: _State, *, retiree: str, staff: str, document: str, note: str, as_json: bool
) -> None:
    """Record a desk certification (staff saw the retiree in person).

    The signed result is on disk when the receipt (result id and seq) prints;
    the running service delivers it.

    \b
    Example:
      lifecert-edge certify-assisted --retiree 11010519491231002X --staff desk-07
    """
    cfg = state.config()
    keys = edge_keys.load(cfg)
    directory = open_directory(cfg)
    if directory is not None and not directory.allows(staff):
        raise click.BadParameter(
            f"{staff!r} is not in central's staff directory for this site "
            f"({cfg.kiosk.staff_directory}; if it is out of date, the log says so)",
            param_hint="--staff",
        )
    with open_outbox(cfg) as outbox:
        receipt = Recorder(outbox, keys).record(
            assisted(retiree, staff, cast(Document, document), note)
        )
    if as_json:
        click.echo(json.dumps(receipt.as_dict()))
    else:
        click.echo(f"stored result {receipt.result_id} seq {receipt.seq}: pending delivery")


def _when(ts: float | None) -> str:
    return (
        "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
    )


def _row_json(row: Row) -> dict[str, Any]:
    data = row.as_dict()
    data["ack"] = json.loads(row.ack) if row.ack else None
    return data


@main.command("outbox")
@click.option(
    "--status", type=click.Choice([s.value for s in Status]), help="Only rows with this status."
)
@click.option("--limit", type=click.IntRange(0, None), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print counts and rows as JSON.")
@click.pass_obj
@friendly_errors
def outbox_cmd(state: _State, status: str | None, limit: int, as_json: bool) -> None:
    """Show the outbox: counts per status and the newest rows (never the signed bodies).

    \b
    Example:
      lifecert-edge outbox --status pending --limit 50
    """
    cfg = state.config()
    with open_outbox(cfg) as outbox:
        counts = outbox.counts()
        rows = outbox.rows(Status(status) if status else None, limit=limit)
    if as_json:
        click.echo(json.dumps({"counts": counts, "rows": [_row_json(r) for r in rows]}))
        return
    click.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))
    for row in rows:
        click.echo(
            f"{row.seq:>6}  {row.status.value:<9}  {row.result_id}  {row.method:<8} "
            f"{row.decision:<5} {row.retiree_id}  created {_when(row.created_at)}  "
            f"sent {row.attempts}x, last {_when(row.last_sent_at)}"
        )


@main.command("enrol")
@click.option(
    "--server", required=True, help="the enrolment server, e.g. https://enrol.example.org:8443"
)
@click.option(
    "--token",
    required=True,
    envvar="LIFECERT_ENROL_TOKEN",
    help="the one-time token from `lifecert fleet token create` (or $LIFECERT_ENROL_TOKEN)",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to write key, certificate and edge.toml [the --config file's folder]",
)
@click.option(
    "--key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="put the key and certificate here instead, e.g. /var/lib/lifecert/tls (a folder the "
    "service may write, so it can renew them)",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 86400),
    default=600,
    show_default=True,
    help="seconds to wait for the operator's approval",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.1, 600),
    default=5,
    show_default=True,
    help="seconds between looks at the request",
)
@click.pass_obj
@friendly_errors
def enrol_cmd(
    state: _State,
    server: str,
    token: str,
    folder: Path | None,
    key_dir: Path | None,
    wait: float,
    poll: float,
) -> None:
    """Enrol this terminal with a key made here (claim with a one-time token).

    The private key never leaves the terminal: a CSR goes to the enrolment server
    with the token; once the operator approves (or the token auto-approves), the
    signed certificate, CA, broker address and central's keys land beside it.

    \b
    Example:
      lifecert-edge enrol --server https://enrol.example.org:8443 --token "$TOKEN"
    """
    done = enrolment.enrol(
        server, token, folder or state.path.parent, key_dir=key_dir, wait_s=wait, poll_s=poll
    )
    edge_keys.load(edge_config.load(done.config))
    click.echo(f"enrolled {done.device_id} (request {done.request}): {done.config}")


@main.group()
def staff() -> None:
    """Staff who may log in to desk mode on the kiosk page ([kiosk] staff_file).

    \b
    Example:
      lifecert-edge staff add desk-07
    """


@staff.command("add")
@click.argument("staff_id")
@click.password_option("--pin", prompt="PIN", help="The staff member's PIN (asked twice).")
@click.pass_obj
@friendly_errors
def staff_add(state: _State, staff_id: str, pin: str) -> None:
    """Add a staff member (or change their PIN): writes the scrypt hash line.

    \b
    Example:
      lifecert-edge --config /etc/lifecert/edge.toml staff add desk-07
    """
    from edge.kiosk.desk import add_staff

    path = state.config().kiosk.staff_file
    if path is None:
        raise click.UsageError('kiosk.staff_file is not set: add staff_file = "staff" to [kiosk]')
    try:
        replaced = add_staff(path, staff_id, pin)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"{'changed the PIN of' if replaced else 'added'} {staff_id} in {path}")


@main.group("fleet")
def fleet_group() -> None:
    """The terminal's model bundle releases and self-test.

    \b
    Example:
      lifecert-edge fleet self-test
    """


@fleet_group.command("install-bundle")
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.pass_obj
@friendly_errors
def fleet_install(state: _State, bundle: Path) -> None:
    """Verify a model bundle, copy it into a release and point [models] bundle at it.

    \b
    Example:
      lifecert-edge fleet install-bundle /media/usb/models
    """
    from edge.bootstrap import open_updater

    name = open_updater(state.config()).install(bundle)
    click.echo(f"installed release {name}; {state.config().models.bundle} points at it")


@fleet_group.command("install-software")
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.pass_obj
@friendly_errors
def fleet_install_software(state: _State, bundle: Path) -> None:
    """Verify a signed software bundle, install it as a release and point
    <data_dir>/software/current at it (what systemd's ExecStart starts).

    \b
    Example:
      lifecert-edge fleet install-software /media/usb/sw-0.2.0
    """
    from edge.bootstrap import open_software_updater

    updater = open_software_updater(state.config())
    name = updater.install(bundle)
    click.echo(f"installed software {name}; {updater.pointer} points at it")


@fleet_group.command("self-test")
@click.pass_obj
@friendly_errors
def fleet_self_test(state: _State) -> None:
    """Run the current model bundle on the reference images ([fleet] selftest_dir).

    \b
    Example:
      lifecert-edge fleet self-test
    """
    from edge.bootstrap import open_updater

    click.echo(open_updater(state.config()).self_test())
