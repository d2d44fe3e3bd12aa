"""``lifecert``: the operator's command line (a thin layer over :mod:`provisioning.fleet`).

Fleet commands live under ``lifecert fleet``; ``lifecert demo`` joins the same
top-level group.
"""

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import NoReturn

import click

from protocol import signing, software, topics
from provisioning import enrolcli, pki
from provisioning.brokerconf import BrokerOptions
from provisioning.cliutil import command as _command
from provisioning.cliutil import fleet_dir as _fleet_dir
from provisioning.cliutil import script_argv as _script
from provisioning.config import BrokerSettings
from provisioning.demo import demo
from provisioning.fleet import Fleet
from provisioning.receipts import verify_receipt_cmd

CRL_WARNING = dt.timedelta(days=14)


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
@click.option(
    "--site",
    default="default",
    show_default=True,
    help="the community centre where it stands (lowercase letters, digits, '-'); "
    "written into its certificate, so central knows it",
)
@click.option("--tar", "make_tar", is_flag=True, help="also write bundles/<id>.tar.gz")
def enrol_cmd(directory: Path, device_id: str, site: str, make_tar: bool) -> None:
    """Enrol a terminal: its key, certificate, broker password and a bundle to copy onto it.

    The running broker accepts the new login at once (else it is in the
    broker's file for its next start).

    \b
    Example:
        lifecert fleet enrol term-0001 --site dongcheng-3 --dir fleet --tar
        scp -r fleet/bundles/term-0001 pi@term-0001:/etc/lifecert
    """
    target = Fleet.open(directory)
    done = target.enrol(device_id, site)
    click.echo(f"enrolled {device_id} (serial {done.record.serial})")
    click.echo(f"  bundle: {done.bundle}")
    if make_tar:
        click.echo(f"  archive: {target.archive(device_id)}")
    click.echo(f"  broker: {done.broker}")


@_command(fleet, "reissue")
@_fleet_dir
@click.argument("device_ids", nargs=-1)
@click.option(
    "--missing", is_flag=True, help="every active terminal that has no broker password yet"
)
@click.option("--tar", "make_tar", is_flag=True, help="also write bundles/<id>.tar.gz")
def reissue_cmd(
    directory: Path, device_ids: tuple[str, ...], missing: bool, make_tar: bool
) -> None:
    """Re-issue terminals' bundles with a new broker password (same key and certificate).

    Copy the new mqtt.password and edge.toml onto the terminal; its old
    password stops working at once. Fleets made before broker passwords give
    every terminal one this way (--missing).

    \b
    Example:
        lifecert fleet reissue --missing --dir fleet --tar
        lifecert fleet reissue term-0001 --dir fleet
    """
    target = Fleet.open(directory)
    wanted = list(dict.fromkeys(device_ids))
    if missing:
        wanted += [
            d.id
            for d in target.devices()
            if d.status == "active" and d.broker_password is None and d.id not in wanted
        ]
    if not wanted:
        raise click.UsageError("name terminals to re-issue, or pass --missing")
    for device_id in wanted:
        done = target.reissue(device_id)
        click.echo(f"re-issued {device_id}: {done.bundle / 'mqtt.password'}, edge.toml")
        if make_tar:
            click.echo(f"  archive: {target.archive(device_id)}")
        click.echo(f"  broker: {done.broker}")


@_command(fleet, "revoke")
@_fleet_dir
@click.argument("device_id")
@click.option("--reason", default="", help="why (kept in registry.json)")
@click.option(
    "--reload/--no-reload",
    default=True,
    show_default=True,
    help="update the running broker: re-read the CRL, drop the terminal's logins and sessions",
)
def revoke_cmd(directory: Path, device_id: str, reason: str, reload: bool) -> None:
    """Revoke a terminal: registry and CRL; the broker drops its logins, connections and
    sessions and refuses its certificate.

    \b
    Example:
        lifecert fleet revoke term-0002 --dir fleet --reason "stolen"
    """
    target = Fleet.open(directory)
    record = target.revoke(device_id, reason)
    click.echo(f"revoked {record.id} (serial {record.serial}); CRL: {target.paths.crl}")
    if reload:
        click.echo(target.reload_broker())
        click.echo(target.remove_from_broker(device_id))


