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

Messages queued together (a fleet renewing at once) are applied as one :class:`Batch`: one
registry read and write, one CRL re-issue, one broker reload; each message is verified
and answered on its own, and the answers go out once the batch is on disk.
"""

import datetime as dt
import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

from common import durable, sdnotify
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
MAX_BATCH = 200  # messages applied under one registry lock and write
SESSION_EXPIRY_S = 86400
CLIENT_ID = dynsec.RENEWAL_USER


class RenewalError(ProvisioningError):
    """A verified renewal message asks for something not allowed; told to the terminal."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _cert_file(fleet: Fleet, device_id: str, serial: str | None = None) -> Path:
    name = f"{device_id}.pem" if serial is None else f"{device_id}.{serial}.pem"
    return fleet.paths.devices / name


class Batch:
    """Renewal steps applied to one read of the registry, under its lock, committed together.

    New certificate files are written as each step runs; :meth:`commit` fsyncs them all
    together, re-issues the CRL (when a step revoked something), writes the registry, then
    puts renewed certificates in place as ``<id>.pem`` and removes abandoned ones. A crash
    before the registry is written leaves only unreferenced files; after it, only moves
    that :func:`repair` completes.
    """

    def __init__(self, fleet: Fleet, reg: registry.Registry) -> None:
        self.fleet, self.registry = fleet, reg
        self._records = reg.by_id()
        self._authority: pki.Authority | None = None
        self._written: list[Path] = []
        self.revocations = 0  # certificates this batch revoked (the CRL to re-issue)
        self._moves: dict[str, Path] = {}  # device id -> its renewed certificate, to be <id>.pem
        self._removals: list[Path] = []

    def active(self, device_id: str) -> DeviceRecord:
        """``device_id``'s record, if it is an active device of this fleet."""
        record = self._records.get(device_id)
        if record is None or record.status != "active":
            raise RenewalError(f"{device_id} is not an active device of this fleet")
        return record

    def current_file(self, device_id: str) -> Path:
        """Where ``device_id``'s current certificate is now (before :meth:`commit`, a
        certificate renewed in this batch is still under its serial)."""
        return self._moves.get(device_id) or _cert_file(self.fleet, device_id)

    def _write(self, path: Path, data: bytes) -> None:
        durable.write_atomic(path, data, sync=False)  # fsynced together at commit
        self._written.append(path)

    def issue(
        self, device_id: str, request_id: str, key: ec.EllipticCurvePublicKey
    ) -> x509.Certificate:
        """A renewed certificate for ``device_id``'s new ``key`` (the same one again for a
        repeated request); recorded as the device's pending renewal."""
        fleet, record, now = self.fleet, self.active(device_id), _now()
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
                    not_after=pending.not_after,
                )
            )
            self._removals.append(_cert_file(fleet, device_id, pending.serial))
            record.renewal = None
            self.revocations += 1
        if self._authority is None:
            self._authority = fleet.authority()
        cert = self._authority.issue(
            device_id, key, fleet.settings.pki.device_days, site=record.site
        )
        serial = format(cert.serial_number, "x")
        self._write(_cert_file(fleet, device_id, serial), pki.pem(cert).encode("ascii"))
        record.renewal = PendingCert(
            serial=serial,
            fingerprint=signing.cert_fingerprint(cert),
            not_after=cert.not_valid_after_utc,
            request_id=request_id,
            issued_at=now,
        )
        log.info("renewal %s: issued %s to %s", request_id, serial, device_id)
        return cert

    def finish(self, device_id: str, request_id: str) -> OldCert:
        """The terminal runs on its renewed certificate: make it current and revoke the old
        one (in the CRL at :meth:`commit`; reload the broker after)."""
        record = self.active(device_id)
        pending = record.renewal
        if pending is None or pending.request_id != request_id:
            raise RenewalError(f"no renewal {request_id} is pending for {device_id}")
        old = OldCert(
            serial=record.serial,
            fingerprint=record.fingerprint,
            revoked_at=_now(),
            reason=f"superseded by renewal {request_id}",
            not_after=record.not_after,
        )
        current = self.current_file(device_id)
        if current.exists():  # kept as <id>.<old serial>.pem
            self._write(_cert_file(self.fleet, device_id, record.serial), current.read_bytes())
        self._moves[device_id] = _cert_file(self.fleet, device_id, pending.serial)
        record.serial, record.fingerprint = pending.serial, pending.fingerprint
        record.not_after, record.renewal = pending.not_after, None
        record.superseded.append(old)
        self.revocations += 1
        log.info(
            "renewal %s: %s runs on %s; revoked %s",
            request_id,
            device_id,
            pending.serial,
            old.serial,
        )
        return old

    def commit(self) -> None:
        """Make the batch durable: new files, the CRL, the registry, then file moves."""
        devices = self.fleet.paths.devices
        if self._written:
            durable.sync_files(self._written)
            durable.sync_dir(devices)
        if self.revocations:
            self.fleet.write_crl(self.registry)
        registry.write(self.fleet.paths.registry, self.registry)
        for device_id, renewed in self._moves.items():
            renewed.replace(_cert_file(self.fleet, device_id))
        for path in self._removals:
            path.unlink(missing_ok=True)
        if self._moves or self._removals:
            durable.sync_dir(devices)


