"""Certificate renewal over MQTT: the service holding the CA key (`lifecert fleet renewal-service`).

A terminal whose certificate nears its end makes a new P-256 key and publishes, on its
own ``csr`` topic (the broker lets only that device write it), a JWS signed with its
*current* certificate's key carrying a CSR. This service checks the signature against
the certificate the registry holds for that device (active, not expired), the CSR as
claim enrolment does (P-256, CN = the device id, nothing else honoured), issues a new
certificate for the same id and site and answers on the device's ``cert`` topic with a
JWS signed by the CA key. The new certificate sits in ``devices/<id>.<serial>.pem``
(central accepts results signed with either); the device login at the broker does not
change.

Once the terminal has switched and reconnected, it publishes a ``renewed`` message signed
with the *new* key: the service then makes the new certificate ``devices/<id>.pem``,
keeps the old one as ``devices/<id>.<old serial>.pem``, lists it in the CRL and reloads
the broker. A renewal left unconfirmed for :data:`RESEND_AFTER` may be replaced by a new
request (the abandoned certificate is revoked too): at most a few certificates per hour
per device, whatever its key asks.
"""

import datetime as dt
import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from common import sdnotify
from protocol import enrolment, signing, topics
from protocol.enrolment import RenewalDone, RenewalReply, RenewalRequest
from protocol.errors import SignatureError
from provisioning import dynsec, pki, registry
from provisioning.claims import ClaimError, check_csr
from provisioning.errors import ProvisioningError
from provisioning.fleet import Fleet
from provisioning.registry import DeviceRecord, OldCert, PendingCert

log = logging.getLogger(__name__)

RESEND_AFTER = dt.timedelta(minutes=10)
SESSION_EXPIRY_S = 86400
CLIENT_ID = dynsec.RENEWAL_USER


class RenewalError(ProvisioningError):
    """A verified renewal message asks for something not allowed; told to the terminal."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _cert_file(fleet: Fleet, device_id: str, serial: str | None = None) -> Path:
    name = f"{device_id}.pem" if serial is None else f"{device_id}.{serial}.pem"
    return fleet.paths.devices / name


def issue(
    fleet: Fleet, device_id: str, request_id: str, key: ec.EllipticCurvePublicKey
) -> x509.Certificate:
    """A renewed certificate for ``device_id``'s new ``key`` (the same one again for a
    repeated request); recorded as the device's pending renewal."""
    with registry.locked(fleet.paths.registry) as reg:
        record = _active(reg, device_id)
        now = _now()
        pending = record.renewal
        if pending is not None and pending.request_id == request_id:
            cert = pki.load_cert(_cert_file(fleet, device_id, pending.serial))
            if cert.public_key() != key:
                raise RenewalError(f"request {request_id} was already used with another key")
            return cert
        if pending is not None and now - pending.issued_at < RESEND_AFTER:
            raise RenewalError(
                f"renewal {pending.request_id} was issued at {pending.issued_at:%H:%M} UTC and "
                f"is not confirmed yet: finish it, or ask again after {RESEND_AFTER}"
            )
        if pending is not None:  # abandoned: never seen in use, revoke it all the same
            record.superseded.append(
                OldCert(
                    serial=pending.serial,
                    fingerprint=pending.fingerprint,
                    revoked_at=now,
                    reason=f"renewal {pending.request_id} abandoned",
                )
            )
            _cert_file(fleet, device_id, pending.serial).unlink(missing_ok=True)
            record.renewal = None
            fleet.write_crl(reg)
        cert = fleet.authority().issue(
            device_id, key, fleet.settings.pki.device_days, site=record.site
        )
        serial = format(cert.serial_number, "x")
        pki.write_cert(_cert_file(fleet, device_id, serial), cert)
        record.renewal = PendingCert(
            serial=serial,
            fingerprint=signing.cert_fingerprint(cert),
            not_after=cert.not_valid_after_utc,
            request_id=request_id,
            issued_at=now,
        )
    log.info("renewal %s: issued %s to %s", request_id, serial, device_id)
    return cert


def finish(fleet: Fleet, device_id: str, request_id: str) -> OldCert:
    """The terminal runs on its renewed certificate: make it current, revoke the old one
    (CRL re-issued; reload the broker after)."""
    with registry.locked(fleet.paths.registry) as reg:
        record = _active(reg, device_id)
        pending = record.renewal
        if pending is None or pending.request_id != request_id:
            raise RenewalError(f"no renewal {request_id} is pending for {device_id}")
        old = OldCert(
            serial=record.serial,
            fingerprint=record.fingerprint,
            revoked_at=_now(),
            reason=f"superseded by renewal {request_id}",
        )
        current, issued = _cert_file(fleet, device_id), _cert_file(fleet, device_id, pending.serial)
        if current.exists():
            current.replace(_cert_file(fleet, device_id, record.serial))
        issued.replace(current)
        record.serial, record.fingerprint = pending.serial, pending.fingerprint
        record.not_after, record.renewal = pending.not_after, None
        record.superseded.append(old)
        fleet.write_crl(reg)
    log.info(
        "renewal %s: %s runs on %s; revoked %s", request_id, device_id, record.serial, old.serial
    )
    return old


def _active(reg: registry.Registry, device_id: str) -> DeviceRecord:
    record = reg.get(device_id)
    if record is None or record.status != "active":
        raise RenewalError(f"{device_id} is not an active device of this fleet")
    return record


@dataclass(frozen=True)
class Outcome:
    """What handling one message produced: a signed reply, and whether the broker must
    re-read the CRL."""

    reply: str | None
    reload: bool = False


