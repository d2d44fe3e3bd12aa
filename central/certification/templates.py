"""Template service: a terminal asks for a retiree's last certified face template.

MQTT 5 request/response. The terminal publishes a JSON :class:`TemplateRequest`
on ``<root>/dev/<id>/req`` with a response topic (its own ``…/resp``) and
correlation data; central reads the shared subscription
``protocol.topics.shared_requests()`` (over its one broker connection, beside the
results) and answers on that topic with a JWS (central's signing key) over
``messages.Reply``:

- ``ok``: ``data = {request_id, device_id, retiree_id, kind, template,
  result_id, certified_at}``; ``template`` is the sealed template of the
  retiree's newest applied passing result, opened with central's sealing key
  and re-sealed to the requesting device's certificate key (``null`` when the
  retiree was never certified with a template);
- ``error``: ``unknown_retiree``, ``rate_limited`` or ``bad_request`` (with the
  same identifying data when the request could be read).

Other ops (``status``: ``central.payments.status``) go to the ``handlers`` given, after
the same checks and the same per-device budget.

Only enrolled, trusted devices get an answer; a revoked, expired or unknown
device, a response topic other than the device's own, or an oversized payload
gets nothing. Each device may ask ``burst`` times, refilled at ``per_minute``.
"""

import datetime as dt
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Self

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from central.certification.devices import DeviceTrust, Standing
from central.certification.link import Link, Route
from central.store import schema
from protocol import messages, sealing, signing, templates, topics
from protocol.errors import MessageError, SealError, SignatureError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES: Final = 1024
MAX_CORRELATION_BYTES: Final = 64
_QUEUE_MAX: Final = 1000
_r = schema.results
Handler = Callable[[str, bytes], messages.Reply]
"""Answers one request of another op: (device id, payload) -> the reply to sign."""


class TemplateRequest(BaseModel):
    """What a terminal asks (the JSON payload on its ``req`` topic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["face_template"]
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    retiree_id: messages.IdNumber


@dataclass(frozen=True)
class Limits:
    """Per-device request budget (token bucket)."""

    burst: int = 20
    per_minute: float = 30.0


class _Buckets:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, device_id: str, now: float) -> bool:
        tokens, last = self._state.get(device_id, (float(self.limits.burst), now))
        tokens = min(self.limits.burst, tokens + (now - last) * self.limits.per_minute / 60)
        if tokens < 1:
            self._state[device_id] = (tokens, now)
            return False
        self._state[device_id] = (tokens - 1, now)
        return True


class TemplateAnswers:
    """Answers template requests from the database (no MQTT: testable on its own)."""

    def __init__(
        self,
        engine: Engine,
        trust: DeviceTrust,
        devices_dir: Path,
        seal_key: ec.EllipticCurvePrivateKey,
        signer: signing.Signer,
        root: str = topics.ROOT,
        limits: Limits | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        self.engine, self.trust, self.seal_key, self.signer = engine, trust, seal_key, signer
        self.handlers = dict(handlers or {})
        self.devices_dir = devices_dir
        self.root = root
        self._buckets = _Buckets(limits or Limits())
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def device_key(self, device_id: str) -> tuple[ec.EllipticCurvePublicKey, str] | None:
        """The trusted device's certificate key and ``kid``, else ``None`` (unknown, revoked)."""
        path = self.devices_dir / f"{device_id}.pem"
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None
        kid = signing.cert_fingerprint(cert)
        device = self.trust.by_kid(kid)
        if device is None or device.device_id != device_id:
            return None
        if device.standing(self.trust.revoked, dt.datetime.now(dt.UTC)) is not Standing.TRUSTED:
            return None
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # DeviceTrust admits P-256 only
        return key, kid

    def answer(
        self, topic: str, payload: bytes, response_topic: str | None, now: float | None = None
    ) -> str | None:
        """The signed reply for one request, or ``None`` when the request gets no answer."""
        try:
            device_id, kind = topics.parse(topic, self.root)
        except ValueError:
            return None
        if kind != "req" or response_topic != topics.device_topic(device_id, "resp", self.root):
            self._count("ignored")
            log.warning("request from %s ignored: response topic %r", device_id, response_topic)
            return None
        if len(payload) > MAX_REQUEST_BYTES:
            self._count("ignored")
            log.warning("request from %s ignored: %d bytes", device_id, len(payload))
            return None
        device = self.device_key(device_id)
        if device is None:
            self._count("refused")
            log.warning("template request from %s refused: not a trusted device", device_id)
            return None
        if not self._buckets.take(device_id, time.monotonic() if now is None else now):
            self._count("rate_limited")
            return self._sign("error", {"device_id": device_id}, "rate_limited")
        op = _op(payload)
        if op is not None and (handler := self.handlers.get(op)) is not None:
            reply = handler(device_id, payload)
            self._count(f"{op}_{reply.status}")
            return self.signer.sign(messages.encode(reply))
        try:
            request = messages.decode(TemplateRequest, payload)
        except MessageError as exc:
            self._count("bad_request")
            return self._sign("error", {"device_id": device_id}, f"bad_request: {exc}"[:200])
        ids = {
            "request_id": request.request_id,
            "device_id": device_id,
            "retiree_id": request.retiree_id,
        }
        return self._lookup(ids, *device)

    def _lookup(self, ids: dict[str, Any], device_key: ec.EllipticCurvePublicKey, kid: str) -> str:
        retiree = ids["retiree_id"]
        with self.engine.connect() as conn:
            known = conn.execute(
                sa.select(schema.retirees.c.id_number).where(schema.retirees.c.id_number == retiree)
            ).first()
            row = conn.execute(
                sa.select(_r.c.result_id, _r.c.device_time, _r.c.template_sealed)
                .where(
                    _r.c.retiree_id == retiree,
                    _r.c.applied.is_(True),
                    _r.c.decision == messages.Decision.PASS.value,
                    _r.c.method == messages.Method.FACE.value,
                    _r.c.template_sealed.is_not(None),
                )
                .order_by(_r.c.device_time.desc(), _r.c.received_at.desc())
                .limit(1)
            ).first()
        if known is None:
            self._count("unknown_retiree")
            return self._sign("error", ids, "unknown_retiree")
        data: dict[str, Any] = {**ids, "kind": "face", "template": None}
        if row is not None:
            try:
                clear = sealing.unseal(row.template_sealed, self.seal_key)
                if templates.decode(clear).kind != "face":
                    raise MessageError("not a face template")
                data["template"] = sealing.seal(clear, device_key, kid=kid)
            except (SealError, MessageError) as exc:
                log.error("stored template of result %s unusable: %s", row.result_id, exc)
            else:
                data["result_id"] = str(uuid.UUID(str(row.result_id)))
                data["certified_at"] = row.device_time.astimezone(dt.UTC).isoformat()
        self._count("ok" if data["template"] else "no_template")
        return self._sign("ok", data)

    def _sign(
        self, status: Literal["ok", "error"], data: dict[str, Any], error: str | None = None
    ) -> str:
        reply = messages.Reply(status=status, data=data, error=error)
        return self.signer.sign(messages.encode(reply))


