"""Commands of central's console room: ``console`` serves the staff console."""

import click

from central.cli.context import State
from central.console import app, server
from central.console.readonly import reader
from common.cli import friendly_errors


@click.command("console")
@click.option("--print-url", is_flag=True, help="Print the URL the console serves, then exit.")
@click.pass_obj
@friendly_errors
def console_cmd(state: State, print_url: bool) -> None:
    """Serve the staff console (HTTPS, staff client certificates only) from [console].

    \b
    Example:
        lifecert-central console --print-url
        lifecert-central console
    """
    settings = state.cfg.console
    if print_url:
        click.echo(server.url(settings))
        return
    context = server.tls_context(settings, state.cfg.staff)  # files first: a bad one = exit 2
    engine = state.engine()
    console = app.build(
        engine,
        reader(state.cfg.database),
        settings,
        state.cfg.policy,
        state.cfg.staff,
        state.cfg.proposals,
        state.central,
        state.cfg.alerts.silent_after_s,
        (state.cfg.fleet.devices_dir, state.cfg.fleet.crl_file),
    )
    served = server.server(console, settings, context)
    click.echo(f"console at {server.url(settings)}", err=True)
    served.run()


COMMANDS = (console_cmd,)