class Renewals:
    """Checks and answers terminals' renewal messages (no MQTT here: see :class:`Service`)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        ca = fleet.authority()
        self._signer = signing.Signer(ca.key, kid=signing.key_fingerprint(ca.key.public_key()))

    def _reply(self, device_id: str, request_id: str, **fields: Any) -> str:
        body = RenewalReply(device_id=device_id, request_id=request_id[:64], **fields)
        return self._signer.sign(body.model_dump_json().encode("utf-8"))

    def handle(self, topic: str, payload: bytes) -> Outcome:
        """Check one message from a ``csr`` topic; the reply to send (None: dropped, logged)."""
        try:
            device_id, kind = topics.parse(topic, self.fleet.settings.root)
        except ValueError:
            return Outcome(None)
        if kind != "csr" or len(payload) > enrolment.MAX_RENEWAL_BYTES:
            log.warning("renewal message on %s dropped: %d bytes", topic, len(payload))
            return Outcome(None)
        try:
            message, signed_with = self._verified(device_id, payload)
        except (SignatureError, ValidationError, ValueError, OSError) as exc:
            log.warning("renewal message from %s dropped: %s", device_id, str(exc)[:300])
            return Outcome(None)
        try:
            if isinstance(message, RenewalRequest):
                if signed_with != "current":
                    raise RenewalError("sign renewal requests with the current certificate's key")
                key = check_csr(message.csr, device_id)
                cert = issue(self.fleet, device_id, message.request_id, key)
                return Outcome(
                    self._reply(device_id, message.request_id, certificate=pki.pem(cert))
                )
            if signed_with != "pending":
                raise RenewalError("confirm a renewal with the renewed certificate's key")
            finish(self.fleet, device_id, message.request_id)
            return Outcome(self._reply(device_id, message.request_id, finished=True), True)
        except (RenewalError, ClaimError) as exc:
            log.warning("renewal refused for %s: %s", device_id, exc)
            return Outcome(self._reply(device_id, message.request_id, error=str(exc)[:1000]))

    def _verified(self, device_id: str, payload: bytes) -> tuple[RenewalRequest | RenewalDone, str]:
        """The message and which certificate signed it (``current`` or ``pending``)."""
        kid = signing.unverified_header(payload)["kid"]
        record = registry.read(self.fleet.paths.registry).get(device_id)
        if record is None or record.status != "active":
            raise ValueError("not an active device of this fleet")
        if kid == record.fingerprint:
            signed_with, path = "current", _cert_file(self.fleet, device_id)
        elif record.renewal is not None and kid == record.renewal.fingerprint:
            signed_with, path = "pending", _cert_file(self.fleet, device_id, record.renewal.serial)
        else:
            raise ValueError(f"signed by no certificate {device_id} holds (kid {kid[:16]}…)")
        cert = pki.load_cert(path)
        if signing.cert_fingerprint(cert) != kid:
            raise ValueError(f"{path} does not match the registry")
        if cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
            raise ValueError("its certificate has expired: enrol it again")
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        message = enrolment.parse_renewal(signing.Verifier(key).verify(payload))
        if message.device_id != device_id:
            raise ValueError(f"payload names {message.device_id}, topic {device_id}")
        return message, signed_with


class Service:
    """The renewal service's MQTT loop: one persistent session as ``lifecert-renewal``
    (requests sent while it is down wait at the broker)."""

    def __init__(self, fleet: Fleet, stop: threading.Event | None = None) -> None:
        self.fleet = fleet
        self.stop_event = stop or threading.Event()
        self.renewals = Renewals(fleet)
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._ready = threading.Event()

    def check(self) -> str:
        """What ``--validate-config`` reports: the files and login the service needs are there."""
        p = self.fleet.paths
        for path in (p.broker / "renewal.pem", p.broker / "renewal.key"):
            if not path.is_file():
                raise ProvisioningError(
                    f"{path} is missing: run `lifecert fleet broker-config`, then restart "
                    "the broker"
                )
        self.fleet.renewal_password()
        broker = self.fleet.settings.broker
        where = f"{broker.host}:{broker.port}"
        return f"OK: {self.fleet.directory} (CA, {dynsec.RENEWAL_USER} login, broker {where})"

    def _client(self) -> mqtt.Client:
        p = self.fleet.paths
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, protocol=mqtt.MQTTv5
        )
        client.tls_set(
            ca_certs=str(p.ca_cert),
            certfile=str(p.broker / "renewal.pem"),
            keyfile=str(p.broker / "renewal.key"),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.username_pw_set(dynsec.RENEWAL_USER, self.fleet.renewal_password())
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, m: self._inbox.put((m.topic, bytes(m.payload)))
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            log.error("the broker refused %s: %s", dynsec.RENEWAL_USER, rc)
            return
        client.subscribe(topics.all_devices("csr", self.fleet.settings.root), qos=1)
        self._ready.set()
        log.info("renewal service connected")

    def run(self) -> None:
        """Answer renewal messages until the stop event is set."""
        broker = self.fleet.settings.broker
        client = self._client()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        client.connect_async(
            broker.host, broker.port, keepalive=30, clean_start=False, properties=props
        )
        client.loop_start()
        sdnotify.notify("READY=1")
        watchdog = sdnotify.watchdog_interval()
        last_ping = 0.0
        try:
            while not self.stop_event.is_set():
                if watchdog and time.monotonic() - last_ping >= watchdog:
                    sdnotify.notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                try:
                    topic, payload = self._inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                outcome = self.renewals.handle(topic, payload)
                if outcome.reply is not None:
                    reply_topic = topic.removesuffix("/csr") + "/cert"
                    client.publish(reply_topic, outcome.reply, qos=1)
                if outcome.reload:
                    log.info("%s", self.fleet.reload_broker())
        finally:
            sdnotify.notify("STOPPING=1")
            client.disconnect()
            client.loop_stop()
