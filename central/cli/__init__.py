"""``lifecert-central``: a thin click layer over central's Python API.

The root command (``--config``, ``--validate-config``) is here; the commands are in one
module per room of central (``certification``, ``store``, ``people``, ``payments``,
``fraud``), each listing its own in ``COMMANDS``, assembled below.
"""

from pathlib import Path

import click

from central import config
from central.cli import (
    assisted,
    audit,
    certification,
    console,
    fleet,
    fraud,
    notify,
    payments,
    people,
    policy,
    proposals,
    receipts,
    reminders,
    staff,
    store,
)
from central.cli.context import State
from common.cli import friendly_errors


@click.group(invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LIFECERT_CENTRAL_CONFIG",
    default=config.DEFAULT_PATH,
    show_default=True,
    help="central.toml (or $LIFECERT_CENTRAL_CONFIG).",
)
@click.option(
    "--validate-config", is_flag=True, help="Check the config and the files it names, then exit."
)
@click.option(
    "--staff-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LIFECERT_STAFF_CERT",
    help="Your staff certificate (PEM) to act signed in (or $LIFECERT_STAFF_CERT).",
)
@click.option(
    "--staff-key",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LIFECERT_STAFF_KEY",
    help="The private key of --staff-cert (PEM) (or $LIFECERT_STAFF_KEY).",
)
@click.pass_context
@friendly_errors
def main(
    ctx: click.Context,
    config_path: Path,
    validate_config: bool,
    staff_cert: Path | None,
    staff_key: Path | None,
) -> None:
    """Central service: consume signed results, keep retirees' certification.

    Commands that change data act as the staff member whose certificate and key
    are given (--staff-cert/--staff-key).

    \b
    Example:
        lifecert-central --config fleet/central/central.toml --validate-config
        lifecert-central --staff-cert me.pem --staff-key me.key staff list
    """
    ctx.obj = State(config_path, staff_cert, staff_key)
    if validate_config:
        ctx.obj.central.check()
        click.echo(f"{config_path}: OK")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for command in (
    *certification.COMMANDS,
    *store.COMMANDS,
    *people.COMMANDS,
    *payments.COMMANDS,
    *fraud.COMMANDS,
    *console.COMMANDS,
    *staff.COMMANDS,
    *audit.COMMANDS,
    *proposals.COMMANDS,
    *policy.COMMANDS,
    *assisted.COMMANDS,
    *fleet.COMMANDS,
    *notify.COMMANDS,
    *reminders.COMMANDS,
    *receipts.COMMANDS,
):
    main.add_command(command)
