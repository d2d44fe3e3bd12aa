"""The wire contract shared by edge, central and provisioning.

Topics, message schemas, JWS signing and verification, template sealing,
plus the small pieces every service shares (errors, config loading, logs).
"""

from protocol.errors import LifecertError

SCHEMA_VERSION = 1

__all__ = ["SCHEMA_VERSION", "LifecertError"]
