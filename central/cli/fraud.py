"""Commands of central's fraud room: ``duplicates``, ``flags``."""

import time

import click

from central.cli.context import State
from central.cli.output import emit
from central.fraud import cipher, duplicates, flags
from common.cli import friendly_errors
from common.errors import LifecertError


@click.group("duplicates")
def duplicates_group() -> None:
    """1:N face search: the same face certified under two identities.

    \b
    Example:
        lifecert-central duplicates scan --watch 60
    """


@duplicates_group.command("init-key")
@click.pass_obj
@friendly_errors
def duplicates_init_key(state: State) -> None:
    """Create the AES-256 key that encrypts stored templates ([duplicates] key_file).

    \b
    Example:
        lifecert-central --config central.toml duplicates init-key
    """
    path = state.cfg.duplicates.key_file
    if path.exists():
        raise LifecertError(f"{path} exists: keep it (stored templates need it)")
    click.echo(f"wrote {cipher.write_key(path)}")


@duplicates_group.command("scan")
@click.option("--watch", type=click.FloatRange(1), help="Keep scanning every N seconds.")
@click.pass_obj
@friendly_errors
def duplicates_scan(state: State, watch: float | None) -> None:
    """Search every new sealed template against all stored ones; flag duplicates.

    \b
    Example:
        lifecert-central duplicates scan
    """
    cfg = state.cfg
    engine = state.engine()
    key = cipher.TemplateCipher.from_file(cfg.duplicates.key_file)
    index = duplicates.FaceIndex.load(engine, key)
    click.echo(f"{len(index)} stored template(s) loaded")
    while True:
        done = duplicates.scan(engine, index, key, state.central.seal_key, cfg.duplicates.distance)
        if done.indexed or done.problems or not watch:
            click.echo(
                f"{done.indexed} indexed, {done.problems} unreadable, {len(done.flags)} flagged"
            )
        if not watch:
            return
        time.sleep(watch)


@click.group("flags")
def flags_group() -> None:
    """Fraud flags (duplicate faces, passes for deceased retirees).

    \b
    Example:
        lifecert-central flags list --kind duplicate_face
    """


@flags_group.command("list")
@click.option("--kind", help="Only this kind (duplicate_face, pass_while_deceased, ...).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def flags_list(state: State, kind: str | None, limit: int, as_json: bool) -> None:
    """List fraud flags, newest first.

    \b
    Example:
        lifecert-central flags list --json
    """
    rows = flags.list_flags(state.engine(), kind, limit)
    emit(rows, as_json, ["id", "created_at", "kind", "retiree_id", "other_retiree_id", "score"])


COMMANDS = (
    duplicates_group,
    flags_group,
)
