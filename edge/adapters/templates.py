"""Reference templates for the session: central's last certified template, cached encrypted.

``References`` implements the session's port: it asks central (when a
``fetch`` is given and answers in time), keeps what it gets in the encrypted
:class:`~edge.adapters.cache.TemplateCache`, and falls back to the cache when central
is unreachable. Vein templates enrolled at this terminal live in the same cache.

``CentralTemplates.fetch`` is that ``fetch``: MQTT 5 request/response with
central's template service (central/templates.py), on its own connection.
"""

import json
import logging
import queue
import secrets
import threading
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.errors import LifecertError
from edge.adapters.cache import TemplateCache
from edge.adapters.keys import Keys, device_key_path
from edge.adapters.mqtt import set_login, tls_context
from edge.config import EdgeConfig
from edge.session.ports import UnknownRetireeError
from protocol import messages, sealing, templates, topics
from protocol.errors import MessageError, SealError, SignatureError
from protocol.settings import templates_client

log = logging.getLogger(__name__)

Fetch = Callable[[str], bytes | None]
"""Ask central for a retiree's last certified template (clear bytes) or ``None`` if there is
none; raises ``edge.session.ports.UnknownRetireeError`` for someone not in the roster,
``TimeoutError`` or ``OSError`` when central cannot be asked."""


class ReplyError(LifecertError, ValueError):
    """Central's reply cannot be trusted or used (bad signature, other request, bad template)."""


def to_template(data: bytes) -> np.ndarray:
    """Bytes of a face template (little-endian float32[128]) as an array."""
    template = np.frombuffer(data, "<f4").astype(np.float32)
    if template.shape != (128,):
        raise ValueError(f"a face template has 128 values, got {template.size}")
    return template


class References:
    """The session's ``References`` port over the cache and, optionally, central."""

    def __init__(self, cache: TemplateCache, fetch: Fetch | None = None) -> None:
        self.cache, self.fetch = cache, fetch

    def face(self, retiree_id: str) -> np.ndarray | None:
        if self.fetch is not None:
            try:
                data = self.fetch(retiree_id)
            except (TimeoutError, OSError) as exc:
                log.warning("central cannot be asked for a template (%s): using the cache", exc)
            except ReplyError as exc:
                log.error("central's template reply refused (%s): using the cache", exc)
            else:
                if data is not None:
                    self.cache.put(retiree_id, "face", data)
                    return to_template(data)
        cached = self.cache.get(retiree_id, "face")
        return None if cached is None else to_template(cached)

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None:
        self.cache.put(retiree_id, "face", np.asarray(template, "<f4").tobytes())

    def vein(self, retiree_id: str) -> bytes | None:
        return self.cache.get(retiree_id, "vein")

    def enrol_vein(self, retiree_id: str, template: bytes) -> None:
        self.cache.put(retiree_id, "vein", template)


