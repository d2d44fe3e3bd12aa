"""Talk to the running broker as ``lifecert-admin``: dynamic-security commands, session purges.

::

    with BrokerControl(login) as broker:
        broker.run(dynsec.add_device("term-0001", password, root))
        broker.purge_session("term-0002")        # True if the broker held a session

Commands go to ``$CONTROL/dynamic-security/v1`` as one JSON message; the plugin
answers on ``…/response``. A session is purged by connecting under its client
id with clean start off and a session expiry of 0: the broker hands the old
session over (``session present`` tells whether there was one), and ends it
when that connection closes; a client still connected under that id is
disconnected. :class:`BrokerNotRunningError` means nothing listens on the
broker's address.
"""

import json
import logging
import queue
import ssl
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.errors import LifecertError
from protocol.settings import TlsFiles
from provisioning import dynsec
from provisioning.errors import ProvisioningError

log = logging.getLogger(__name__)


class BrokerNotRunningError(LifecertError, ConnectionError):
    """Nothing accepts connections on the broker's address: it is not running."""


@dataclass(frozen=True)
class AdminLogin:
    """Where the broker is and how ``lifecert-admin`` logs in."""

    host: str
    port: int
    tls: TlsFiles
    password: str


def _connect(
    login: AdminLogin, client_id: str, *, clean_start: bool, timeout: float
) -> tuple[mqtt.Client, bool]:
    """A connected admin client and whether the broker resumed a session for ``client_id``."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(
        ca_certs=str(login.tls.ca_file),
        certfile=str(login.tls.cert_file),
        keyfile=str(login.tls.key_file),
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    client.username_pw_set(dynsec.ADMIN_USER, login.password)
    answered = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        result.update(rc=rc, present=bool(flags.session_present))
        answered.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    where = f"{login.host}:{login.port}"
    try:
        client.connect(
            login.host, login.port, keepalive=30, clean_start=clean_start, properties=props
        )
    except ConnectionRefusedError:
        raise BrokerNotRunningError(f"no broker listens on {where}") from None
    except ssl.SSLError as exc:
        raise ProvisioningError(f"TLS with the broker at {where} failed: {exc}") from None
    except OSError as exc:
        raise ProvisioningError(f"cannot reach the broker at {where}: {exc}") from None
    client.loop_start()
    if not answered.wait(timeout) or result["rc"].is_failure:
        client.loop_stop()
        client.disconnect()
        reason = result.get("rc", f"no answer within {timeout:g}s")
        raise ProvisioningError(
            f"the broker at {where} refused {dynsec.ADMIN_USER} ({reason}): it must run the "
            "configuration of `lifecert fleet broker-config` (dynamic security); restart it "
            "after re-generating that"
        )
    return client, result["present"]


class BrokerControl:
    """An admin connection to the running broker; a context manager."""

    def __init__(self, login: AdminLogin, timeout: float = 10.0) -> None:
        self.login = login
        self.timeout = timeout
        self._client: mqtt.Client | None = None
        self._responses: queue.Queue[dict[str, Any]] = queue.Queue()

    def connect(self) -> Self:
        """Connect and subscribe to the plugin's responses.

        ``BrokerNotRunningError`` if nothing listens on the broker's address.
        """
        client, _ = _connect(
            self.login,
            f"{dynsec.ADMIN_USER}-{uuid.uuid4().hex[:8]}",
            clean_start=True,
            timeout=self.timeout,
        )
        self._client = client
        subscribed = threading.Event()
        granted: list[ReasonCode] = []

        def on_subscribe(_c: Any, _u: Any, _m: int, codes: list[ReasonCode], _p: Any) -> None:
            granted.extend(codes)
            subscribed.set()

        client.on_subscribe = on_subscribe
        client.on_message = self._on_message
        client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)
        if not subscribed.wait(self.timeout) or any(c.is_failure for c in granted):
            self.close()
            raise ProvisioningError(
                f"the broker refused {dynsec.ADMIN_USER} its control responses "
                f"({granted or 'no answer'}): re-run `lifecert fleet broker-config` and restart it"
            )
        return self

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._responses.put(json.loads(message.payload))
        except ValueError:
            log.warning("unreadable dynamic-security response ignored")

    def run(self, commands: list[dynsec.Command]) -> list[dict[str, Any]]:
        """Send ``commands`` at once; their responses, in order (``error`` keys included)."""
        if self._client is None:
            raise ProvisioningError("not connected to the broker")
        tag = uuid.uuid4().hex
        tagged = [c | {"correlationData": f"{tag}-{i}"} for i, c in enumerate(commands)]
        self._client.publish(dynsec.CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        while True:
            try:
                body = self._responses.get(timeout=self.timeout)
            except queue.Empty:
                raise ProvisioningError(
                    f"the broker did not answer on {dynsec.CONTROL_TOPIC} within "
                    f"{self.timeout:g}s: does it run the dynamic-security plugin "
                    "(`lifecert fleet broker-config`, then restart it)?"
                ) from None
            responses = body.get("responses", [])
            if responses and str(responses[0].get("correlationData", "")).startswith(tag):
                return list(responses)

    def purge_session(self, client_id: str) -> bool:
        """End the broker's session for ``client_id`` (and any connection under it).

        True if the broker held a session for it.
        """
        client, present = _connect(self.login, client_id, clean_start=False, timeout=self.timeout)
        client.disconnect()
        client.loop_stop()
        log.info("purged client id %s (session present: %s)", client_id, present)
        return present

    def close(self) -> None:
        """Disconnect."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