@contextmanager
def batch(fleet: Fleet) -> Iterator[Batch]:
    """A :class:`Batch` on the locked registry, committed when the block ends without error
    (nothing is written when it raises)."""
    with registry.lock(fleet.paths.registry):
        work = Batch(fleet, registry.read(fleet.paths.registry))
        yield work
        work.commit()


def issue(
    fleet: Fleet, device_id: str, request_id: str, key: ec.EllipticCurvePublicKey
) -> x509.Certificate:
    """:meth:`Batch.issue` alone, committed."""
    with batch(fleet) as work:
        return work.issue(device_id, request_id, key)


def finish(fleet: Fleet, device_id: str, request_id: str) -> OldCert:
    """:meth:`Batch.finish` alone, committed (CRL re-issued; reload the broker after)."""
    with batch(fleet) as work:
        return work.finish(device_id, request_id)


def repair(fleet: Fleet) -> list[str]:
    """Complete what a crash after a batch's registry write left undone: a renewed
    certificate still under its serial becomes ``<id>.pem``; the devices repaired."""
    done = []
    with registry.lock(fleet.paths.registry):
        names = {e.name for e in os.scandir(fleet.paths.devices)}
        for record in registry.read(fleet.paths.registry).devices:
            if f"{record.id}.{record.serial}.pem" not in names:
                continue  # the usual case: the current certificate is only <id>.pem
            renewed, current = (
                _cert_file(fleet, record.id, record.serial),
                _cert_file(fleet, record.id),
            )
            if _fingerprint(current) == record.fingerprint:
                continue  # a copy made before a registry write that did not happen
            if _fingerprint(renewed) == record.fingerprint:
                renewed.replace(current)
                done.append(record.id)
        if done:
            durable.sync_dir(fleet.paths.devices)
    for device_id in done:
        log.warning(
            "renewal of %s completed after a crash: its certificate moved in place", device_id
        )
    return done


def _fingerprint(path: Path) -> str | None:
    try:
        return signing.cert_fingerprint(pki.load_cert(path))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Outcome:
    """What handling one message produced: a signed reply, and whether the broker must
    re-read the CRL."""

    reply: str | None
    reload: bool = False


