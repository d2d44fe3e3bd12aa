"""The ``fleet`` command group, assembled from ``fleet_health`` (status, alerts, ack)
and ``fleet_rollout`` (groups, desired config, signed commands, rollouts)."""

import click

from central.cli import fleet_health, fleet_rollout


@click.group("fleet")
def fleet() -> None:
    """Fleet operations: terminals' health and alerts, desired config, signed commands,
    rollouts of model bundles.

    \b
    Examples:
        lifecert-central fleet status
        lifecert-central fleet config set site:north log_level=DEBUG
    """


for command in (*fleet_health.COMMANDS, *fleet_rollout.COMMANDS):
    fleet.add_command(command)

COMMANDS = (fleet,)