class CentralTemplates:
    """Asks central for templates over MQTT 5 request/response; a context manager.

    Its own connection (username and client id ``<device_id>.templates``, the
    bundle's broker password, clean start): a
    JSON request on the device's ``req`` topic with its ``resp`` topic as
    response topic and a random correlation id; the reply counts only when
    central's signature verifies and it names this request, device and
    retiree. The template inside is sealed to this device's key; one from
    another embedder than ``model`` is not used (the card photo is).
    """

    def __init__(
        self,
        cfg: EdgeConfig,
        keys: Keys,
        device_key: ec.EllipticCurvePrivateKey,
        model: str,
        timeout_s: float,
    ) -> None:
        self.device_id, self.model, self.timeout_s = cfg.device_id, model, timeout_s
        self._host, self._port = cfg.mqtt.host, cfg.mqtt.port
        self._verifier, self._device_key = keys.central_verifier, device_key
        self.req_topic = topics.device_topic(cfg.device_id, "req", cfg.mqtt.root)
        self.resp_topic = topics.device_topic(cfg.device_id, "resp", cfg.mqtt.root)
        self._waiting: dict[bytes, queue.SimpleQueue[bytes]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._started = False
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=templates_client(cfg.device_id),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.tls_set_context(tls_context(cfg, device_key_path(cfg)))
        set_login(client, cfg, templates_client(cfg.device_id))
        client.reconnect_delay_set(cfg.link.reconnect_min_s, cfg.link.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        """Connect in the background; while not connected, requests time out."""
        self._client.connect_async(self._host, self._port, keepalive=30, clean_start=True)
        self._client.loop_start()
        self._started = True

    def wait_ready(self, timeout: float) -> bool:
        """Block until connected and subscribed to the reply topic."""
        return self._ready.wait(timeout)

    def fetch(self, retiree_id: str) -> bytes | None:
        """The retiree's last certified face template (little-endian float32), or ``None``."""
        if not self._ready.wait(self.timeout_s):
            raise TimeoutError("not connected to the broker")
        request_id = secrets.token_hex(16)
        correlation = bytes.fromhex(request_id)
        inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        with self._lock:
            self._waiting[correlation] = inbox
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = self.resp_topic
            props.CorrelationData = correlation
            body = {"op": "face_template", "request_id": request_id, "retiree_id": retiree_id}
            info = self._client.publish(
                self.req_topic, json.dumps(body).encode(), qos=0, properties=props
            )
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise ConnectionError(f"request not sent: {paho.error_string(info.rc)}")
            try:
                payload = inbox.get(timeout=self.timeout_s)
            except queue.Empty:
                raise TimeoutError(f"no reply from central in {self.timeout_s:g}s") from None
        finally:
            with self._lock:
                self._waiting.pop(correlation, None)
        return self.open_reply(payload, request_id, retiree_id)

    def open_reply(self, payload: bytes, request_id: str, retiree_id: str) -> bytes | None:
        """Verify central's signed reply to this request and unseal its template."""
        try:
            reply = messages.decode(messages.Reply, self._verifier.verify(payload))
        except (SignatureError, MessageError) as exc:
            raise ReplyError(f"reply refused: {exc}") from None
        data = reply.data or {}
        expected = {"request_id": request_id, "device_id": self.device_id, "retiree_id": retiree_id}
        if {k: data.get(k) for k in expected} != expected:
            raise ReplyError("reply names another request, device or retiree")
        if reply.status == "error":
            if reply.error == "unknown_retiree":
                raise UnknownRetireeError(f"central does not know retiree {retiree_id[-4:]}")
            raise ReplyError(f"central answered: {reply.error}")
        try:
            token = messages.validate(messages.FaceTemplateData, data).template
        except MessageError as exc:
            raise ReplyError(f"reply refused: {exc}") from None
        if token is None:
            return None
        try:
            template = templates.decode(sealing.unseal(token, self._device_key))
        except (SealError, MessageError) as exc:
            raise ReplyError(f"template in the reply cannot be used: {exc}") from None
        if template.kind != "face" or len(template.vector) != 128:
            raise ReplyError(f"not a 128-d face template ({template.kind})")
        if template.model != self.model:
            log.info("central's template is from embedder %s, not %s", template.model, self.model)
            return None
        return np.asarray(template.vector, "<f4").tobytes()

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the template connection: %s", reason)
            return
        client.subscribe(self.resp_topic, qos=0)

    def _on_subscribe(self, _c: Any, _u: Any, _m: int, codes: list[ReasonCode], _p: Any) -> None:
        if any(c.is_failure for c in codes):
            log.error("reply topic subscription refused: %s", codes)
            return
        self._ready.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._ready.clear()
        if self._started:
            log.info("template connection lost: %s", reason)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        correlation = getattr(msg.properties, "CorrelationData", None)
        with self._lock:
            inbox = self._waiting.get(bytes(correlation)) if correlation else None
        if inbox is None:
            log.warning("a reply nobody waits for on %s: ignored", msg.topic)
            return
        inbox.put(bytes(msg.payload))

    def close(self) -> None:
        """Disconnect."""
        if self._started:
            self._started = False
            self._client.disconnect()
            self._client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
