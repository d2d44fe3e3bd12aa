"""``lifecert``: the operator's command line (a thin layer over :mod:`provisioning.fleet`).

Fleet commands live under ``lifecert fleet``; ``lifecert demo`` joins the same
top-level group.
"""

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from protocol import topics
from protocol.cli import friendly_errors
from provisioning import pki
from provisioning.brokerconf import BrokerOptions
from provisioning.config import BrokerSettings
from provisioning.demo import demo
from provisioning.errors import ProvisioningError
from provisioning.fleet import Fleet

F = TypeVar("F", bound=Callable[..., Any])

DIR_HELP = "fleet directory (env LIFECERT_FLEET_DIR)"
CRL_WARNING = dt.timedelta(days=14)


def _fleet_dir(func: F) -> F:
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("fleet"),
        envvar="LIFECERT_FLEET_DIR",
        show_default=True,
        help=DIR_HELP,
    )(func)


def _os_errors(func: F) -> F:
    """File-system failures become one clear line (via ``friendly_errors``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            raise ProvisioningError(
                f"{exc.strerror or exc} ({exc.filename or 'file system'}): "
                "check the path and its permissions"
            ) from None

    return wrapper  # type: ignore[return-value]


def _command(group: click.Group, name: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return group.command(name)(friendly_errors(_os_errors(func)))  # type: ignore[return-value]

    return decorate


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="log what is done")
def main(verbose: bool) -> None:
    """lifecert: pension proof-of-life certification.

    \b
    Example:
        lifecert fleet init --dir fleet --name city --broker-host mqtt.example.org
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@main.group()
def fleet() -> None:
    """Fleet operations: CA, enrolment bundles, broker config, revocation.

    \b
    Example:
        lifecert fleet enrol term-0001 --dir fleet
    """


@_command(fleet, "init")
@_fleet_dir
@click.option("--name", required=True, help="fleet name (goes into the CA's name)")
@click.option(
    "--broker-host",
    default=BrokerSettings.model_fields["host"].default,
    show_default=True,
    help="host name or IP terminals and central connect to",
)
@click.option(
    "--broker-port",
    type=click.IntRange(1, 65535),
    default=BrokerSettings.model_fields["port"].default,
    show_default=True,
    help="broker TLS port",
)
@click.option(
    "--extra-host", "extra_hosts", multiple=True, help="another name for the broker cert (repeat)"
)
@click.option("--root", default=topics.ROOT, show_default=True, help="MQTT topic root")
def init_cmd(
    *,
    directory: Path,
    name: str,
    broker_host: str,
    broker_port: int,
    extra_hosts: tuple[str, ...],
    root: str,
) -> None:
    """Create a fleet: CA, empty CRL, central's keys and certificate, broker certificate.

    \b
    Example:
        lifecert fleet init --dir fleet --name city --broker-host mqtt.example.org
    """
    made = Fleet.create(
        directory,
        name,
        broker_host=broker_host,
        broker_port=broker_port,
        extra_hosts=extra_hosts,
        root=root,
    )
    click.echo(f"fleet {name!r} created in {made.directory}")
    click.echo(f"  central config: {made.paths.central / 'central.toml'}")
    click.echo(f"  broker config:  {made.paths.broker / 'mosquitto.conf'}")


@_command(fleet, "enrol")
@_fleet_dir
@click.argument("device_id")
@click.option("--tar", "make_tar", is_flag=True, help="also write bundles/<id>.tar.gz")
def enrol_cmd(directory: Path, device_id: str, make_tar: bool) -> None:
    """Enrol a terminal: its key, certificate and a bundle to copy onto it.

    \b
    Example:
        lifecert fleet enrol term-0001 --dir fleet --tar
        scp -r fleet/bundles/term-0001 pi@term-0001:/etc/lifecert
    """
    target = Fleet.open(directory)
    done = target.enrol(device_id)
    click.echo(f"enrolled {device_id} (serial {done.record.serial})")
    click.echo(f"  bundle: {done.bundle}")
    if make_tar:
        click.echo(f"  archive: {target.archive(device_id)}")


