"""Errors raised by provisioning."""

from common.errors import LifecertError


class ProvisioningError(LifecertError, ValueError):
    """A fleet operation cannot be done as asked; the message says why and what to do."""


class BrokerError(LifecertError, RuntimeError):
    """The Mosquitto process did not start, stop or restart as expected."""
