"""The terminal's MQTT 5 link, its only broker connection: results and acks, requests and
replies, status and telemetry.

``client_id`` and username are the device id, the password comes from
``mqtt.password_file`` (the broker binds that login to that client id); the
session survives disconnects
(``clean_start=False`` with a session expiry) so acks central sends while the
terminal is away wait at the broker. The status topic carries a retained
``online`` on every connect, ``offline`` as the last will and ``stopped`` on
a clean stop. paho's network thread reconnects with back-off; callbacks hand
acks and connection events to the service, which does the work on its own
thread.

Requests (:meth:`MqttLink.request`, e.g. the session asking central for a template) go
on the device's ``req`` topic with MQTT 5 ResponseTopic = its own ``resp`` topic and
CorrelationData naming the request; the caller's thread waits for the reply with that
correlation, so requests never wait behind the results' in-flight window.
"""

import logging
import queue
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from common.errors import ConfigError
from edge.config import EdgeConfig
from protocol import topics
from protocol.settings import read_password

log = logging.getLogger(__name__)

OnConnect = Callable[[bool], None]
OnAck = Callable[[bytes], None]
OnCert = Callable[[bytes], None]
OnFleet = Callable[[str, bytes], None]
"""Fleet messages: ``("config" | "cmd", payload)``, and ``("connect", b"")`` on every connect."""
FLEET_PUBLISH_TIMEOUT_S = 10.0


def tls_context(cfg: EdgeConfig, key_file: Path) -> ssl.SSLContext:
    """Client TLS context: verify the broker against the fleet CA, present the device cert."""
    tls = cfg.mqtt.tls
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mqtt.tls.ca_file: cannot load {tls.ca_file}: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(tls.cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.tls.cert_file / key_file: cannot load {tls.cert_file} with {key_file}: {exc}"
        ) from None
    return ctx


def set_login(client: paho.Client, cfg: EdgeConfig) -> None:
    """Log in as the device id with the bundle's broker password (warn if there is none)."""
    password = read_password(cfg.mqtt)
    if password is None:
        log.warning(
            "no mqtt.password_file in the config: the broker will refuse %s; copy a "
            "re-issued bundle (lifecert fleet reissue %s) onto this terminal",
            cfg.device_id,
            cfg.device_id,
        )
        return
    client.username_pw_set(cfg.device_id, password)


