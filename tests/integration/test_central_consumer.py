"""Central's consumer against a real Mosquitto (the fleet's generated TLS + ACL config).

A device publishes a signed result; central applies it and a signed ack that
verifies with central's public key arrives on the device's ack topic. Template
requests travel over the same connection.
"""

import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central import config
from central.bootstrap import Central, Service
from central.certification import ingest
from central.certification.devices import Standing
from central.people import roster
from central.store import db, schema
from common import idnumber
from protocol import messages, signing, topics
from protocol.messages import Ack, AckBatch, AckStatus
from provisioning.fleet import Fleet
from tests.fixtures.broker import (
    FleetBroker,
    MqttPeer,
    central_login,
    enrol_bundle,
    login_for,
)
from tests.fixtures.database import known_staff
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

RETIREE = idnumber.make("110105", dt.date(1950, 3, 7), 124)


def _central_config(fleet: Fleet, db_url: str, **extra: str) -> config.CentralConfig:
    env = {"LIFECERT_CENTRAL__DATABASE__URL": db_url} | extra
    return config.load(fleet.directory / "central" / "central.toml", environ=env)


def _result(device_id: str, seq: int, **overrides: Any) -> messages.Result:
    values: dict[str, Any] = {
        "result_id": uuid.uuid4(),
        "device_id": device_id,
        "seq": seq,
        "device_time": dt.datetime.now(dt.UTC),
        "retiree_id": RETIREE,
        "method": "assisted",
        "decision": "pass",
        "channel": "desk",
        "assisted": {"staff_id": "desk-1"},
    } | overrides
    return messages.Result.model_validate(values)


class Device:
    """A test terminal: its bundle's key signs results; a peer publishes and reads acks."""

    def __init__(self, bundle: Path, port: int, fleet: Fleet) -> None:
        self.id = bundle.name
        cert = x509.load_pem_x509_certificate((bundle / "device.pem").read_bytes())
        self.signer = signing.Signer(
            signing.load_private_key(bundle / "device.key"), signing.cert_fingerprint(cert)
        )
        self.central = signing.Verifier(
            signing.load_public_key(fleet.directory / "central" / "sign.pub.pem")
        )
        self.peer = MqttPeer(bundle, port).connect()
        self._acks: deque[Ack] = deque()
        assert not self.peer.subscribe(f"lifecert/v1/dev/{self.id}/ack").is_failure

    def send(self, result: messages.Result | bytes) -> bytes:
        payload = (
            result
            if isinstance(result, bytes)
            else self.signer.sign(messages.encode(result)).encode()
        )
        assert not self.peer.publish(f"lifecert/v1/dev/{self.id}/result", payload).is_failure
        return payload

    def ack(self, timeout: float = 10.0) -> Ack | None:
        """The next ack, from the signed batches central sends."""
        if not self._acks:
            msg = self.peer.expect(timeout)
            if msg is None:
                return None
            batch = messages.decode(AckBatch, self.central.verify(msg.payload))
            assert batch.device_id == self.id
            self._acks.extend(batch.acks)
        return self._acks.popleft()


