"""Mutual TLS at the generated broker: who may connect at all."""

from dataclasses import replace
from pathlib import Path

import pytest

from protocol import limits, topics
from provisioning.fleet import Fleet
from tests.fixtures.broker import (
    FleetBroker,
    MqttPeer,
    enrol_bundle,
    login_for,
    tls_files,
    tls_refusal,
)
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


def test_enrolled_device_connects_with_its_bundle_as_its_id(broker: FleetBroker) -> None:
    bundle = enrol_bundle(broker.fleet, "term-0001")
    with MqttPeer(bundle, broker.port, client_id="term-0001") as peer:
        code = peer.publish(topics.device_topic("term-0001", "status"), "online", retain=True)
        assert not code.is_failure
    assert tls_refusal(broker.port, bundle) is None
    assert "u'term-0001'" in broker.log_path.read_text()


def test_server_cert_matches_localhost_too(broker: FleetBroker) -> None:
    bundle = enrol_bundle(broker.fleet)
    with MqttPeer(bundle, broker.port, host="localhost") as peer:
        assert peer.client.is_connected()


def test_client_cert_from_another_ca_is_refused_at_tls(broker: FleetBroker, tmp_path: Path) -> None:
    ours = login_for(enrol_bundle(broker.fleet, "term-0001"))
    other = Fleet.create(tmp_path / "other", "other", broker_port=free_port())
    stranger = other.enrol("term-0001").bundle
    # trust our broker's CA, present the other fleet's device certificate
    (stranger / "ca.pem").write_bytes(broker.fleet.paths.ca_cert.read_bytes())
    refusal = tls_refusal(broker.port, stranger)
    assert refusal is not None and "unknown ca" in refusal.lower()
    with pytest.raises(ConnectionError):
        MqttPeer(stranger, broker.port).connect(timeout=2)
    # the right password does not make up for a certificate the fleet did not sign
    with pytest.raises(ConnectionError):
        MqttPeer(replace(ours, tls=tls_files(stranger)), broker.port).connect(timeout=2)
    with MqttPeer(ours, broker.port):
        pass


def test_no_client_cert_is_refused_at_tls(broker: FleetBroker) -> None:
    refusal = tls_refusal(broker.port, None)
    assert refusal is not None and "certificate required" in refusal.lower()


def test_a_largest_result_passes_and_an_oversized_packet_does_not(broker: FleetBroker) -> None:
    device = "term-0001"
    bundle = enrol_bundle(broker.fleet, device)
    with (
        MqttPeer(broker.fleet.central_tls(), broker.port) as central,
        MqttPeer(bundle, broker.port) as peer,
    ):
        central.subscribe(topics.shared_results())
        payload = b"x" * limits.MAX_RESULT_BYTES
        assert not peer.publish(topics.device_topic(device, "result"), payload).is_failure
        got = central.expect()
        assert got is not None and got.payload == payload
        with pytest.raises(TimeoutError):
            peer.publish(topics.device_topic(device, "result"), b"x" * 200_000, timeout=2)
        assert central.expect(0.5) is None


def test_session_broker_serves_freshly_enrolled_devices(session_broker: FleetBroker) -> None:
    bundle = enrol_bundle(session_broker.fleet)
    device = bundle.name
    with MqttPeer(bundle, session_broker.port) as peer:
        assert not peer.publish(topics.device_topic(device, "telemetry"), b"{}").is_failure
