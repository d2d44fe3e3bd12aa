"""The ``fleet`` command group, assembled from ``fleet_health`` (status, alerts, ack),
``fleet_rollout`` (groups, desired config, signed commands, rollouts) and ``fleet_audit``."""

import click

from central.cli.fleet_audit import COMMANDS as AUDIT
from central.cli.fleet_health import COMMANDS as HEALTH
from central.cli.fleet_rollout import COMMANDS as ROLLOUT


@click.group("fleet")
def fleet() -> None:
    """Fleet operations: terminals' health and alerts, desired config, signed commands,
    rollouts of model bundles.

    \b
    Example:
        lifecert-central fleet status
        lifecert-central fleet config set site:north log_level=DEBUG
    """


for command in (*HEALTH, *ROLLOUT, *AUDIT):
    fleet.add_command(command)

COMMANDS = (fleet,)
