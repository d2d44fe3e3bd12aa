"""Central's one connection to the broker, shared by everything a central process serves.

paho-mqtt 2.x, MQTT 5, mutual TLS, one persistent session (``clean_start`` off, session
expiry from the config) with manual acks: a QoS 1 message is PUBACKed only when its
receiver calls ``ack``. Each service adds a ``Route`` before ``start``: a (shared)
subscription, made again at every connect, and the handler its messages go to. A route
that is not ``durable`` is left (UNSUBSCRIBE) before a clean disconnect: the broker keeps
a persistent session's subscriptions while it is away, and a shared subscription would
keep handing that session a share of messages a QoS 0 route never gets.
"""

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from central.certification.settings import CentralMqtt
from common.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """One subscription and where its messages go (both callbacks run on paho's thread)."""

    subscription: str  # what to subscribe to, e.g. ``$share/central/lifecert/v1/dev/+/result``
    topics: str  # the filter its messages arrive on, e.g. ``lifecert/v1/dev/+/result``
    qos: int
    on_message: Callable[[mqtt.MQTTMessage], None]
    on_subscribed: Callable[[ReasonCode], None]  # the broker's answer, at every connect
    durable: bool = True  # kept in the session while we are away (False: left on a clean stop)


class Link:
    """One paho client and one broker session for a central process."""

    def __init__(self, settings: CentralMqtt, receive_maximum: int) -> None:
        self.settings = settings
        self.receive_maximum = receive_maximum
        self.generation = 0  # connections made so far: a mid is only valid in its own
        self._routes: list[Route] = []
        self._matcher = MQTTMatcher()  # route filter -> its routes (one trie walk a message)
        self._pending: dict[int, list[Route]] = {}
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        try:
            client.tls_set(
                ca_certs=str(s.tls.ca_file),
                certfile=str(s.tls.cert_file),
                keyfile=str(s.tls.key_file),
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load the TLS files: {exc}") from None
        if (login := s.login()) is not None:
            client.username_pw_set(*login)
        else:
            log.warning("no mqtt.password_file: the broker will refuse %s", s.username)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def add(self, route: Route) -> None:
        """Serve ``route`` from the next connect on (add every route before ``start``).

        Routes' ``topics`` filters should not overlap: a message goes to the first route
        added with the first filter it matches (one trie walk, not one match per route).
        """
        self._routes.append(route)
        try:
            self._matcher[route.topics].append(route)
        except KeyError:
            self._matcher[route.topics] = [route]

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        self.generation += 1
        log.info(
            "connected to %s:%d (session present: %s)",
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        if not self._routes:
            return
        wanted = [(r.subscription, SubscribeOptions(qos=r.qos)) for r in self._routes]
        err, mid = client.subscribe(wanted)
        if mid is None:
            log.error("subscribing failed: %s", mqtt.error_string(err))
            return
        self._pending[mid] = list(self._routes)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        for route, code in zip(self._pending.pop(mid, []), codes, strict=False):
            route.on_subscribed(code)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        log.warning("disconnected from the broker: %s", rc)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        for routes in self._matcher.iter_match(message.topic):
            routes[0].on_message(message)
            return
        # A subscription the session kept from another version of central: nobody here
        # reads it, and an unacked QoS 1 message would hold a place in the broker's window.
        log.warning("message on %r matches no route: dropped", message.topic)
        if message.qos > 0:
            self.ack(message.mid, message.qos)

    # -- the service's side ---------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (and reconnect until ``stop``), resuming the session."""
        s = self.settings
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Leave the routes that are not durable, then disconnect cleanly."""
        if leave := [r.subscription for r in self._routes if not r.durable]:
            self._client.unsubscribe(leave)  # sent before the DISCONNECT, on the same stream
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK message ``mid`` (received in this connection's generation)."""
        self._client.ack(mid, qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        properties: Properties | None = None,
        retain: bool = False,
    ) -> None:
        """Queue a message (thread-safe; lost if the connection is down at QoS 0)."""
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._client.is_connected()