@_command(fleet, "revoke")
@_fleet_dir
@click.argument("device_id")
@click.option("--reason", default="", help="why (kept in registry.json)")
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="make the running broker re-read CRL and ACL",
)
def revoke_cmd(directory: Path, device_id: str, reason: str, reload: bool) -> None:
    """Revoke a terminal: registry, CRL and ACL; the broker then refuses it.

    \b
    Example:
        lifecert fleet revoke term-0002 --dir fleet --reason "stolen"
    """
    target = Fleet.open(directory)
    record = target.revoke(device_id, reason)
    click.echo(f"revoked {record.id} (serial {record.serial}); CRL: {target.paths.crl}")
    if reload:
        click.echo(target.reload_broker())


@_command(fleet, "crl")
@_fleet_dir
@click.option("--reload/--no-reload", default=True, show_default=True, help="reload the broker")
def crl_cmd(directory: Path, reload: bool) -> None:
    """Re-issue the CRL with a fresh nextUpdate (run it monthly, e.g. from cron).

    \b
    Example:
        lifecert fleet crl --dir fleet
    """
    target = Fleet.open(directory)
    crl = target.refresh_crl()
    click.echo(f"CRL {target.paths.crl}: next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    if reload:
        click.echo(target.reload_broker())


@_command(fleet, "list")
@_fleet_dir
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_cmd(directory: Path, as_json: bool) -> None:
    """List enrolled terminals and their status.

    \b
    Example:
        lifecert fleet list --dir fleet --json
    """
    target = Fleet.open(directory)
    devices = target.devices()
    if as_json:
        click.echo(json.dumps([d.model_dump(mode="json") for d in devices], indent=2))
        return
    rows = [("ID", "STATUS", "SERIAL", "ENROLLED", "EXPIRES", "REVOKED", "REASON")]
    rows += [
        (
            d.id,
            d.status,
            d.serial[:16],
            f"{d.enrolled_at:%Y-%m-%d}",
            f"{d.not_after:%Y-%m-%d}",
            f"{d.revoked_at:%Y-%m-%d}" if d.revoked_at else "-",
            d.reason or "-",
        )
        for d in devices
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    crl = pki.load_crl(target.paths.crl)
    click.echo(f"{len(devices)} device(s); CRL next update {crl.next_update_utc:%Y-%m-%d} UTC")
    if crl.next_update_utc and crl.next_update_utc - dt.datetime.now(dt.UTC) < CRL_WARNING:
        click.echo(
            "warning: the CRL expires soon and then the broker refuses every terminal: "
            f"run `lifecert fleet crl --dir {target.directory}`",
            err=True,
        )


@_command(fleet, "broker-config")
@_fleet_dir
@click.option("--port", type=click.IntRange(1, 65535), help="listener port [fleet.toml]")
@click.option("--bind", default=None, help="listen address (default: all interfaces)")
@click.option(
    "--persistence-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Mosquitto persistence folder [broker/data]",
)
@click.option("--user", default=None, help="user Mosquitto runs as [current user]")
@click.option(
    "--max-queued-bytes",
    type=click.IntRange(min=0),
    default=BrokerOptions.max_queued_bytes,
    show_default=True,
    help="per-client queue cap in bytes (0 = none)",
)
def broker_config_cmd(
    *,
    directory: Path,
    port: int | None,
    bind: str | None,
    persistence_dir: Path | None,
    user: str | None,
    max_queued_bytes: int,
) -> None:
    """Write broker/mosquitto.conf and broker/acl (TLS, client certs, CRL, ACL, queues).

    \b
    Example:
        lifecert fleet broker-config --dir fleet --port 8883 --persistence-dir /var/lib/mosquitto
        mosquitto -c fleet/broker/mosquitto.conf
    """
    target = Fleet.open(directory)
    options = BrokerOptions(
        port=port or target.settings.broker.port,
        bind=bind,
        persistence_dir=persistence_dir.resolve() if persistence_dir else None,
        user=user,
        max_queued_bytes=max_queued_bytes,
    )
    conf = target.write_broker_config(options)
    click.echo(f"wrote {conf} and {target.paths.broker / 'acl'}")


main.add_command(demo)