class MqttLink:
    """One device's connection to the broker; a context manager."""

    def __init__(
        self,
        cfg: EdgeConfig,
        key_file: Path,
        on_ack: OnAck,
        on_connect: OnConnect | None = None,
        on_cert: OnCert | None = None,
        on_fleet: OnFleet | None = None,
    ) -> None:
        self._cfg = cfg
        self._on_ack = on_ack
        self._on_connect_cb = on_connect
        self._on_cert = on_cert
        self._key_file = key_file
        self._on_fleet = on_fleet
        root = cfg.mqtt.root
        self.result_topic = topics.device_topic(cfg.device_id, "result", root)
        self.ack_topic = topics.device_topic(cfg.device_id, "ack", root)
        self.status_topic = topics.device_topic(cfg.device_id, "status", root)
        self.telemetry_topic = topics.device_topic(cfg.device_id, "telemetry", root)
        self.req_topic = topics.device_topic(cfg.device_id, "req", root)
        self.resp_topic = topics.device_topic(cfg.device_id, "resp", root)
        self.csr_topic = topics.device_topic(cfg.device_id, "csr", root)
        self.cert_topic = topics.device_topic(cfg.device_id, "cert", root)
        self.fleet_topics = {
            topics.device_topic(cfg.device_id, kind, root): kind for kind in ("config", "cmd")
        }
        self._connected = threading.Event()
        self._replies = threading.Event()  # connected and subscribed to the reply topic
        self._waiting: dict[bytes, queue.SimpleQueue[bytes]] = {}
        self._lock = threading.Lock()
        self._started = False
        self._subscribed: list[str] = []
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._tls = tls_context(cfg, key_file)
        client.tls_set_context(self._tls)
        set_login(client, cfg)
        client.will_set(self.status_topic, topics.STATUS_OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(cfg.link.reconnect_min_s, cfg.link.reconnect_max_s)
        client.max_inflight_messages_set(cfg.outbox.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_connect_fail = self._handle_connect_fail
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        self._client = client

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` seconds pass."""
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Start connecting in the background; works offline and keeps retrying."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._cfg.link.session_expiry_s
        self._client.connect_async(
            self._cfg.mqtt.host,
            self._cfg.mqtt.port,
            keepalive=self._cfg.mqtt.keepalive,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()
        self._started = True
        log.info("connecting to %s:%d", self._cfg.mqtt.host, self._cfg.mqtt.port)

    def publish_result(self, jws: str) -> bool:
        """Publish a signed result (QoS 1); False when not connected (nothing queued)."""
        if not self.connected:
            return False
        info = self._client.publish(self.result_topic, jws.encode("ascii"), qos=1)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def request(self, body: bytes, correlation: bytes, timeout: float) -> bytes:
        """Publish ``body`` on the ``req`` topic (QoS 0) and return the reply's payload.

        Waits up to ``timeout`` seconds for the link to be ready for replies, then as long
        for the reply carrying ``correlation``: ``TimeoutError`` after either,
        ``ConnectionError`` if the request cannot be sent.
        """
        if not self._replies.wait(timeout):
            raise TimeoutError("not connected to the broker")
        inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        with self._lock:
            self._waiting[correlation] = inbox
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = self.resp_topic
            props.CorrelationData = correlation
            info = self._client.publish(self.req_topic, body, qos=0, properties=props)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"request not sent: {paho.error_string(info.rc)}")
            try:
                return inbox.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no reply from central in {timeout:g}s") from None
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)

    def publish_csr(self, jws: str) -> bool:
        """Publish a signed renewal message on the ``csr`` topic (QoS 1); False if offline."""
        if not self.connected:
            return False
        info = self._client.publish(self.csr_topic, jws.encode("ascii"), qos=1)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def reconnect(self) -> None:
        """Reconnect (same client id and session) with the key and certificate now on disk:
        after a renewal switched them."""
        cert_file = self._cfg.mqtt.tls.cert_file
        try:
            self._tls.load_cert_chain(str(cert_file), str(self._key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.tls: cannot load {cert_file} with {self._key_file}: {exc}"
            ) from None
        self._started = False
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._replies.clear()
        self.start()

    def publish_fleet(self, kind: str, payload: bytes, retain: bool) -> bool:
        """Publish a signed fleet message (``cmdack`` or ``reported``) at QoS 1 and wait for
        the broker's PUBACK; False if it did not come (not connected, or timed out)."""
        if not self.connected:
            return False
        topic = topics.device_topic(self._cfg.device_id, kind, self._cfg.mqtt.root)  # type: ignore[arg-type]
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(FLEET_PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            log.warning("%s not published: %s", kind, exc)
            return False
        return info.is_published()

    def publish_telemetry(self, payload: bytes) -> None:
        """Publish health metrics (QoS 0, best effort)."""
        if self.connected:
            self._client.publish(self.telemetry_topic, payload, qos=0)

    def close(self, timeout: float = 5.0) -> None:
        """Publish a retained ``stopped``, disconnect cleanly (no last will) and stop."""
        if not self._started:
            return
        self._started = False
        if self.connected:
            info = self._client.publish(
                self.status_topic, topics.STATUS_STOPPED, qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the stopped status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._replies.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        wanted = [
            (self.ack_topic, SubscribeOptions(qos=1)),
            (self.resp_topic, SubscribeOptions(qos=0)),
        ]
        if self._on_cert is not None:
            wanted.append((self.cert_topic, SubscribeOptions(qos=1)))
        if self._on_fleet is not None:
            wanted += [(topic, SubscribeOptions(qos=1)) for topic in self.fleet_topics]
        self._subscribed = [topic for topic, _ in wanted]
        client.subscribe(wanted)
        client.publish(self.status_topic, topics.STATUS_ONLINE, qos=1, retain=True)
        self._connected.set()
        log.info("connected (session present: %s)", flags.session_present)
        if self._on_connect_cb is not None:
            self._on_connect_cb(flags.session_present)
        if self._on_fleet is not None:
            self._on_fleet("connect", b"")

    def _handle_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        ack, resp, *more = codes
        for topic, code in zip(self._subscribed[2:], more, strict=False):
            if code.is_failure:
                log.error("%s subscription refused: %s", topic, code)
        if ack.is_failure:
            log.error("ack topic subscription refused: %s", ack)
        if resp.is_failure:
            log.error("reply topic subscription refused: %s; requests will time out", resp)
        else:
            self._replies.set()

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        log.warning(
            "cannot reach the broker at %s:%d; retrying", self._cfg.mqtt.host, self._cfg.mqtt.port
        )

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        self._replies.clear()
        if self._started:
            log.warning("disconnected from the broker: %s; reconnecting", reason)

    def _handle_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.ack_topic:
            self._on_ack(bytes(msg.payload))
        elif msg.topic == self.cert_topic:
            if self._on_cert is not None:
                self._on_cert(bytes(msg.payload))
        elif msg.topic == self.resp_topic:
            correlation = getattr(msg.properties, "CorrelationData", None)
            with self._lock:
                inbox = self._waiting.get(bytes(correlation)) if correlation else None
            if inbox is None:
                log.warning("a reply nobody waits for on %s: ignored", msg.topic)
            else:
                inbox.put(bytes(msg.payload))
        elif msg.topic in self.fleet_topics and self._on_fleet is not None:
            self._on_fleet(self.fleet_topics[msg.topic], bytes(msg.payload))
        else:
            log.debug("ignoring a message on %s", msg.topic)