def _op(payload: bytes) -> str | None:
    """The request's ``op`` when it is a JSON object with a text ``op``."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    op = body.get("op") if isinstance(body, dict) else None
    return op if isinstance(op, str) else None


class TemplateService:
    """The MQTT side: requests through central's one connection (``Link``), answered by one
    worker thread off the network thread; a context manager."""

    def __init__(self, link: Link, answers: TemplateAnswers) -> None:
        self.link, self.answers = link, answers
        self._halt = threading.Event()
        self.ready = threading.Event()
        self._inbox: queue.Queue[tuple[str, bytes, str | None, bytes | None]] = queue.Queue(
            _QUEUE_MAX
        )
        s = link.settings
        link.add(
            Route(
                subscription=topics.shared_requests(s.share_group, s.root),
                topics=topics.all_devices("req", s.root),
                qos=0,
                on_message=self._on_message,
                on_subscribed=self._on_subscribed,
                durable=False,  # requests are QoS 0: none wait for us while we are away
            )
        )
        self._worker = threading.Thread(target=self._work, name="templates", daemon=True)

    def _on_subscribed(self, code: ReasonCode) -> None:
        if code.is_failure:
            log.error("template request subscription refused: %s", code)
            return
        log.info("serving template requests")
        self.ready.set()

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        response = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        try:
            self._inbox.put_nowait((message.topic, bytes(message.payload), response, correlation))
        except queue.Full:
            log.warning("template requests queue full: dropping one from %s", message.topic)

    def _work(self) -> None:
        while not self._halt.is_set():
            try:
                topic, payload, response, correlation = self._inbox.get(timeout=0.25)
            except queue.Empty:
                continue
            if correlation is not None and len(correlation) > MAX_CORRELATION_BYTES:
                continue
            try:
                reply = self.answers.answer(topic, payload, response)
            except (sa.exc.SQLAlchemyError, SignatureError) as exc:
                log.error("template request on %s not answered: %s", topic, exc)
                continue
            if reply is None or response is None:
                continue
            props = Properties(PacketTypes.PUBLISH)
            if correlation is not None:
                props.CorrelationData = correlation
            self.link.publish(response, reply.encode("ascii"), qos=0, properties=props)

    def start(self) -> None:
        """Start answering (the link, connected by its owner, brings the requests)."""
        self._worker.start()

    def close(self) -> None:
        """Stop answering."""
        self._halt.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5)
        log.info("template service stopped: %s", self.answers.counts)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
