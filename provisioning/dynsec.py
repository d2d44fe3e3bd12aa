"""Broker logins and topic rights for Mosquitto's dynamic-security plugin.

Every client shows a fleet certificate (mutual TLS, checked against the CRL)
*and* logs in with a username and password that the plugin checks. A device's
login is bound to one client id, so a terminal's key and password connect only
as itself, once (its one connection carries results, requests, status and
telemetry):

=====================  ======================  ==========================  ====================
username               client id               password                    role
=====================  ======================  ==========================  ====================
``<id>``               ``<id>`` (bound)        the bundle's mqtt.password  ``device-<id>``
``lifecert-central``   any (consumers 1..n)    central/mqtt.password       ``central``
``lifecert-admin``     any (it purges          broker/admin.password       ``admin``
                       sessions by taking
                       over their client id)
``lifecert-renewal``   any                     broker/renewal.password     ``renewal``
=====================  ======================  ==========================  ====================

``renewal`` (the certificate renewal service, which holds the CA key) reads every
device's ``csr`` topic and writes its ``cert`` topic, nothing else.

Terminals used to log in a second time as ``<id>.templates`` (:func:`legacy_login`); no
fleet gets that login any more, but deleting a device still deletes it and ends its
session, for brokers an upgrade left it on.

The plugin does not compare the certificate's CN with the username: the
certificate proves "a device of this fleet, not revoked", the password proves
which one.

Rights are literal topics per device (Mosquitto 2.0.11's plugin does not expand
``%u`` in them). Everything not granted is denied, *receiving* included
(``defaultACLAccess.publishClientReceive`` false), so a subscription restored
from an older session delivers nothing its owner may not read; and since a
subscription must match a grant literally, ``$share/…``, ``#`` or another
device's topic are refused at SUBSCRIBE (reason 0x87).

Passwords are 256-bit random strings; the plugin stores PBKDF2-HMAC-SHA512 of
them (12-byte salt, base64), which :func:`hash_password` computes the same way.
"""

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from protocol import topics

CENTRAL_USER: Final = "lifecert-central"
ADMIN_USER: Final = "lifecert-admin"
RENEWAL_USER: Final = "lifecert-renewal"
CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = CONTROL_TOPIC + "/response"

DEVICE_WRITES: Final[tuple[topics.Kind, ...]] = (
    "result",
    "status",
    "telemetry",
    "req",
    "cmdack",
    "reported",
    "csr",
)
DEVICE_READS: Final[tuple[topics.Kind, ...]] = ("ack", "resp", "config", "cmd", "cert")
CENTRAL_READS: Final[tuple[topics.Kind, ...]] = (
    "result",
    "req",
    "status",
    "telemetry",
    "cmdack",
    "reported",
)
CENTRAL_SHARED: Final[tuple[topics.Kind, ...]] = ("result", "req")
CENTRAL_WRITES: Final[tuple[topics.Kind, ...]] = ("ack", "resp", "config", "cmd")

ITERATIONS: Final = 101
"""PBKDF2 rounds, as Mosquitto 2.0's own ``createClient`` uses (the secrets are random)."""
SALT_BYTES: Final = 12

Command = dict[str, Any]


class PasswordHash(BaseModel):
    """A password as the plugin stores it (base64 fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str
    hash: str
    iterations: int


def new_password() -> str:
    """A fresh random broker password (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, salt: bytes | None = None) -> PasswordHash:
    """PBKDF2-HMAC-SHA512 of ``password`` the way the plugin checks it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, ITERATIONS, 64)
    return PasswordHash(
        salt=base64.b64encode(salt).decode("ascii"),
        hash=base64.b64encode(digest).decode("ascii"),
        iterations=ITERATIONS,
    )


def device_role(device_id: str) -> str:
    """Name of the role holding ``device_id``'s topics."""
    return f"device-{device_id}"


def legacy_login(device_id: str) -> str:
    """The second login terminals had before one connection did everything: ``<id>.templates``
    (username and client id; a device id has no ``.``, so it names no other device)."""
    return topics.check_device_id(device_id) + ".templates"


def device_client_ids(device_id: str) -> tuple[str, str]:
    """Where a device's logins and sessions may sit: its own id, and the legacy one."""
    return topics.check_device_id(device_id), legacy_login(device_id)


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": True}


