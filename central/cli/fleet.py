"""The ``fleet`` command group, assembled from ``fleet_health`` (status, alerts, ack)
and ``fleet_rollout`` (groups, desired config, signed commands, rollouts)."""

import click

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


for command in (*HEALTH, *ROLLOUT):
    fleet.add_command(command)

COMMANDS = (fleet,)
