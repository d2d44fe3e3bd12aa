"""Commands of central's store room: ``db``."""

import click

from central.cli.context import State
from central.store import db
from common.cli import friendly_errors


@click.group("db")
def db_group() -> None:
    """Database schema.

    \b
    Example:
        lifecert-central db upgrade
    """


@db_group.command()
@click.pass_obj
@friendly_errors
def upgrade(state: State) -> None:
    """Migrate the database to the newest schema (safe to repeat).

    \b
    Example:
        lifecert-central --config central.toml db upgrade
    """
    revision = db.upgrade(state.engine(migrated=False))
    click.echo(f"database at revision {revision}")


COMMANDS = (db_group,)