def device_acls(device_id: str, root: str) -> list[dict[str, Any]]:
    """Write its own result/status/telemetry/req/cmdack/reported; subscribe to and read its
    ack/resp/config/cmd."""
    acls = [
        _acl("publishClientSend", topics.device_topic(device_id, k, root)) for k in DEVICE_WRITES
    ]
    for kind in DEVICE_READS:
        topic = topics.device_topic(device_id, kind, root)
        acls += [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]
    return acls


def central_acls(root: str) -> list[dict[str, Any]]:
    """Read every device's result/req/status/telemetry/cmdack/reported (result and req also
    shared), write ack/resp/config/cmd."""
    acls = []
    for kind in CENTRAL_READS:
        topic = topics.all_devices(kind, root)
        acls += [_acl("subscribePattern", topic), _acl("publishClientReceive", topic)]
    acls += [
        _acl("subscribePattern", f"$share/+/{topics.all_devices(k, root)}") for k in CENTRAL_SHARED
    ]
    acls += [_acl("publishClientSend", topics.all_devices(k, root)) for k in CENTRAL_WRITES]
    return acls


def renewal_acls(root: str) -> list[dict[str, Any]]:
    """Read every device's ``csr`` topic, write every device's ``cert`` topic."""
    topic = topics.all_devices("csr", root)
    return [
        _acl("subscribePattern", topic),
        _acl("publishClientReceive", topic),
        _acl("publishClientSend", topics.all_devices("cert", root)),
    ]


def admin_acls() -> list[dict[str, Any]]:
    """The plugin's control topic and its responses, nothing else."""
    return [
        _acl("publishClientSend", CONTROL_TOPIC),
        _acl("subscribeLiteral", RESPONSE_TOPIC),
        _acl("publishClientReceive", RESPONSE_TOPIC),
    ]


def _client(
    username: str, secret: PasswordHash, role: str, text: str, client_id: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"username": username, "textName": text}
    if client_id is not None:
        entry["clientid"] = client_id
    return entry | {
        "password": secret.hash,
        "salt": secret.salt,
        "iterations": secret.iterations,
        "roles": [{"rolename": role}],
    }


def config(
    root: str,
    devices: Mapping[str, PasswordHash],
    central: PasswordHash,
    admin: PasswordHash,
    renewal: PasswordHash | None = None,
) -> dict[str, Any]:
    """The plugin's whole configuration file (``broker/dynamic-security.json``)."""
    clients = [
        _client(CENTRAL_USER, central, "central", "central's consumers and template service"),
        _client(ADMIN_USER, admin, "admin", "lifecert fleet (dynamic-security control)"),
    ]
    roles = [
        {"rolename": "central", "acls": central_acls(root)},
        {"rolename": "admin", "acls": admin_acls()},
        {"rolename": "renewal", "acls": renewal_acls(root)},
    ]
    if renewal is not None:
        clients.append(
            _client(RENEWAL_USER, renewal, "renewal", "lifecert fleet renewal-service (CA)")
        )
    for device_id, secret in sorted(devices.items()):
        role = device_role(device_id)
        clients.append(_client(device_id, secret, role, f"terminal {device_id}", device_id))
        roles.append({"rolename": role, "acls": device_acls(device_id, root)})
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def add_device(device_id: str, password: str, root: str) -> list[Command]:
    """Control commands that (re)create ``device_id``'s login with ``password``.

    Any existing login of the device (the legacy one too) is deleted first (which
    disconnects it), so the same commands enrol a device and replace its password.
    """
    role = device_role(device_id)
    create = {
        "command": "createClient",
        "username": device_id,
        "password": password,
        "clientid": device_id,
        "textname": f"terminal {device_id}",
        "roles": [{"rolename": role}],
    }
    return [
        *remove_device(device_id),
        {"command": "createRole", "rolename": role, "acls": device_acls(device_id, root)},
        create,
    ]


def remove_device(device_id: str) -> list[Command]:
    """Control commands that delete ``device_id``'s logins, the legacy one included
    (disconnecting them; one not there is no error, see :func:`missing_ok`), and its role."""
    return [
        *({"command": "deleteClient", "username": u} for u in device_client_ids(device_id)),
        {"command": "deleteRole", "rolename": device_role(device_id)},
    ]


def missing_ok(responses: Iterable[dict[str, Any]]) -> list[str]:
    """Errors among control responses, leaving out deletions of what was not there."""
    return [
        f"{r.get('command')}: {r['error']}"
        for r in responses
        if r.get("error")
        and not (str(r.get("command", "")).startswith("delete") and "not found" in r["error"])
    ]
