"""Who may be whom at the generated broker, tried the way an attacker would: ``mosquitto_sub``
and ``mosquitto_pub`` holding terminal A's certificate, key and broker password.

Measured on Mosquitto 2.0.11 with the dynamic-security plugin: a login refused at CONNECT gets
CONNACK 0x87 "Not authorized" (MQTT 5; 5 "not authorised" in 3.1.1) and the tools exit non-zero;
a refused SUBSCRIBE gets SUBACK 0x87 and ``mosquitto_sub`` says "All subscription requests were
denied." (exit code 0); a refused PUBLISH gets PUBACK 0x87 ("Publish 1 failed: Not authorized.",
exit code 0).
"""

import subprocess

import pytest

from protocol import topics
from provisioning.dynsec import legacy_login
from tests.fixtures.broker import (
    FleetBroker,
    Login,
    MqttPeer,
    admin_login,
    central_login,
    enrol_bundle,
    login_for,
    mosquitto_cli,
)

pytestmark = pytest.mark.integration

A, B = "term-aaaa", "term-bbbb"
QUIET = 1.0
DENIED_SUB = "All subscription requests were denied."
CENTRAL_ID = "lifecert-central-1"


@pytest.fixture
def two(broker: FleetBroker) -> FleetBroker:
    enrol_bundle(broker.fleet, A)
    enrol_bundle(broker.fleet, B)
    return broker


def _device(broker: FleetBroker, device: str) -> Login:
    return login_for(broker.fleet.paths.bundle(device))


def _refused(done: subprocess.CompletedProcess[str]) -> bool:
    """CONNACK refused: exit code non-zero and the broker's words."""
    return done.returncode != 0 and (
        "Not authorized" in done.stderr or "not authorised" in done.stderr
    )


def test_a_device_cannot_join_centrals_shared_subscription(two: FleetBroker) -> None:
    attacker = _device(two, A)
    with MqttPeer(central_login(two.fleet), two.port, client_id=CENTRAL_ID) as central:
        assert not central.subscribe(topics.shared_results()).is_failure
        for topic in (
            topics.shared_results(),
            topics.shared_requests(),
            "$share/mine/" + topics.all_devices("result"),
            topics.all_devices("result"),
            "#",
        ):
            done = mosquitto_cli(
                "mosquitto_sub", attacker, two.port, "-t", topic, "-c", "-x", "2592000", "-W", "2"
            )
            assert DENIED_SUB in done.stderr, (topic, done.stderr)
        with MqttPeer(_device(two, B), two.port) as b:
            for i in range(20):
                assert not b.publish(topics.device_topic(B, "result"), f"r{i}").is_failure
        got = set()
        while (msg := central.expect(QUIET)) is not None:
            got.add(msg.payload)
    assert got == {f"r{i}".encode() for i in range(20)}  # no share went to the attacker


def test_a_device_cannot_take_centrals_client_id(two: FleetBroker) -> None:
    central = central_login(two.fleet).as_client(CENTRAL_ID)
    with MqttPeer(central, two.port, session_expiry=3600) as c:
        assert not c.subscribe(topics.shared_results()).is_failure
    with MqttPeer(_device(two, B), two.port) as b:  # queued in central's offline session
        assert not b.publish(topics.device_topic(B, "result"), b"queued").is_failure
    for version in ("mqttv5", "mqttv311"):
        done = mosquitto_cli(
            "mosquitto_pub",
            _device(two, A).as_client(CENTRAL_ID),
            two.port,
            "-t",
            topics.device_topic(A, "result"),
            "-m",
            "x",
            "-V",
            version,
        )
        assert _refused(done), done.stderr
    with MqttPeer(central, two.port, session_expiry=3600) as c:
        assert c.session_present
        got = c.expect()
        assert got is not None and got.payload == b"queued"
        assert mosquitto_cli(
            "mosquitto_pub",
            _device(two, A).as_client(CENTRAL_ID),
            two.port,
            "-t",
            topics.device_topic(A, "result"),
            "-m",
            "x",
        ).returncode
        assert c.client.is_connected()  # not kicked off by the attempt


