"""Reference templates for the session: central's last certified template, cached encrypted.

``References`` implements the session's port: it asks central (when a
``fetch`` is given and answers in time), keeps what it gets in the encrypted
:class:`~edge.adapters.cache.TemplateCache`, and falls back to the cache when central
is unreachable. Vein templates enrolled at this terminal live in the same cache.

``CentralTemplates.fetch`` is that ``fetch``: MQTT 5 request/response with
central's template service (central/templates.py), over the terminal's one
broker connection (``edge.adapters.mqtt.MqttLink.request``).
"""

import json
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import LifecertError
from edge.adapters.cache import CacheError, Kind, TemplateCache
from edge.session.ports import UnknownRetireeError
from protocol import messages, sealing, templates
from protocol.errors import MessageError, SealError, SignatureError
from protocol.signing import Verifier

log = logging.getLogger(__name__)

Fetch = Callable[[str], bytes | None]
"""Ask central for a retiree's last certified template (clear bytes) or ``None`` if there is
none; raises ``edge.session.ports.UnknownRetireeError`` for someone not in the roster,
``TimeoutError`` or ``OSError`` when central cannot be asked."""


class Requester(Protocol):
    """Sends a request to central and returns its reply (``MqttLink.request``)."""

    def request(self, body: bytes, correlation: bytes, timeout: float) -> bytes: ...


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
                log.info("central has no face template for ID ending in %s", retiree_id[-4:])
        cached = self._cached(retiree_id, "face")
        return None if cached is None else to_template(cached)

    def _cached(self, retiree_id: str, kind: Kind) -> bytes | None:
        """A cached template, or None when there is none or it cannot be opened (logged)."""
        try:
            return self.cache.get(retiree_id, kind)
        except CacheError as exc:
            log.error("%s: treated as not cached", exc)
            return None

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None:
        self.cache.put(retiree_id, "face", np.asarray(template, "<f4").tobytes())

    def vein(self, retiree_id: str) -> bytes | None:
        return self._cached(retiree_id, "vein")

    def enrol_vein(self, retiree_id: str, template: bytes) -> None:
        self.cache.put(retiree_id, "vein", template)


class CentralTemplates:
    """Asks central for templates over MQTT 5 request/response on the terminal's link.

    A JSON request on the device's ``req`` topic with its ``resp`` topic as response topic
    and a random correlation id (``link.request``); the reply counts only when central's
    signature verifies and it names this request, device and retiree. The template inside
    is sealed to this device's key; one from another embedder than ``model`` is not used
    (the card photo is).
    """

    def __init__(
        self,
        link: Requester,
        device_id: str,
        verifier: Verifier,
        device_key: ec.EllipticCurvePrivateKey | Callable[[], list[ec.EllipticCurvePrivateKey]],
        model: str,
        timeout_s: float,
    ) -> None:
        """``device_key``: the key templates are sealed to, or a function giving the current
        device key and the ones a renewal replaced (``DeviceSigner.private_keys``)."""
        self.device_id, self.model, self.timeout_s = device_id, model, timeout_s
        self._link, self._verifier = link, verifier
        self._device_keys = device_key if callable(device_key) else lambda: [device_key]

    def fetch(self, retiree_id: str) -> bytes | None:
        """The retiree's last certified face template (little-endian float32), or ``None``."""
        request_id = secrets.token_hex(16)
        body = {"op": "face_template", "request_id": request_id, "retiree_id": retiree_id}
        payload = self._link.request(
            json.dumps(body).encode(), bytes.fromhex(request_id), self.timeout_s
        )
        return self.open_reply(payload, request_id, retiree_id)

    def _unseal(self, token: str) -> templates.Template:
        problem: Exception | None = None
        for key in self._device_keys():
            try:
                return templates.decode(sealing.unseal(token, key))
            except (SealError, MessageError) as exc:
                problem = exc
        raise ReplyError(f"template in the reply cannot be used: {problem}") from None

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
        template = self._unseal(token)
        if template.kind != "face" or len(template.vector) != 128:
            raise ReplyError(f"not a 128-d face template ({template.kind})")
        if template.model != self.model:
            log.info("central's template is from embedder %s, not %s", template.model, self.model)
            return None
        return np.asarray(template.vector, "<f4").tobytes()
