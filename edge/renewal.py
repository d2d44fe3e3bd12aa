"""Certificate renewal on the terminal: a new key made here, a CSR over MQTT, an atomic switch.

Driven by the service loop (:meth:`Renewer.step`) once the certificate has fewer than
``[renewal] before_days`` left, or when asked (:meth:`Renewer.request`, e.g. central's
signed ``renew`` command):

1. **requested** - a new P-256 key goes to ``<key_file>.next`` (0600, fsynced), the
   request id and the new key's fingerprint to ``<data_dir>/renewal.json``; a CSR signed
   with the *current* key goes out on the ``csr`` topic, re-sent every ``retry_s`` until
   the renewal service answers on ``cert`` (a repeated request gets the same certificate);
2. **switch** - the answer is checked (signed by the fleet CA's key, for this device and
   request, a certificate for the new key issued by the CA); the certificate goes to
   ``<cert_file>.next``, then the key and the certificate are renamed over the old ones,
   and the link reconnects with them. A power cut anywhere leaves a matching pair:
   :func:`recover` (run before the keys are loaded) finishes a half-done rename;
3. **installed** - once connected on the new certificate and the outbox holds no result
   signed with the old key, a ``renewed`` message signed with the *new* key goes out;
   the service then revokes the old certificate and says ``finished``.
"""

import datetime as dt
import json
import logging
import os
import queue
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from common import durable
from common.errors import ConfigError
from edge.adapters import cache
from edge.adapters import keys as edge_keys
from edge.config import EdgeConfig
from edge.enrolment import key_pem, make_csr, write_private, write_public
from protocol import enrolment, signing
from protocol.enrolment import RenewalDone, RenewalReply, RenewalRequest
from protocol.errors import SealError, SignatureError

log = logging.getLogger(__name__)

STATE_FILE = "renewal.json"
DUE_CHECK_S = 60.0
"""Seconds between looks at the certificate's age while no renewal is under way."""


class Link(Protocol):
    """What renewal needs of the MQTT link."""

    @property
    def connected(self) -> bool:
        """True while connected."""
        ...

    def publish_csr(self, jws: str) -> bool:
        """Publish on the device's ``csr`` topic."""
        ...

    def reconnect(self) -> None:
        """Reconnect with the key and certificate on disk."""
        ...


@dataclass(frozen=True)
class Files:
    """Where the device key and certificate live, and their ``.next`` twins."""

    key: Path
    cert: Path

    @property
    def next_key(self) -> Path:
        """The new key while a renewal is under way."""
        return self.key.with_name(self.key.name + ".next")

    @property
    def next_cert(self) -> Path:
        """The renewed certificate before the switch."""
        return self.cert.with_name(self.cert.name + ".next")


def files(cfg: EdgeConfig) -> Files:
    """The device's key and certificate files."""
    return Files(edge_keys.device_key_path(cfg), cfg.mqtt.tls.cert_file)


def _public_key(path: Path) -> ec.EllipticCurvePublicKey | None:
    try:
        key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
    except (OSError, ValueError):
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def _private_public(path: Path) -> ec.EllipticCurvePublicKey | None:
    try:
        return signing.load_private_key(path).public_key()
    except (OSError, ValueError, SignatureError):
        return None


def recover(cfg: EdgeConfig) -> str | None:
    """Finish a switch a power cut interrupted (before the keys are loaded); what was done."""
    f = files(cfg)
    renewed = _public_key(f.next_cert)
    if renewed is None:
        return None
    if _private_public(f.key) == renewed:
        f.next_cert.replace(f.cert)
    elif _private_public(f.next_key) == renewed:
        f.next_key.replace(f.key)
        f.next_cert.replace(f.cert)
    else:
        f.next_cert.unlink()
        return f"dropped {f.next_cert}: it matches no key here"
    durable.sync_dir(f.cert.parent)
    return f"finished switching to the renewed certificate in {f.cert}"