@_command(fleet, "crl")
@_fleet_dir
@click.option("--reload/--no-reload", default=True, show_default=True, help="reload the broker")
@click.option(
    "--renew-if-due",
    is_flag=True,
    help="only if nextUpdate is closer than pki.crl_renew_days (what the shipped "
    "lifecert-crl.timer runs daily)",
)
def crl_cmd(directory: Path, reload: bool, renew_if_due: bool) -> None:
    """Re-issue the CRL with a fresh nextUpdate and reload the broker.

    Once nextUpdate passes the broker refuses every terminal: systemd's
    lifecert-crl.timer runs this daily with --renew-if-due.

    \b
    Example:
        lifecert fleet crl --dir fleet
        lifecert fleet crl --renew-if-due --dir /var/lib/lifecert-fleet
    """
    target = Fleet.open(directory)
    if renew_if_due:
        why = target.crl_due()
        if why is None:
            current = pki.load_crl(target.paths.crl)
            click.echo(
                f"CRL {target.paths.crl}: next update {current.next_update_utc:%Y-%m-%d %H:%M} "
                "UTC, not due yet"
            )
            return
        click.echo(f"renewing the CRL: {why}")
    crl = target.refresh_crl()
    click.echo(f"CRL {target.paths.crl}: next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    if reload:
        click.echo(target.reload_broker())


@_command(fleet, "bundle-server-cert")
@_fleet_dir
def bundle_server_cert_cmd(directory: Path) -> None:
    """(Re-)issue central's HTTPS certificate for rollout bundles (central/bundles.pem).

    For the broker's host names; fleets made before rollouts have none.

    \b
    Example:
        lifecert fleet bundle-server-cert --dir fleet
    """
    click.echo(f"wrote {Fleet.open(directory).write_bundle_server_cert()}")


@_command(fleet, "software-bundle")
@click.argument("wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="New folder for the bundle."
)
@_fleet_dir
def software_bundle_cmd(wheel: Path, out: Path, directory: Path) -> None:
    """Sign the terminal software (the project's wheel) for a rollout.

    WHEEL is built with `pip wheel --no-deps --no-build-isolation -w dist .`; it is signed
    with the fleet's release key (models/sign.key), which terminals check it against.

    \b
    Example:
        lifecert fleet software-bundle dist/lifecert-0.2.0-py3-none-any.whl --out sw-0.2.0
    """
    key_path = Fleet.open(directory).paths.models / "sign.key"
    key = signing.load_private_key(key_path)
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    manifest = software.write_bundle(wheel, out, signer)
    click.echo(f"software {manifest.version} signed into {out}")
    click.echo(f"roll it out: lifecert-central fleet rollout create {out} --canary GROUP")


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
        records = [
            d.model_dump(mode="json", exclude={"broker_password"})
            | {"broker_login": d.broker_password is not None}
            for d in devices
        ]
        click.echo(json.dumps(records, indent=2))
        return
    rows = [("ID", "SITE", "STATUS", "SERIAL", "ENROLLED", "EXPIRES", "REVOKED", "REASON")]
    rows += [
        (
            d.id,
            d.site,
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
    click.echo(
        f"{len(devices)} device(s); CRL of {len(crl)} revoked certificate(s), "
        f"next update {crl.next_update_utc:%Y-%m-%d} UTC"
    )
    if lacking := [d.id for d in devices if d.status == "active" and d.broker_password is None]:
        click.echo(
            f"warning: {len(lacking)} active device(s) have no broker password and cannot "
            f"connect ({', '.join(lacking[:5])}{', ...' if len(lacking) > 5 else ''}): "
            f"run `lifecert fleet reissue --missing --dir {target.directory}`",
            err=True,
        )
    if crl.next_update_utc and crl.next_update_utc - dt.datetime.now(dt.UTC) < CRL_WARNING:
        click.echo(
            "warning: the CRL expires soon and then the broker refuses every terminal: "
            f"run `lifecert fleet crl --dir {target.directory}`",
            err=True,
        )


def _central_fleet(directory: Path, config: Path | None, args: list[str]) -> NoReturn:
    """Run ``lifecert-central fleet ARGS`` (it keeps the fleet's health) with ``config``, else
    the fleet's ``central/central.toml`` when there is one, else central's own default."""
    config = config or directory / "central" / "central.toml"
    argv = _script("lifecert-central")
    if config.is_file():
        argv += ["--config", str(config)]
    os.execv(argv[0], [*argv, "fleet", *args])


_CENTRAL_CONFIG = click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="central.toml (default: DIR/central/central.toml, else lifecert-central's default)",
)


@_command(fleet, "status")
@_fleet_dir
@_CENTRAL_CONFIG
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table")
def status_cmd(directory: Path, config: Path | None, as_json: bool) -> None:
    """Each terminal's health as central keeps it (``lifecert-central fleet status``).

    \b
    Example:
        lifecert fleet status --dir fleet --json
    """
    _central_fleet(directory, config, ["status", *(["--json"] if as_json else [])])


@_command(fleet, "alerts")
@_fleet_dir
@_CENTRAL_CONFIG
@click.option("--open", "open_only", is_flag=True, help="only alerts not cleared yet")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table")
def alerts_cmd(
    directory: Path, config: Path | None, open_only: bool, limit: int, as_json: bool
) -> None:
    """The fleet's alerts, newest first (``lifecert-central fleet alerts``).

    \b
    Example:
        lifecert fleet alerts --dir fleet --open
    """
    args = ["alerts", "--limit", str(limit)]
    args += ["--open"] * open_only + ["--json"] * as_json
    _central_fleet(directory, config, args)


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
@click.option(
    "--dynsec-plugin",
    type=click.Path(dir_okay=False, path_type=Path),
    help="path of mosquitto_dynamic_security.so on the broker [found on this machine]",
)
def broker_config_cmd(
    *,
    directory: Path,
    port: int | None,
    bind: str | None,
    persistence_dir: Path | None,
    user: str | None,
    max_queued_bytes: int,
    dynsec_plugin: Path | None,
) -> None:
    """Write broker/mosquitto.conf and broker/dynamic-security.json (TLS, client certs, CRL,
    logins bound to client ids, topic rights, queues). Restart the broker to load them.

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
        dynsec_plugin=dynsec_plugin,
    )
    conf = target.write_broker_config(options)
    click.echo(f"wrote {conf} and {target.paths.dynsec}")
    if target.central_config_lacks_password():
        click.echo(
            f"note: {target.paths.central / 'central.toml'} has no [mqtt] password_file: add "
            f'password_file = "{target.paths.central_password}" to the [mqtt] table of '
            "central's config, or central cannot log in",
            err=True,
        )


@_command(fleet, "purge-sessions")
@_fleet_dir
@click.argument("client_ids", nargs=-1)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="with the broker stopped: delete its persistence file (every session, queued and "
    "retained message)",
)
def purge_sessions_cmd(directory: Path, client_ids: tuple[str, ...], everything: bool) -> None:
    """End the running broker's sessions for these client ids, or, with --all and the
    broker stopped, every session.

    Sessions made before broker logins existed (any client id, any
    subscription) are ended with --all: terminals re-send unacked results and
    central re-acks them, so nothing that matters is lost.

    \b
    Example:
        lifecert fleet purge-sessions term-0002 --dir fleet
        lifecert fleet purge-sessions --all --dir fleet     # broker stopped
    """
    target = Fleet.open(directory)
    if everything:
        if client_ids:
            raise click.UsageError("--all takes no client ids")
        gone = target.purge_persistence()
        click.echo(f"removed {gone}" if gone else "no persistence file: nothing to purge")
        return
    if not client_ids:
        raise click.UsageError("name client ids to purge, or pass --all with the broker stopped")
    for client_id, present in target.purge_sessions(dict.fromkeys(client_ids)).items():
        click.echo(f"{client_id}: {'session purged' if present else 'no session'}")


for _cmd in enrolcli.COMMANDS:
    fleet.add_command(_cmd)
main.add_command(demo)
main.add_command(verify_receipt_cmd)
