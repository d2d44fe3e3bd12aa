"""``lifecert fleet token|pending|approve|reject|enrol-server``: claim enrolment, keys born
on the terminal (a thin layer over :mod:`provisioning.claims`)."""

import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from common.cli import friendly_errors
from protocol import topics
from provisioning import claims, enrolserver, renewal
from provisioning.cliutil import fleet_dir, os_errors
from provisioning.fleet import Fleet

F = TypeVar("F", bound=Callable[..., Any])


def _cmd(name: str) -> Callable[[F], click.Command]:
    def decorate(func: F) -> click.Command:
        return click.command(name)(friendly_errors(os_errors(func)))

    return decorate


@click.group("token")
def token() -> None:
    """One-time enrolment tokens for terminals that make their own key.

    \b
    Example:
        lifecert fleet token create --device-id term-0042 --site dongcheng-3 --dir fleet
    """


@token.command("create")
@fleet_dir
@click.option("--device-id", required=True, help="the terminal's id (its certificate's CN)")
@click.option(
    "--site", default=topics.DEFAULT_SITE, show_default=True, help="where it stands (its OU)"
)
@click.option(
    "--auto-approve", is_flag=True, help="issue the certificate at once when the CSR arrives"
)
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True),
    default=72,
    show_default=True,
    help="hours the token stays usable (at most 720)",
)
@friendly_errors
@os_errors
def token_create(
    directory: Path, device_id: str, site: str, auto_approve: bool, hours: float
) -> None:
    """Create a one-time token for a terminal; print it once (only its hash is kept).

    Give it to whoever installs the terminal, which runs
    `lifecert-edge enrol --server URL --token TOKEN`. A new token for the same id
    replaces an unused one.

    \b
    Example:
        lifecert fleet token create --device-id term-0042 --site dongcheng-3 --dir fleet
    """
    made, record = claims.create_token(
        Fleet.open(directory), device_id, site, auto_approve=auto_approve, hours=hours
    )
    click.echo(str(made))
    policy = "auto-approved" if auto_approve else "waits for `lifecert fleet approve`"
    click.echo(
        f"token for {device_id} at {site}: single use, expires {record.expires_at:%Y-%m-%d %H:%M}"
        f" UTC; its certificate is {policy}",
        err=True,
    )


@_cmd("pending")
@fleet_dir
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def pending_cmd(directory: Path, as_json: bool) -> None:
    """List terminals' enrolment requests waiting for approval.

    \b
    Example:
        lifecert fleet pending --dir fleet
    """
    waiting = claims.pending(Fleet.open(directory))
    if as_json:
        fields = {"id", "device_id", "site", "peer", "submitted_at"}
        click.echo(json.dumps([r.model_dump(mode="json", include=fields) for r in waiting]))
        return
    if not waiting:
        click.echo("no pending enrolment requests")
    for r in waiting:
        click.echo(f"{r.id}  {r.device_id}  site {r.site}  from {r.peer or '?'}  {r.submitted_at}")


@_cmd("approve")
@fleet_dir
@click.argument("request_id")
def approve_cmd(directory: Path, request_id: str) -> None:
    """Approve a pending request: issue the certificate for the terminal's own key.

    \b
    Example:
        lifecert fleet approve 3f9a1c0b2d4e --dir fleet
    """
    record, told = claims.approve(Fleet.open(directory), request_id)
    click.echo(f"approved {record.id}: {record.device_id} enrolled at {record.site}")
    click.echo(f"  broker: {told}")


@_cmd("reject")
@fleet_dir
@click.argument("request_id")
@click.option("--reason", default="rejected by the operator", help="told to the terminal")
def reject_cmd(directory: Path, request_id: str, reason: str) -> None:
    """Reject a pending request (the token stays spent).

    \b
    Example:
        lifecert fleet reject 3f9a1c0b2d4e --reason "not ours" --dir fleet
    """
    record = claims.reject(Fleet.open(directory), request_id, reason)
    click.echo(f"rejected {record.id} ({record.device_id})")


@_cmd("enrol-server")
@fleet_dir
@click.option("--bind", default="0.0.0.0", show_default=True, help="listen address")
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True)
@click.option(
    "--name", "names", multiple=True, help="a host name terminals use for it (repeat; SAN)"
)
def enrol_server_cmd(directory: Path, bind: str, port: int, names: tuple[str, ...]) -> None:
    """Serve claim enrolment over HTTPS (server certificate from the fleet CA).

    \b
    Example:
        lifecert fleet enrol-server --dir fleet --port 8443 --name enrol.example.org
    """
    logging.getLogger().setLevel(logging.INFO)
    enrolserver.serve(Fleet.open(directory), bind, port, names)


@_cmd("renewal-service")
@fleet_dir
@click.option("--validate-config", is_flag=True, help="check the fleet's files, print OK, exit")
def renewal_service_cmd(directory: Path, validate_config: bool) -> None:
    """Answer terminals' certificate renewals over MQTT until SIGTERM (holds the CA key).

    Revokes each old certificate once the terminal confirms with its new one, and
    reloads the broker (see broker.pid_file / broker.reload_command).

    \b
    Example:
        lifecert fleet renewal-service --dir fleet
    """
    logging.getLogger().setLevel(logging.INFO)
    service = renewal.Service(Fleet.open(directory))
    if validate_config:
        click.echo(service.check())
        return

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        service.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.run()


COMMANDS: tuple[click.Command, ...] = (
    token,
    pending_cmd,
    approve_cmd,
    reject_cmd,
    enrol_server_cmd,
    renewal_service_cmd,
)