class Renewer:
    """One terminal's renewal state machine (see the module docstring)."""

    def __init__(
        self,
        cfg: EdgeConfig,
        signer: signing.Signer,
        on_switch: Callable[[], None] | None = None,
    ) -> None:
        """``on_switch``: called after the switch (other TLS identities to reload)."""
        self.cfg = cfg
        self._on_switch = on_switch
        self.files = files(cfg)
        self.signer = signer
        self.state_file = cfg.data_dir / STATE_FILE
        self._inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._forced = False
        self._last_sent = -float("inf")
        self._not_before = 0.0
        self.writable = self._writable()
        try:
            ca = x509.load_pem_x509_certificate(cfg.mqtt.tls.ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls.ca_file: cannot load the fleet CA: {exc}") from None
        ca_key = ca.public_key()
        if not isinstance(ca_key, ec.EllipticCurvePublicKey):
            raise ConfigError("mqtt.tls.ca_file: the fleet CA's key is not P-256")
        self._ca = ca
        self._ca_verifier = signing.Verifier(ca_key)

    def _writable(self) -> bool:
        """Whether the key and certificate may be replaced here (warned once if not)."""
        if self.files.key != self.cfg.mqtt.tls.key_file:
            why = "the device key is a systemd credential"
        elif not all(os.access(f.parent, os.W_OK) for f in (self.files.key, self.files.cert)):
            why = f"{self.files.key.parent} is not writable by this service"
        else:
            return True
        if self.cfg.renewal.before_days > 0:
            log.warning(
                "certificate renewal is off: %s (keep device.key and device.pem in a folder "
                "the service may write, e.g. its state directory; docs/fleet-enrolment.md)",
                why,
            )
        return False

    def back_off(self) -> None:
        """Wait ``retry_s`` before the next attempt (after a failed step)."""
        self._not_before = time.monotonic() + self.cfg.renewal.retry_s
        self._last_sent = time.monotonic()

    # -- inputs ---------------------------------------------------------------------------------

    def on_cert(self, payload: bytes) -> None:
        """A message on the ``cert`` topic (paho's thread): handled in :meth:`step`."""
        if len(payload) <= enrolment.MAX_RENEWAL_BYTES:
            self._inbox.put(payload)

    def request(self) -> None:
        """Renew now, whatever the certificate's age (central's ``renew`` command)."""
        self._forced = True
        self._not_before = 0.0

    # -- state ----------------------------------------------------------------------------------

    def _state(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _save(self, state: dict[str, str] | None) -> None:
        if state is None:
            self.state_file.unlink(missing_ok=True)
        else:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            write_private(self.state_file, json.dumps(state).encode())

    def _current(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.files.cert.read_bytes())

    def stage(self) -> str:
        """``idle``, ``requested`` or ``installed``."""
        state = self._state()
        if state is None:
            return "idle"
        current = signing.key_fingerprint(self._current().public_key())  # type: ignore[arg-type]
        return "installed" if current == state.get("new_key") else "requested"

    def due(self, now: dt.datetime | None = None) -> bool:
        """The certificate has fewer than ``before_days`` left (or a renewal was asked for)."""
        if self._forced:
            return True
        days = self.cfg.renewal.before_days
        if days <= 0:
            return False
        left = self._current().not_valid_after_utc - (now or dt.datetime.now(dt.UTC))
        return left < dt.timedelta(days=days)

    # -- the loop -------------------------------------------------------------------------------

    def step(self, link: Link, undelivered: Callable[[], int]) -> None:
        """Handle answers, then send what the stage calls for (when connected);
        ``undelivered`` counts the results not yet acked (asked only when it matters)."""
        while True:
            try:
                payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._answer(link, payload)
        if not link.connected or not self.writable:
            return
        now = time.monotonic()
        stage = self.stage()
        if stage == "idle":
            if now >= self._not_before and self.due():
                self._start()
                self._send_request(link)
            elif not self._forced:
                self._not_before = max(self._not_before, now + DUE_CHECK_S)
        elif now - self._last_sent >= self.cfg.renewal.retry_s:
            if stage == "requested":
                self._send_request(link)
            elif undelivered() == 0:
                self._send_done(link)

    def _start(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(self.files.next_key, key_pem(key))
        self._save(
            {
                "request_id": secrets.token_urlsafe(12),
                "new_key": signing.key_fingerprint(key.public_key()),
                "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )
        self._forced = False
        log.info("certificate renewal started")

    def _send_request(self, link: Link) -> None:
        state = self._state()
        try:
            key = signing.load_private_key(self.files.next_key)
        except (OSError, ValueError, SignatureError) as exc:
            log.error("renewal key %s unusable (%s): starting over", self.files.next_key, exc)
            self._save(None)
            return
        if state is None or signing.key_fingerprint(key.public_key()) != state.get("new_key"):
            self._save(None)
            return
        body = RenewalRequest(
            device_id=self.cfg.device_id,
            request_id=state["request_id"],
            csr=make_csr(key, self.cfg.device_id),
            sent_at=dt.datetime.now(dt.UTC),
        )
        if link.publish_csr(self.signer.sign(body.model_dump_json().encode())):
            self._last_sent = time.monotonic()
            log.info("renewal request %s sent", state["request_id"])

    def _send_done(self, link: Link) -> None:
        state = self._state()
        if state is None:
            return
        body = RenewalDone(device_id=self.cfg.device_id, request_id=state["request_id"])
        if link.publish_csr(self.signer.sign(body.model_dump_json().encode())):
            self._last_sent = time.monotonic()
            log.info("renewal %s: running on the new certificate, told the fleet", body.request_id)

    def _answer(self, link: Link, payload: bytes) -> None:
        state = self._state()
        try:
            reply = RenewalReply.model_validate_json(self._ca_verifier.verify(payload))
        except (SignatureError, ValidationError) as exc:
            log.warning("renewal answer refused: %s", str(exc)[:200])
            return
        if state is None or reply.device_id != self.cfg.device_id:
            return
        if reply.request_id != state.get("request_id"):
            return
        stage = self.stage()
        if reply.finished or (reply.error and stage == "installed"):
            self._save(None)
            self.files.next_key.unlink(missing_ok=True)
            self._not_before = time.monotonic() + DUE_CHECK_S
            log.info("renewal %s finished: the old certificate is revoked", reply.request_id)
        elif reply.error:
            log.error("renewal %s refused: %s", reply.request_id, reply.error)
            self._save(None)
            self.files.next_key.unlink(missing_ok=True)
            self._not_before = time.monotonic() + self.cfg.renewal.retry_s
        elif reply.certificate and stage == "requested":
            self._switch(link, reply.certificate)

    def _switch(self, link: Link, pem: str) -> None:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            log.error("renewed certificate refused: %s", exc)
            return
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if (
            _private_public(self.files.next_key) != cert.public_key()
            or not names
            or (names[0].value != self.cfg.device_id)
        ):
            log.error("renewed certificate is not for this device's new key: refused")
            return
        try:  # the template cache stays readable with the new key
            cache.reseal_key(
                self.cfg.data_dir,
                signing.load_private_key(self.files.key),
                cert.public_key(),  # type: ignore[arg-type]
            )
        except (OSError, SignatureError, SealError) as exc:
            log.error("template cache key not re-sealed (%s): switching later", exc)
            return
        write_public(self.files.next_cert, pem.encode("ascii"))
        self.files.next_key.replace(self.files.key)
        self.files.next_cert.replace(self.files.cert)
        durable.sync_dir(self.files.cert.parent)
        log.info(
            "switched to the renewed certificate (serial %x): reconnecting", cert.serial_number
        )
        self._last_sent = -float("inf")
        link.reconnect()
        if self._on_switch is not None:
            self._on_switch()
