"""``lifecert-central``: a thin click layer over central's Python API.

The root command (``--config``, ``--validate-config``) is here; the commands are in one
module per room of central (``certification``, ``store``, ``people``, ``payments``,
``fraud``), each listing its own in ``COMMANDS``, assembled below.
"""

from pathlib import Path

import click

from central import config
from central.cli import certification, fraud, notify, payments, people, store
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
@click.pass_context
@friendly_errors
def main(ctx: click.Context, config_path: Path, validate_config: bool) -> None:
    """Central service: consume signed results, keep retirees' certification.

    \b
    Example:
        lifecert-central --config fleet/central/central.toml --validate-config
    """
    ctx.obj = State(config_path)
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
    *notify.COMMANDS,
):
    main.add_command(command)
