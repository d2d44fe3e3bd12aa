"""Every MQTT topic lifecert uses, built in one place.

Layout (``root`` defaults to ``lifecert/v1``)::

    <root>/dev/<device_id>/result      device -> central, QoS 1
    <root>/dev/<device_id>/ack         central -> device, QoS 1
    <root>/dev/<device_id>/status      retained online / offline / stopped
    <root>/dev/<device_id>/telemetry   health metrics, QoS 0
    <root>/dev/<device_id>/config      retained desired config
    <root>/dev/<device_id>/cmd         signed commands to the device, QoS 1
    <root>/dev/<device_id>/cmdack      the device's signed answers to commands, QoS 1
    <root>/dev/<device_id>/reported    retained: what the device runs (signed)
    <root>/dev/<device_id>/req         device requests to central (MQTT 5 response topic)
    <root>/dev/<device_id>/resp        central's replies to the device
    <root>/dev/<device_id>/csr         certificate renewal requests -> the renewal service
    <root>/dev/<device_id>/cert        the renewal service's replies (new certificates)
"""

import re
from typing import Final, Literal, get_args

ROOT: Final = "lifecert/v1"
SHARE_GROUP: Final = "central"

Kind = Literal[
    "result",
    "ack",
    "status",
    "telemetry",
    "config",
    "cmd",
    "cmdack",
    "reported",
    "req",
    "resp",
    "csr",
    "cert",
]
KINDS: Final[tuple[str, ...]] = get_args(Kind)
DEVICE_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
SITE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEFAULT_SITE: Final = "default"
"""A terminal's site (the community centre where it stands) when none was given."""

STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"
STATUS_STOPPED: Final = "stopped"


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is safe as a topic level and certificate CN, else raise."""
    if not DEVICE_ID_RE.match(device_id):
        raise ValueError(
            f"invalid device_id {device_id!r}: use 3-63 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return device_id


def check_site(site: str) -> str:
    """Return ``site`` if it is a valid site name, else raise ``ValueError``."""
    if not SITE_RE.match(site):
        raise ValueError(
            f"invalid site {site!r}: use 1-63 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return site


def device_topic(device_id: str, kind: Kind, root: str = ROOT) -> str:
    """``<root>/dev/<device_id>/<kind>``."""
    return f"{root}/dev/{check_device_id(device_id)}/{kind}"


def all_devices(kind: Kind, root: str = ROOT) -> str:
    """Wildcard over every device for one kind, e.g. ``lifecert/v1/dev/+/status``."""
    return f"{root}/dev/+/{kind}"


def shared_results(group: str = SHARE_GROUP, root: str = ROOT) -> str:
    """The shared subscription central consumers use to split the result load."""
    return f"$share/{group}/{all_devices('result', root)}"


def shared_requests(group: str = SHARE_GROUP, root: str = ROOT) -> str:
    """The shared subscription central uses for device requests."""
    return f"$share/{group}/{all_devices('req', root)}"


def parse(topic: str, root: str = ROOT) -> tuple[str, str]:
    """Split a device topic into ``(device_id, kind)``; ``ValueError`` if it is not one."""
    prefix = f"{root}/dev/"
    if not topic.startswith(prefix):
        raise ValueError(f"topic {topic!r} is not under {prefix!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in KINDS:
        raise ValueError(f"topic {topic!r} is not <root>/dev/<device_id>/<kind>")
    return check_device_id(parts[0]), parts[1]
