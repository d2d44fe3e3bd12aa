"""``lifecert-edge run`` against a real Mosquitto with the fleet's TLS + ACL config.

Central's side is played by a test client with central's certificate and
signing key, so these tests exercise only the terminal: publish, re-send,
ack verification, status and last will, and the one broker link that also
carries the terminal's requests to central.
"""

import datetime as dt
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge import config as edge_config
from edge.adapters import keys as edge_keys
from edge.adapters.outbox import Status
from edge.adapters.recorder import Recorder
from edge.bootstrap import open_link, open_outbox
from edge.session.model import assisted
from protocol import messages, signing, topics
from protocol.messages import Ack, AckBatch, Result, Telemetry
from tests.fixtures.broker import FleetBroker, MqttPeer, enrol_bundle
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RETIREE = "11010519491231002X"
TIMEOUT = 10.0


class EdgeProcess:
    """``python -m edge --config BUNDLE/edge.toml run`` as a child process."""

    def __init__(self, bundle: Path, **env: str) -> None:
        self.bundle = bundle
        self.log_path = bundle / "edge.log"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "--config", str(self.bundle / "edge.toml"), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
            )

    def signal(self, signum: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(TIMEOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)


class Central:
    """Central's MQTT identity: sees results and status, sends signed acks."""

    def __init__(self, broker: FleetBroker, device_id: str) -> None:
        self.device_id = device_id
        self.peer = MqttPeer(broker.fleet.central_tls(), broker.port)
        self.key = signing.load_private_key(broker.fleet_dir / "central" / "sign.key")
        self.result_topic = topics.device_topic(device_id, "result")
        self.status_topic = topics.device_topic(device_id, "status")
        self.ack_topic = topics.device_topic(device_id, "ack")
        self.telemetry_topic = topics.device_topic(device_id, "telemetry")
        self._seen: defaultdict[str, deque[bytes]] = defaultdict(deque)

    def __enter__(self) -> "Central":
        self.peer.connect()
        for topic in (self.result_topic, self.status_topic, self.telemetry_topic):
            assert not self.peer.subscribe(topic).is_failure
        return self

    def __exit__(self, *exc: object) -> None:
        self.peer.close()

    def next_on(self, topic: str, timeout: float = TIMEOUT) -> bytes:
        """The payload of the next message on ``topic`` (others wait for their turn)."""
        deadline = time.monotonic() + timeout
        while not self._seen[topic]:
            left = deadline - time.monotonic()
            msg = self.peer.expect(left) if left > 0 else None
            if msg is None:
                raise AssertionError(f"nothing on {topic} within {timeout}s")
            self._seen[msg.topic].append(bytes(msg.payload))
        return self._seen[topic].popleft()

    def ack(self, result_id: str, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        key = key or self.key
        ack = Ack(result_id=uuid.UUID(result_id), device_id=self.device_id, status="applied")
        body = AckBatch(device_id=self.device_id, acks=(ack,))
        token = signing.Signer(key, signing.key_fingerprint(key.public_key())).sign(
            messages.encode(body)
        )
        assert not self.peer.publish(self.ack_topic, token).is_failure


@pytest.fixture
def bundle(session_broker: FleetBroker) -> Path:
    return enrol_bundle(session_broker.fleet)


@pytest.fixture
def edge(bundle: Path) -> Iterator[Callable[..., EdgeProcess]]:
    started: list[EdgeProcess] = []

    def start(**env: str) -> EdgeProcess:
        process = EdgeProcess(bundle, **env)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def record(bundle: Path) -> str:
    cfg = edge_config.load(bundle / "edge.toml")
    with open_outbox(cfg) as outbox:
        return Recorder(outbox, edge_keys.load(cfg)).record(assisted(RETIREE, "desk-07")).result_id


def status_of(bundle: Path, result_id: str) -> tuple[Status, int]:
    with open_outbox(edge_config.load(bundle / "edge.toml")) as outbox:
        row = outbox.get(result_id)
    assert row is not None
    return row.status, row.attempts


def stored_jws(bundle: Path, result_id: str) -> str:
    cfg = edge_config.load(bundle / "edge.toml")
    with open_outbox(cfg) as outbox:
        return next(p.jws for p in outbox.due(1000) if p.result_id == result_id)


def test_publishes_outbox_and_marks_delivered_on_central_ack(
    session_broker: FleetBroker, bundle: Path, edge: Callable[..., EdgeProcess]
) -> None:
    device_id = bundle.name
    first = record(bundle)
    expected = stored_jws(bundle, first)
    with Central(session_broker, device_id) as central:
        service = edge(LIFECERT_EDGE__LINK__TELEMETRY_INTERVAL_S="0.1")
        assert central.next_on(central.status_topic) == b"online"
        payload = central.next_on(central.result_topic)
        assert payload.decode() == expected
        verifier = signing.Verifier(signing.load_public_key(bundle / "device.pem"))
        result = messages.decode(Result, verifier.verify(payload))
        assert (str(result.result_id), result.device_id, result.seq) == (first, device_id, 1)

        central.ack(first)
        wait_until(lambda: status_of(bundle, first)[0] is Status.DELIVERED)
        health = messages.decode(Telemetry, central.next_on(central.telemetry_topic))
        while health.outbox_delivered == 0:
            health = messages.decode(Telemetry, central.next_on(central.telemetry_topic))
        assert health.device_id == device_id
        assert (health.outbox_pending, health.outbox_rejected, health.outbox_inflight) == (0, 0, 0)
        assert health.oldest_pending_s is None and health.sessions_today == 1
        assert abs((health.device_time - dt.datetime.now(dt.UTC)).total_seconds()) < 5
        assert health.disk_free_bytes and health.software

        cli = subprocess.run(
            [
                *(sys.executable, "-m", "edge", "--config", str(bundle / "edge.toml")),
                *("certify-assisted", "--retiree", RETIREE, "--staff", "desk-07", "--json"),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert '"seq": 2' in cli.stdout
        second = messages.decode(Result, verifier.verify(central.next_on(central.result_topic)))
        assert second.seq == 2

        service.proc.kill()  # type: ignore[union-attr]
        assert central.next_on(central.status_topic) == b"offline"
    assert "eyJ" not in service.log()


def test_resends_until_a_genuine_ack_and_stops_cleanly(
    session_broker: FleetBroker, bundle: Path, edge: Callable[..., EdgeProcess]
) -> None:
    result_id = record(bundle)
    with Central(session_broker, bundle.name) as central:
        service = edge(LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S="0.5", LIFECERT_EDGE__LOG_JSON="false")
        first = central.next_on(central.result_topic)
        again = central.next_on(central.result_topic, timeout=3)
        assert again == first
        central.ack(result_id, key=ec.generate_private_key(ec.SECP256R1()))
        wait_until(lambda: "ack refused" in service.log())
        assert status_of(bundle, result_id)[0] is Status.PENDING
        central.ack(result_id)
        wait_until(lambda: status_of(bundle, result_id)[0] is Status.DELIVERED)
        attempts = status_of(bundle, result_id)[1]
        assert attempts >= 2
        assert service.signal(signal.SIGTERM) == 0
        assert central.next_on(central.status_topic) == b"online"
        assert central.next_on(central.status_topic) == b"stopped"
    assert status_of(bundle, result_id)[1] == attempts


def test_ready_watchdog_and_stopping_even_offline(
    tmp_path: Path, bundle: Path, edge: Callable[..., EdgeProcess]
) -> None:
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        sock.settimeout(TIMEOUT)
        service = edge(
            NOTIFY_SOCKET=str(notify_path),
            WATCHDOG_USEC="200000",
            LIFECERT_EDGE__MQTT__PORT=str(free_port()),
        )
        assert sock.recv(4096).decode().splitlines()[0] == "READY=1"
        assert [sock.recv(4096) for _ in range(3)] == [b"WATCHDOG=1"] * 3
        assert service.signal(signal.SIGTERM) == 0
        rest = []
        while b"STOPPING=1" not in rest:
            rest.append(sock.recv(4096))
    assert "cannot reach the broker" in service.log()


def test_outbox_locked_by_another_process_delays_but_loses_no_ack(
    session_broker: FleetBroker, bundle: Path, edge: Callable[..., EdgeProcess]
) -> None:
    result_id = record(bundle)
    with Central(session_broker, bundle.name) as central:
        service = edge(LIFECERT_EDGE__OUTBOX__BUSY_TIMEOUT_S="0.2")
        central.next_on(central.result_topic)
        holder = sqlite3.connect(bundle / "var" / "edge.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            central.ack(result_id)
            wait_until(lambda: "outbox unavailable" in service.log())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_until(lambda: status_of(bundle, result_id)[0] is Status.DELIVERED)
        assert service.proc is not None and service.proc.poll() is None


def _correlated(correlation: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = correlation
    return props


def test_one_link_carries_results_acks_requests_and_replies(
    session_broker: FleetBroker, bundle: Path
) -> None:
    """The terminal's only broker connection: a request answered by central (a stray reply
    ignored) while a result goes out and its ack comes back; the broker saw one client for
    the device, under the device's own id (no second login)."""
    device_id, cfg = bundle.name, edge_config.load(bundle / "edge.toml")
    result_id = record(bundle)
    acks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    replies: queue.SimpleQueue[bytes | BaseException] = queue.SimpleQueue()

    def ask(correlation: bytes, timeout: float) -> None:
        try:
            replies.put(link.request(b'{"op": "face_template"}', correlation, timeout))
        except (TimeoutError, ConnectionError) as exc:
            replies.put(exc)

    with (
        Central(session_broker, device_id) as central,
        MqttPeer(session_broker.fleet.central_tls(), session_broker.port) as responder,
        open_link(cfg, on_ack=acks.put) as link,
    ):
        req = topics.device_topic(device_id, "req")
        assert not responder.subscribe(req, qos=0).is_failure
        link.start()
        asking = threading.Thread(target=ask, args=(b"\x01" * 16, TIMEOUT))
        asking.start()
        msg = responder.expect(TIMEOUT)
        assert msg is not None and msg.topic == req
        assert msg.properties.ResponseTopic == topics.device_topic(device_id, "resp")
        assert msg.properties.CorrelationData == b"\x01" * 16
        resp = msg.properties.ResponseTopic
        responder.publish(resp, b"not yours", qos=0, properties=_correlated(b"\x02" * 16))
        assert link.publish_result(stored_jws(bundle, result_id))
        responder.publish(resp, b"the answer", qos=0, properties=_correlated(b"\x01" * 16))
        asking.join(TIMEOUT)
        assert replies.get_nowait() == b"the answer"

        payload = central.next_on(central.result_topic)
        assert payload.decode() == stored_jws(bundle, result_id)
        central.ack(result_id)
        assert b"." in acks.get(timeout=TIMEOUT)  # central's signed ack, on the same link

        ask(b"\x03" * 16, 0.5)  # nobody answers this one
        assert isinstance(replies.get_nowait(), TimeoutError)

    log = session_broker.log_path.read_text()
    clients = re.findall(r"New client connected from \S+ as (\S+) \(", log)
    assert [c for c in clients if c.startswith(device_id)] == [device_id]