@pytest.fixture
def running(broker: FleetBroker, db_url: str) -> Iterator[dict[str, Any]]:
    """Central's consumer running in a thread against the fleet's broker and ``db_url``."""
    bundles = [enrol_bundle(broker.fleet, f"term-000{i}") for i in (1, 2)]
    cfg = _central_config(broker.fleet, db_url)
    stop = threading.Event()
    consumer = Central(cfg).consumer(stop)
    engine = consumer.ingestor.engine
    known_staff(engine, "desk-1")
    roster.upsert(
        engine,
        [
            {
                "id_number": RETIREE,
                "name": "Wang Fang",
                "sex": "F",
                "birth_date": dt.date(1950, 3, 7),
            }
        ],
        "test",
        dt.datetime.now(dt.UTC),
    )
    thread = threading.Thread(target=consumer.run, name="central", daemon=True)
    thread.start()
    assert consumer.ready.wait(10), "consumer did not connect and subscribe"
    devices = [Device(b, broker.port, broker.fleet) for b in bundles]
    yield {
        "consumer": consumer,
        "engine": engine,
        "broker": broker,
        "devices": devices,
        "stop": stop,
        "thread": thread,
        "config": cfg,
    }
    for device in devices:
        device.peer.close()
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def _count(engine: Any, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _ask_templates(fleet: Fleet, bundle: Path, port: int, n: int = 1) -> list[messages.Reply]:
    """``n`` template requests for ``RETIREE`` on the device's connection (its one login), as
    a terminal makes them; central's verified replies (none for a request nobody answered)."""
    device = bundle.name
    login = login_for(bundle)
    verifier = signing.Verifier(
        signing.load_public_key(fleet.directory / "central" / "sign.pub.pem")
    )
    resp = topics.device_topic(device, "resp")
    replies = []
    with MqttPeer(login, port) as peer:
        assert not peer.subscribe(resp).is_failure
        for _ in range(n):
            request_id = uuid.uuid4().hex
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic, props.CorrelationData = resp, request_id.encode()
            body = {"op": "face_template", "request_id": request_id, "retiree_id": RETIREE}
            peer.publish(
                topics.device_topic(device, "req"), json.dumps(body), qos=0, properties=props
            )
            msg = peer.expect(3)
            if msg is not None:
                assert msg.properties.CorrelationData == request_id.encode()
                replies.append(messages.decode(messages.Reply, verifier.verify(msg.payload)))
    return replies


def _central_clients(broker: FleetBroker) -> list[str]:
    """The client ids central's login connected with, in the broker's log."""
    log = broker.log_path.read_text()
    return re.findall(r"New client connected from \S+ as (\S+) \(.*u'lifecert-central'\)", log)


def test_result_applied_and_signed_ack_arrives(running: dict[str, Any]) -> None:
    engine, device = running["engine"], running["devices"][0]
    result = _result(device.id, 1)
    payload = device.send(result)
    ack = device.ack()
    assert ack is not None and ack.status is AckStatus.APPLIED
    assert ack.result_id == result.result_id and ack.device_id == device.id
    assert (
        ack.certified_until is not None and ack.certified_until.year == result.device_time.year + 1
    )
    with engine.connect() as conn:
        until = conn.scalar(sa.select(schema.retirees.c.certified_until))
    assert until == ack.certified_until

    device.send(payload)  # the terminal re-sends (ack lost): no second effect
    again = device.ack()
    assert again is not None and again.status is AckStatus.DUPLICATE
    assert _count(engine, schema.results) == 1


def test_bad_messages_are_quarantined_and_consumer_lives(running: dict[str, Any]) -> None:
    engine, consumer = running["engine"], running["consumer"]
    device = running["devices"][1]
    good = device.signer.sign(messages.encode(_result(device.id, 1)))
    head, body, sig = good.split(".")
    device.send(b"not a jws at all")
    device.send(f"{head}.{body}.{sig[:-4]}AAAA".encode())  # forged signature
    assert device.ack(timeout=1.5) is None  # nobody to trust: no ack
    device.send(_result(device.id, 2, retiree_id=idnumber.make("440106", dt.date(1952, 1, 1), 55)))
    rejected = device.ack()
    assert rejected is not None and rejected.status is AckStatus.REJECTED
    assert rejected.reason == "unknown_retiree"
    device.send(_result(device.id, 3))
    applied = device.ack()
    assert applied is not None and applied.status is AckStatus.APPLIED
    with engine.connect() as conn:
        reasons = sorted(conn.scalars(sa.select(schema.quarantine.c.reason)))
    assert reasons == ["bad_signature", "malformed", "unknown_retiree"]
    assert consumer.counts["quarantined"] == 2 and consumer.counts["applied"] == 1


def _reasons(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(schema.quarantine.c.reason)))


def _poison(device: Device, **fields: Any) -> bytes:
    """A result with raw JSON ``fields`` replaced, signed with the device's key."""
    body = json.loads(messages.encode(_result(device.id, 1))) | fields
    return device.signer.sign(json.dumps(body).encode()).encode()


