"""The generated topic rights on a real Mosquitto: each device only its own topics; central all.

Measured on Mosquitto 2.0.11 with the dynamic-security plugin: a denied QoS 1
publish gets PUBACK 0x87 "Not authorized" and the broker then closes that
connection; a subscription to another device's topic (or any wildcard) is
refused in SUBACK (0x87) and nothing is delivered on it.
"""

from pathlib import Path

import pytest

from protocol import topics
from tests.fixtures.broker import FleetBroker, MqttPeer, enrol_bundle

pytestmark = pytest.mark.integration

A, B = "term-aaaa", "term-bbbb"
QUIET = 1.0


@pytest.fixture
def two(broker: FleetBroker) -> FleetBroker:
    enrol_bundle(broker.fleet, A)
    enrol_bundle(broker.fleet, B)
    return broker


def _bundle(broker: FleetBroker, device: str) -> Path:
    return broker.fleet.paths.bundle(device)


def test_device_cannot_publish_under_another_device(two: FleetBroker) -> None:
    with MqttPeer(two.fleet.central_tls(), two.port) as central:
        assert central.subscribe(topics.all_devices("result")).value == 1
        with MqttPeer(_bundle(two, A), two.port) as a:
            denied = a.publish(topics.device_topic(B, "result"), b"forged by A")
            assert denied.is_failure and denied.getName() == "Not authorized"
        assert central.expect(QUIET) is None
        with MqttPeer(_bundle(two, A), two.port) as a:
            assert not a.publish(topics.device_topic(A, "result"), b"mine").is_failure
        got = central.expect()
        assert got is not None and (got.topic, got.payload) == (
            topics.device_topic(A, "result"),
            b"mine",
        )
        assert central.expect(QUIET) is None


@pytest.mark.parametrize("kind", ["ack", "resp", "config", "cmd"])
def test_device_cannot_write_what_central_writes(two: FleetBroker, kind: str) -> None:
    with MqttPeer(_bundle(two, A), two.port) as a:
        assert a.subscribe(topics.device_topic(A, kind)).value == 1
        with MqttPeer(_bundle(two, B), two.port) as b:
            assert b.publish(topics.device_topic(A, kind), b"forged").is_failure
        assert a.publish(topics.device_topic(A, kind), b"self-made").is_failure
        assert a.expect(QUIET) is None


def test_device_cannot_read_another_devices_ack(two: FleetBroker) -> None:
    with MqttPeer(_bundle(two, A), two.port) as a, MqttPeer(_bundle(two, B), two.port) as b:
        for topic in (
            topics.device_topic(B, "ack"),
            topics.all_devices("ack"),
            topics.all_devices("result"),
            "#",
        ):
            assert a.subscribe(topic).getName() == "Not authorized", topic
        assert b.subscribe(topics.device_topic(B, "ack")).value == 1
        with MqttPeer(two.fleet.central_tls(), two.port) as central:
            assert not central.publish(topics.device_topic(B, "ack"), b"ack for B").is_failure
        got = b.expect()
        assert got is not None and got.payload == b"ack for B"
        assert not b.publish(topics.device_topic(B, "result"), b"B's result").is_failure
        assert a.expect(QUIET) is None


def test_device_reads_its_own_topics_from_central(two: FleetBroker) -> None:
    with MqttPeer(_bundle(two, A), two.port) as a:
        for kind in ("ack", "resp", "config", "cmd"):
            assert a.subscribe(topics.device_topic(A, kind)).value == 1
        with MqttPeer(two.fleet.central_tls(), two.port) as central:
            for kind in ("ack", "resp", "config", "cmd"):
                assert not central.publish(topics.device_topic(A, kind), kind).is_failure
        received = {a.expect().topic for _ in range(4)}  # type: ignore[union-attr]
        assert received == {topics.device_topic(A, k) for k in ("ack", "resp", "config", "cmd")}


def test_central_shares_results_between_consumers(two: FleetBroker) -> None:
    central = two.fleet.central_tls()
    n = 40
    with MqttPeer(central, two.port) as c1, MqttPeer(central, two.port) as c2:
        for consumer in (c1, c2):
            assert consumer.subscribe(topics.shared_results()).value == 1
            assert consumer.subscribe(topics.shared_requests()).value == 1
        with MqttPeer(_bundle(two, A), two.port) as a, MqttPeer(_bundle(two, B), two.port) as b:
            for i in range(n // 2):
                a.publish(topics.device_topic(A, "result"), f"A{i}")
                b.publish(topics.device_topic(B, "result"), f"B{i}")
            a.publish(topics.device_topic(A, "req"), "request")
        got: list[bytes] = []
        for consumer in (c1, c2):
            while (msg := consumer.expect(QUIET)) is not None:
                got.append(msg.payload)
        assert sorted(got) == sorted(
            [f"A{i}".encode() for i in range(n // 2)]
            + [f"B{i}".encode() for i in range(n // 2)]
            + [b"request"]
        )
        assert c1.messages.qsize() == c2.messages.qsize() == 0


def test_central_reads_status_and_telemetry_of_all(two: FleetBroker) -> None:
    with MqttPeer(two.fleet.central_tls(), two.port) as central:
        central.subscribe(topics.all_devices("status"))
        central.subscribe(topics.all_devices("telemetry"))
        with MqttPeer(_bundle(two, B), two.port) as b:
            b.publish(topics.device_topic(B, "status"), topics.STATUS_ONLINE, qos=1, retain=True)
            b.publish(topics.device_topic(B, "telemetry"), b'{"cpu":1}')
        got = {m.topic for m in (central.expect(), central.expect()) if m is not None}
        assert got == {topics.device_topic(B, "status"), topics.device_topic(B, "telemetry")}