Message = tuple[str, bytes]


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
        return self.handle_batch([(topic, payload)])[0]

    def handle_batch(self, messages: Sequence[Message]) -> list[Outcome]:
        """Check and apply many messages under one registry lock and write (one CRL
        re-issue for all their confirmations); an outcome per message, in order. Each is
        verified and refused on its own; the replies may be sent once this returns (the
        registry, certificates and CRL are on disk)."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        todo = []
        for i, (topic, payload) in enumerate(messages):
            device_id = self._device(topic, payload)
            if device_id is None:
                outcomes[i] = Outcome(None)
            else:
                todo.append((i, device_id, payload))
        if todo:
            with batch(self.fleet) as work:
                for i, device_id, payload in todo:
                    outcomes[i] = self._apply(work, device_id, payload)
        return [o or Outcome(None) for o in outcomes]

    def _device(self, topic: str, payload: bytes) -> str | None:
        """The device a ``csr`` message of an acceptable size came from (None: dropped)."""
        try:
            device_id, kind = topics.parse(topic, self.fleet.settings.root)
        except ValueError:
            return None
        if kind != "csr" or len(payload) > enrolment.MAX_RENEWAL_BYTES:
            log.warning("renewal message on %s dropped: %d bytes", topic, len(payload))
            return None
        return device_id

    def _apply(self, work: Batch, device_id: str, payload: bytes) -> Outcome:
        """One verified message applied to the batch, or refused (the batch unharmed)."""
        try:
            message, signed_with = self._verified(work, device_id, payload)
        except (SignatureError, ValidationError, ValueError, OSError) as exc:
            log.warning("renewal message from %s dropped: %s", device_id, str(exc)[:300])
            return Outcome(None)
        revoked = work.revocations
        try:
            if isinstance(message, RenewalRequest):
                if signed_with != "current":
                    raise RenewalError("sign renewal requests with the current certificate's key")
                key = check_csr(message.csr, device_id)
                cert = work.issue(device_id, message.request_id, key)
                reply = self._reply(device_id, message.request_id, certificate=pki.pem(cert))
            else:
                if signed_with != "pending":
                    raise RenewalError("confirm a renewal with the renewed certificate's key")
                work.finish(device_id, message.request_id)
                reply = self._reply(device_id, message.request_id, finished=True)
        except (RenewalError, ClaimError) as exc:
            log.warning("renewal refused for %s: %s", device_id, exc)
            return Outcome(self._reply(device_id, message.request_id, error=str(exc)[:1000]))
        return Outcome(reply, work.revocations > revoked)

    def _verified(
        self, work: Batch, device_id: str, payload: bytes
    ) -> tuple[RenewalRequest | RenewalDone, str]:
        """The message and which certificate signed it (``current`` or ``pending``)."""
        kid = signing.unverified_header(payload)["kid"]
        try:
            record = work.active(device_id)
        except RenewalError:
            raise ValueError("not an active device of this fleet") from None
        if kid == record.fingerprint:
            signed_with, path = "current", work.current_file(device_id)
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
        self._inbox: queue.Queue[Message] = queue.Queue()
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

    def _take(self) -> list[Message]:
        """The messages queued now, up to :data:`MAX_BATCH` (waits up to 0.5 s for one)."""
        try:
            messages = [self._inbox.get(timeout=0.5)]
        except queue.Empty:
            return []
        while len(messages) < MAX_BATCH:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return messages

    def run(self) -> None:
        """Answer renewal messages until the stop event is set (in batches of what has
        arrived meanwhile)."""
        repair(self.fleet)
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
                messages = self._take()
                if not messages:
                    continue
                outcomes = self.renewals.handle_batch(messages)
                for (topic, _payload), outcome in zip(messages, outcomes, strict=True):
                    if outcome.reply is not None:
                        reply_topic = topic.removesuffix("/csr") + "/cert"
                        client.publish(reply_topic, outcome.reply, qos=1)
                if len(messages) > 1:
                    log.info("renewal batch: %d messages", len(messages))
                if any(o.reload for o in outcomes):
                    log.info("%s", self.fleet.reload_broker())
        finally:
            sdnotify.notify("STOPPING=1")
            client.disconnect()
            client.loop_stop()