def test_poison_messages_never_stop_central(
    running: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed poison of each kind, then a good result: the good one is applied; a message
    that raises inside central is quarantined as internal_error and PUBACKed, so a new
    consumer on the same broker session does not get it again."""
    engine, consumer = running["engine"], running["consumer"]
    bad, good = running["devices"]
    token = bad.signer.sign(messages.encode(_result(bad.id, 7)))
    for payload in (
        _poison(bad, seq=2**64),
        _poison(bad, device_time="9999-12-31T23:59:59-23:59"),
        _poison(bad, assisted={"staff_id": "desk\x00-1"}),
        _poison(bad, seq=2**63, assisted={"staff_id": "desk-1", "note": "x" * 600}),
        token.encode() + b"\n",
        b"\x00" * 70_000,
    ):
        bad.send(payload)

    def buggy(*_: Any) -> dt.date:
        raise RuntimeError("a bug in central met by one message")

    monkeypatch.setattr(ingest, "certified_until", buggy)
    bad.send(_result(bad.id, 8))
    wait_until(lambda: "internal_error" in _reasons(engine), what="the bug's quarantine row")
    monkeypatch.undo()
    good.send(_result(good.id, 1))
    ack = good.ack()
    assert ack is not None and ack.status is AckStatus.APPLIED
    assert _count(engine, schema.results) == 1
    assert _reasons(engine) == ["internal_error", "malformed", "oversize"] + ["schema"] * 4
    assert consumer.counts["applied"] == 1

    # a new consumer on central's session: nothing left to redeliver but the next result
    running["stop"].set()
    running["thread"].join(10)
    again = Central(running["config"]).consumer(threading.Event())
    thread = threading.Thread(target=again.run, daemon=True)
    thread.start()
    try:
        good.send(_result(good.id, 2))
        ack = good.ack()
        assert ack is not None and ack.status is AckStatus.APPLIED
        assert dict(again.counts) == {"applied": 1, "batches": 1}
    finally:
        again.stop.set()
        thread.join(10)


def test_revoked_device_refused_by_running_central(running: dict[str, Any]) -> None:
    broker, engine = running["broker"], running["engine"]
    device = running["devices"][0]
    device.send(_result(device.id, 1))
    assert device.ack() is not None
    broker.fleet.revoke(device.id)  # the broker keeps the open connection until reloaded
    trust, kid = running["consumer"].ingestor.trust, device.signer.kid
    wait_until(  # central re-reads the CRL when due, on the look-up each message makes
        lambda: (
            (found := trust.by_kid(kid)) is not None
            and found.standing(trust.revoked, dt.datetime.now(dt.UTC)) is Standing.REVOKED
        ),
        what="the running central to re-read the CRL",
    )
    queued = _result(device.id, 2)
    device.send(queued)
    ack = device.ack()  # refused, recorded for staff, and acked so it is not re-sent
    assert ack is not None and ack.status is AckStatus.REJECTED
    assert (ack.result_id, ack.reason) == (queued.result_id, "revoked_device")
    with engine.connect() as conn:
        assert conn.scalars(sa.select(schema.quarantine.c.reason)).all() == ["revoked_device"]
    assert _count(engine, schema.results) == 1


def _notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(15)
    return sock


def _wait_for(sock: socket.socket, word: str) -> list[str]:
    seen: list[str] = []
    while word not in seen:
        seen += sock.recv(4096).decode().splitlines()
    return seen


def test_cli_run_notifies_systemd_and_stops_on_sigterm(
    broker: FleetBroker, db_url: str, tmp_path: Path
) -> None:
    cfg_path = broker.fleet.directory / "central" / "central.toml"
    env = os.environ | {
        "LIFECERT_CENTRAL__DATABASE__URL": db_url,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "400000",
    }
    bundle = enrol_bundle(broker.fleet, "term-0004")
    sock = _notify_socket(tmp_path / "notify")
    proc = subprocess.Popen(
        [sys.executable, "-m", "central", "--config", str(cfg_path), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        env["WATCHDOG_PID"] = str(proc.pid)
        assert "READY=1" in _wait_for(sock, "READY=1")
        assert "WATCHDOG=1" in _wait_for(sock, "WATCHDOG=1")
        engine = Central(_central_config(broker.fleet, db_url)).engine
        known_staff(engine, "desk-1")
        roster.upsert(
            engine,
            [{"id_number": RETIREE, "name": "W", "sex": "F", "birth_date": dt.date(1950, 3, 7)}],
            "test",
            dt.datetime.now(dt.UTC),
        )
        device = Device(bundle, broker.port, broker.fleet)
        device.send(_result(device.id, 1))
        ack = device.ack()
        assert ack is not None and ack.status is AckStatus.APPLIED
        device.peer.close()
        (reply,) = _ask_templates(broker.fleet, bundle, broker.port)
        assert reply.status == "ok" and reply.data["template"] is None  # no face pass yet
        assert _central_clients(broker) == ["lifecert-central"]  # results and requests
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in _wait_for(sock, "STOPPING=1")
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out.decode()
        assert b'"level": "INFO"' in out and b"Traceback" not in out
        engine.dispose()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_no_puback_before_commit_broker_redelivers(broker: FleetBroker, tmp_path: Path) -> None:
    """A batch that cannot commit is not PUBACKed: after a restart the broker redelivers it."""
    url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    bundle = enrol_bundle(broker.fleet, "term-0005")
    cfg = _central_config(broker.fleet, url, LIFECERT_CENTRAL__DATABASE__BUSY_TIMEOUT_S="0.2")
    engine = Central(cfg).engine
    db.upgrade(engine)
    known_staff(engine, "desk-1")
    roster.upsert(
        engine,
        [{"id_number": RETIREE, "name": "W", "sex": "F", "birth_date": dt.date(1950, 3, 7)}],
        "test",
        dt.datetime.now(dt.UTC),
    )

    def start() -> tuple[threading.Event, threading.Thread, Any]:
        stop = threading.Event()
        consumer = Central(cfg).consumer(stop)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        assert consumer.ready.wait(10)
        return stop, thread, consumer

    device = Device(bundle, broker.port, broker.fleet)
    stop, thread, first = start()
    blocker = sqlite3.connect(tmp_path / "central.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    result = _result(device.id, 1)
    device.send(result)
    assert device.ack(timeout=2.0) is None  # central cannot commit, so it does not ack
    stop.set()
    thread.join(10)
    assert first.counts["batches"] == 0 and not thread.is_alive()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert _count(engine, schema.results) == 0

    stop, thread, _ = start()  # same client id: the broker kept the session
    ack = device.ack()
    assert ack is not None and ack.status is AckStatus.APPLIED
    assert ack.result_id == result.result_id
    assert _count(engine, schema.results) == 1
    stop.set()
    thread.join(10)
    device.peer.close()
    engine.dispose()


def test_a_stopped_central_leaves_its_share_of_template_requests(
    broker: FleetBroker, tmp_path: Path
) -> None:
    """The broker keeps a stopped central's session, and with it its subscriptions: results
    wait there (QoS 1), but template requests (QoS 0) handed to it would be lost. A clean
    stop leaves the request subscription, so the instance still running answers them all."""
    cfg = _central_config(broker.fleet, f"sqlite:///{tmp_path / 'central.sqlite'}")
    bundle = enrol_bundle(broker.fleet, "term-0006")
    running: list[tuple[threading.Event, threading.Thread]] = []
    for client_id in ("central-a", "central-b"):
        stop = threading.Event()
        service = Service(Central(cfg), stop, client_id)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        assert service.consumer.ready.wait(10) and service.templates.ready.wait(10)
        running.append((stop, thread))
    try:
        assert len(_ask_templates(broker.fleet, bundle, broker.port, 4)) == 4
        stop_b, thread_b = running.pop()
        stop_b.set()
        thread_b.join(10)
        replies = _ask_templates(broker.fleet, bundle, broker.port, 6)
        assert [r.error for r in replies] == ["unknown_retiree"] * 6  # every one answered
    finally:
        for stop, thread in running:
            stop.set()
            thread.join(10)


def test_a_kept_subscription_nothing_reads_is_acked_and_logged(
    broker: FleetBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A session may keep a subscription from another version of central: what arrives on
    it reaches no service, and a QoS 1 message is PUBACKed (never redelivered, never left
    holding a place in the broker's window) and logged."""
    cfg = _central_config(broker.fleet, f"sqlite:///{tmp_path / 'central.sqlite'}")
    old = central_login(broker.fleet).as_client("central-old")
    with MqttPeer(old, broker.port, session_expiry=600) as before:
        assert not before.subscribe(topics.all_devices("status"), qos=1).is_failure
    stop = threading.Event()
    consumer = Central(cfg).consumer(stop, "central-old")
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert consumer.ready.wait(10)
        bundle = enrol_bundle(broker.fleet, "term-0007")
        with MqttPeer(bundle, broker.port) as device:
            assert not device.publish(topics.device_topic(bundle.name, "status"), "x").is_failure
        wait_until(lambda: "matches no route" in caplog.text, what="the warning")
    finally:
        stop.set()
        thread.join(10)
    assert f"{bundle.name}/status" in caplog.text
    with MqttPeer(old, broker.port, resume=True) as after:  # the session, taken over
        assert after.session_present and after.expect(1) is None  # acked: nothing re-sent