def test_a_device_cannot_take_another_devices_client_id(two: FleetBroker) -> None:
    attacker = _device(two, A)
    a_password = attacker.password
    with MqttPeer(_device(two, B), two.port, session_expiry=3600) as b:
        assert not b.subscribe(topics.device_topic(B, "ack")).is_failure
        for login in (
            attacker.as_client(B),
            attacker.as_client(legacy_login(B)),
            attacker.as_client(legacy_login(A)),  # right device, wrong login for that id
            Login(attacker.tls, legacy_login(A), a_password, legacy_login(A)),  # none any more
            attacker.as_client("anything-else"),
            Login(attacker.tls, B, a_password, B),  # B's name with A's password
            Login(attacker.tls, "lifecert-central", a_password, "lifecert-central"),
            Login(attacker.tls, None, None, A),  # certificate only
        ):
            done = mosquitto_cli(
                "mosquitto_pub", login, two.port, "-t", topics.device_topic(A, "result"), "-m", "x"
            )
            assert _refused(done), (login.username, login.client_id, done.stderr)
        with MqttPeer(central_login(two.fleet), two.port) as central:
            assert not central.publish(topics.device_topic(B, "ack"), b"for B").is_failure
        got = b.expect()
        assert got is not None and got.payload == b"for B"
        assert b.client.is_connected()
    with MqttPeer(_device(two, B), two.port, session_expiry=3600) as b:
        assert b.session_present  # B's session was never wiped


def test_own_ids_work_and_central_still_works(two: FleetBroker) -> None:
    device = _device(two, A)
    central = central_login(two.fleet)
    with MqttPeer(central, two.port) as c:
        assert not c.subscribe(topics.shared_results()).is_failure
        assert not c.subscribe(topics.shared_requests()).is_failure
        done = mosquitto_cli(
            "mosquitto_pub",
            device,
            two.port,
            "-t",
            topics.device_topic(A, "result"),
            "-m",
            "hi",
            "-q",
            "1",
        )
        assert done.returncode == 0 and not done.stderr, done.stderr
        got = c.expect()
        assert got is not None and got.payload == b"hi"
        done = mosquitto_cli(
            "mosquitto_pub", device, two.port, "-t", topics.device_topic(A, "req"), "-m", "rq"
        )
        assert done.returncode == 0 and not done.stderr, done.stderr
        got = c.expect()
        assert got is not None and got.payload == b"rq"
    # central writes A's ack; A (by mosquitto_sub under its own id) reads it, retained or not
    done = mosquitto_cli(
        "mosquitto_pub",
        central,
        two.port,
        "-t",
        topics.device_topic(A, "config"),
        "-m",
        "cfg",
        "-r",
        "-q",
        "1",
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    done = mosquitto_cli(
        "mosquitto_sub",
        device,
        two.port,
        "-t",
        topics.device_topic(A, "config"),
        "-C",
        "1",
        "-W",
        "5",
    )
    assert done.stdout.strip() == "cfg", done.stderr


def test_a_device_cannot_drive_the_brokers_control_topic(two: FleetBroker) -> None:
    command = '{"commands":[{"command":"createClient","username":"evil","password":"x"}]}'
    done = mosquitto_cli(
        "mosquitto_pub",
        _device(two, A),
        two.port,
        "-t",
        "$CONTROL/dynamic-security/v1",
        "-m",
        command,
        "-q",
        "1",
    )
    assert "Not authorized" in done.stderr
    done = mosquitto_cli("mosquitto_sub", _device(two, A), two.port, "-t", "$CONTROL/#", "-W", "2")
    assert DENIED_SUB in done.stderr
    with MqttPeer(admin_login(two.fleet), two.port) as admin:
        assert not admin.subscribe("$CONTROL/dynamic-security/v1/response").is_failure
        admin.publish("$CONTROL/dynamic-security/v1", '{"commands":[{"command":"listClients"}]}')
        reply = admin.expect()
    assert reply is not None and b'"evil"' not in reply.payload and b'"term-aaaa"' in reply.payload


def test_the_admin_login_reads_nothing_but_control_answers(two: FleetBroker) -> None:
    with MqttPeer(admin_login(two.fleet), two.port) as admin:
        assert admin.subscribe(topics.all_devices("result")).is_failure
        assert admin.subscribe(topics.shared_results()).is_failure
        assert admin.publish(topics.device_topic(A, "ack"), b"forged").is_failure
