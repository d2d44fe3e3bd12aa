"""Commands of central's fleet room for desired config, commands and rollouts:
``fleet group``, ``fleet config``, ``fleet cmd``, ``fleet rollout``.

They write to the database; the running service (``lifecert-central run``) publishes
configs and commands within ``[rollout] publish_interval_s`` and serves the bundles.
"""

import datetime as dt
from pathlib import Path

import click

from central.cli.context import State
from central.cli.output import emit
from central.fleet import commands, desired, rollouts
from central.fleet.commands_link import members
from central.fleet.rollouts_server import base_url
from common.cli import friendly_errors
from common.errors import LifecertError
from protocol import fleet as wire
from protocol import topics


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _device(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    try:
        return [topics.check_device_id(v) for v in value]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _refresh(state: State) -> list[str]:
    central = state.central
    return desired.refresh(state.engine(), members(central.trust), central.signer, _now())


@click.group("group")
def group() -> None:
    """Named groups of terminals (targets of config and rollout canaries).

    \b
    Example:
        lifecert-central fleet group add canary term-0001 term-0002
    """


@group.command("add")
@click.argument("name")
@click.argument("devices", nargs=-1, required=True, callback=_device)
@click.pass_obj
@friendly_errors
def group_add(state: State, name: str, devices: list[str]) -> None:
    """Put terminals into group NAME (made on first use).

    \b
    Example:
        lifecert-central fleet group add canary term-0001 term-0002
    """
    desired.add_to_group(state.engine(), name, devices)
    changed = _refresh(state)
    click.echo(f"group {name}: added {len(devices)}; new desired config for {len(changed)}")


@group.command("remove")
@click.argument("name")
@click.argument("devices", nargs=-1, required=True, callback=_device)
@click.pass_obj
@friendly_errors
def group_remove(state: State, name: str, devices: list[str]) -> None:
    """Take terminals out of group NAME.

    \b
    Example:
        lifecert-central fleet group remove canary term-0002
    """
    desired.remove_from_group(state.engine(), name, devices)
    changed = _refresh(state)
    click.echo(f"group {name}: removed {len(devices)}; new desired config for {len(changed)}")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def group_list(state: State, as_json: bool) -> None:
    """Every group with its terminals.

    \b
    Example:
        lifecert-central fleet group list
    """
    emit(desired.group_listing(state.engine()), as_json, ["group", "count", "devices"])


@click.group("config")
def config() -> None:
    """Desired config of terminals (like a device shadow), signed and published retained.

    \b
    Example:
        lifecert-central fleet config show
    """


@config.command("set")
@click.argument("target")
@click.argument("settings", nargs=-1)
@click.option("--unset", "unset", multiple=True, help="A setting to remove from TARGET.")
@click.pass_obj
@friendly_errors
def config_set(
    state: State, target: str, settings: tuple[str, ...], unset: tuple[str, ...]
) -> None:
    """Set settings (name=value) for TARGET: device:<id>, site:<site> or group:<name>.

    The terminals check the settings against their own schema and report what they run
    (``config show``); a refused setting shows there with the terminal's reason.

    \b
    Example:
        lifecert-central fleet config set group:canary link.telemetry_interval_s=30
    """
    if not settings and not unset:
        raise LifecertError("give settings as name=value, or --unset NAME")
    values = dict(desired.parse_setting(s) for s in settings)
    now_settings = desired.set_config(state.engine(), target, values, list(unset), _now())
    changed = _refresh(state)
    click.echo(f"{target}: {now_settings}; new desired config for {len(changed)} terminal(s)")


@config.command("show")
@click.option("--device", "device_ids", multiple=True, callback=_device, help="Only this one.")
@click.option("--targets", is_flag=True, help="The settings per target, before merging.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def config_show(state: State, device_ids: list[str], targets: bool, as_json: bool) -> None:
    """Desired against reported config per terminal (state: in sync, pending or drift).

    \b
    Example:
        lifecert-central fleet config show --device term-0001
    """
    engine = state.engine()
    if targets:
        emit(desired.target_settings(engine), as_json, ["target", "settings"])
        return
    who = [m for m in members(state.central.trust) if not device_ids or m.device_id in device_ids]
    after = dt.timedelta(seconds=state.cfg.rollout.drift_after_s)
    rows = desired.state(engine, who, _now(), after)
    columns = ["device_id", "site", "desired_version", "reported_version", "state", "refused"]
    emit(rows, as_json, columns + (["desired", "model_version"] if device_ids else []))


@click.group("cmd")
def cmd() -> None:
    """Signed remote commands and the terminals' signed acks.

    \b
    Example:
        lifecert-central fleet cmd list --device term-0001
    """


@cmd.command("send")
@click.argument("action", type=click.Choice([a.value for a in commands.OPERATOR_ACTIONS]))
@click.argument("devices", nargs=-1, required=True, callback=_device)
@click.option("--ttl", type=click.IntRange(1, 7 * 86400), help="Seconds it stays valid.")
@click.pass_obj
@friendly_errors
def cmd_send(state: State, action: str, devices: list[str], ttl: int | None) -> None:
    """Send ACTION (restart, self_test, resync_templates, renew_certificate) to terminals.

    \b
    Example:
        lifecert-central fleet cmd send self_test term-0001 term-0002
    """
    central, engine = state.central, state.engine()
    unknown = [d for d in devices if not central.trust.is_enrolled(d)]
    if unknown:
        raise LifecertError(f"not enrolled: {', '.join(unknown)} (see `lifecert fleet list`)")
    life = dt.timedelta(seconds=ttl or state.cfg.rollout.command_ttl_s)
    for device_id in devices:
        command_id = commands.send(
            engine, central.signer, device_id, wire.Action(action), _now(), life
        )
        click.echo(f"{command_id}  {device_id}  {action}  queued")


@cmd.command("list")
@click.option("--device", "device_id", help="Only this terminal's commands.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def cmd_list(state: State, device_id: str | None, limit: int, as_json: bool) -> None:
    """The newest commands with the terminals' answers (done, failed, refused).

    \b
    Example:
        lifecert-central fleet cmd list --device term-0001 --limit 10
    """
    try:
        rows = commands.listing(state.engine(), device_id, limit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    columns = ["command_id", "device_id", "action", "status", "detail", "issued_at", "acked_at"]
    emit(rows, as_json, columns)


@click.group("rollout")
def rollout() -> None:
    """Rollouts of a signed model or software bundle in waves (canary, percentages, all).

    \b
    Example:
        lifecert-central fleet rollout status
    """


@rollout.command("create")
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--canary", help="Group whose terminals form the first wave.")
@click.option("--group", "only_group", help="Roll out to this group only (default: all).")
@click.option(
    "--wave", "percents", type=int, multiple=True, help="Cumulative % of the rest, e.g. 25."
)
@click.option(
    "--max-failure-rate",
    type=float,
    default=0.2,
    show_default=True,
    help="A wave with more failures than this fraction halts the rollout.",
)
@click.option(
    "--auto", is_flag=True, help="Start each later wave as soon as the one before answered."
)
@click.pass_obj
@friendly_errors
def rollout_create(
    state: State,
    bundle: Path,
    canary: str | None,
    only_group: str | None,
    percents: tuple[int, ...],
    max_failure_rate: float,
    auto: bool,
) -> None:
    """Check the signed bundle in BUNDLE and plan its rollout (nothing is sent yet).

    BUNDLE is a model bundle or a software bundle (`lifecert fleet software-bundle`); the
    rollout's kind follows from its manifest.

    \b
    Example:
        lifecert-central fleet rollout create var/models --canary canary --wave 25 --wave 100
        lifecert-central fleet rollout create dist/sw-0.2.0 --canary canary --auto
    """
    central, engine, s = state.central, state.engine(), state.cfg.rollout
    first: list[str] = []
    only: list[str] | None = None
    with engine.connect() as conn:
        if canary:
            first = desired.group_members(conn, desired.check_group(canary))
        if only_group:
            only = desired.group_members(conn, desired.check_group(only_group))
    rollout_id = rollouts.create(
        engine,
        members(central.trust),
        bundle,
        s.model_sign_pub,
        s.store_dir,
        canary=first,
        percents=list(percents),
        max_failure_rate=max_failure_rate,
        max_bytes=s.max_bundle_bytes,
        now=_now(),
        only=only,
        auto=auto,
    )
    (row,) = rollouts.status(engine, rollout_id)
    waves = ", ".join(f"{w['wave']} ({w.get('pending', 0)})" for w in row["waves"])
    click.echo(f"{rollout_id}: {row['kind']} {row['version']}, {row['size']} bytes; waves {waves}")
    click.echo(f"start it: lifecert-central fleet rollout advance {rollout_id}")


@rollout.command("advance")
@click.argument("rollout_id")
@click.pass_obj
@friendly_errors
def rollout_advance(state: State, rollout_id: str) -> None:
    """Start the next wave (when the current one has answered and did not halt).

    \b
    Example:
        lifecert-central fleet rollout advance r20261206-1a2b3c
    """
    s = state.cfg.rollout
    if not s.bundle_port and not s.bundle_url:
        raise LifecertError("[rollout] bundle_port is 0: the bundle server is off; set it")
    wave = rollouts.advance(
        state.engine(),
        state.central.signer,
        rollout_id,
        base_url(s),
        dt.timedelta(seconds=s.update_ttl_s),
        _now(),
    )
    (row,) = rollouts.status(state.engine(), rollout_id)
    click.echo(f"{rollout_id}: wave {row['waves'][wave]['wave']} offered")


@rollout.command("status")
@click.argument("rollout_id", required=False)
@click.option("--devices", is_flag=True, help="Each terminal's state in the rollout.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def rollout_status(state: State, rollout_id: str | None, devices: bool, as_json: bool) -> None:
    """Rollouts with their waves' counts (pending, offered, succeeded, failed; after
    `abort --revert`: reverting, reverted, revert-failed).

    \b
    Example:
        lifecert-central fleet rollout status r20261206-1a2b3c --devices
    """
    engine = state.engine()
    if devices:
        if rollout_id is None:
            raise click.UsageError("--devices needs a ROLLOUT_ID")
        emit(
            rollouts.devices(engine, rollout_id), as_json, ["device_id", "wave", "state", "detail"]
        )
        return
    rows = rollouts.status(engine, rollout_id)
    for row in rows:
        row["waves"] = (
            "; ".join(
                f"{w['wave']}: " + " ".join(f"{k}={v}" for k, v in w.items() if k != "wave")
                for w in row["waves"]
            )
            if not as_json
            else row["waves"]
        )
    emit(rows, as_json, ["rollout_id", "kind", "version", "state", "wave", "waves", "detail"])


@rollout.command("abort")
@click.argument("rollout_id")
@click.option(
    "--revert",
    is_flag=True,
    help="Also switch the terminals that took the release back to the one they ran before "
    "(any rollout, even a done or aborted one; again: retries the failed reverts).",
)
@click.pass_obj
@friendly_errors
def rollout_abort(state: State, rollout_id: str, revert: bool) -> None:
    """Stop a rollout: no further wave; offers not sent yet are withdrawn.

    \b
    Example:
        lifecert-central fleet rollout abort r20261206-1a2b3c
        lifecert-central fleet rollout abort r20261206-1a2b3c --revert
    """
    if not revert:
        rollouts.abort(state.engine(), rollout_id, _now())
        click.echo(f"{rollout_id}: aborted")
        return
    ttl = dt.timedelta(seconds=state.cfg.rollout.update_ttl_s)
    counts = rollouts.revert(state.engine(), state.central.signer, rollout_id, ttl, _now())
    click.echo(
        f"{rollout_id}: aborted; {counts['queued']} terminal(s) asked to switch back"
        + (
            f", {counts['impossible']} with no release from before to go back to"
            if counts["impossible"]
            else ""
        )
    )
    click.echo(f"follow it: lifecert-central fleet rollout status {rollout_id} --devices")


COMMANDS = (group, config, cmd, rollout)
