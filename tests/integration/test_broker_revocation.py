"""Revocation against a running broker, and sessions/queues that lose nothing.

Measured on Mosquitto 2.0.11 (Debian): SIGHUP makes it re-read the CRL file
(not the dynamic-security plugin's file), so ``lifecert fleet revoke`` SIGHUPs
the broker named by ``broker.pid_file`` (or runs ``broker.reload_command``) to
refuse the device's next TLS handshake, and deletes its logins over the
plugin's control topic, which disconnects it at once ("Administrative
action"), then purges its sessions by taking over their client ids.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

from protocol import topics
from provisioning import dynsec
from provisioning.cli import main
from provisioning.control import BrokerControl
from tests.fixtures.broker import (
    FleetBroker,
    Login,
    MqttPeer,
    central_login,
    enrol_bundle,
    login_for,
    mosquitto_cli,
    tls_refusal,
)
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

A, B = "term-aaaa", "term-bbbb"


def _refused_within(port: int, bundle: Path, seconds: float = 5.0) -> str:
    return wait_until(lambda: tls_refusal(port, bundle), seconds, "the broker to refuse it")


def _session_present(broker: FleetBroker, client_id: str) -> bool:
    """Whether the broker holds a session for ``client_id`` (central's login may take any id);
    one that was there ends with this look."""
    peer = MqttPeer(central_login(broker.fleet).as_client(client_id), broker.port, resume=True)
    with peer:
        return peer.session_present


def test_revoke_cli_ends_the_devices_connections_sessions_and_logins(broker: FleetBroker) -> None:
    keep = enrol_bundle(broker.fleet, A)
    gone = enrol_bundle(broker.fleet, B)
    gone_login = login_for(gone)
    assert tls_refusal(broker.port, gone) is None
    with MqttPeer(gone, broker.port, session_expiry=3600) as b:  # a session with a queued ack
        assert not b.subscribe(topics.device_topic(B, "ack")).is_failure
    with MqttPeer(central_login(broker.fleet), broker.port) as central:
        assert not central.publish(topics.device_topic(B, "ack"), b"queued").is_failure
    # a broker upgraded in place still holds the second login terminals used to have
    legacy = dynsec.legacy_login(B)
    with BrokerControl(broker.fleet.admin_login()) as control:
        made = control.run(
            [{"command": "createClient", "username": legacy, "password": gone_login.password,
              "clientid": legacy, "roles": [{"rolename": dynsec.device_role(B)}]}]
        )  # fmt: skip
        assert not dynsec.missing_ok(made)
    templates = Login(gone_login.tls, legacy, gone_login.password, legacy)
    with MqttPeer(templates, broker.port, session_expiry=3600) as still_open:
        result = CliRunner().invoke(
            main, ["fleet", "revoke", B, "--dir", str(broker.fleet_dir), "--reason", "stolen"]
        )
        assert result.exit_code == 0, result.output
        assert "sent SIGHUP to mosquitto" in result.output
        assert f"session(s) {B}, {legacy} purged" in result.output
        refusal = _refused_within(broker.port, gone)
        assert "certificate revoked" in refusal.lower()
        assert tls_refusal(broker.port, keep) is None
        assert still_open.disconnected.wait(5)
        assert still_open.disconnect_reason is not None
        assert still_open.disconnect_reason.getName() == "Administrative action"
    assert not _session_present(broker, B)
    assert not _session_present(broker, legacy)
    # even with another device's certificate, B's password logs in as nothing any more
    other_cert = Login(login_for(keep).tls, B, gone_login.password, B)
    done = mosquitto_cli("mosquitto_pub", other_cert, broker.port, "-t", "x", "-m", "x")
    assert done.returncode != 0 and "Not authorized" in done.stderr
    broker.restart()
    assert "certificate revoked" in (tls_refusal(broker.port, gone) or "").lower()
    assert not _session_present(broker, B)
    with MqttPeer(keep, broker.port) as peer:
        assert not peer.publish(topics.device_topic(A, "result"), b"still fine").is_failure


def test_reload_command_is_used_when_configured(
    broker: FleetBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = enrol_bundle(broker.fleet, B)
    assert broker.process.pid is not None
    monkeypatch.setenv("LIFECERT_FLEET__BROKER__RELOAD_COMMAND", f"kill -HUP {broker.process.pid}")
    result = CliRunner().invoke(main, ["fleet", "revoke", B, "--dir", str(broker.fleet_dir)])
    assert result.exit_code == 0, result.output
    assert "ran 'kill -HUP" in result.output
    assert "certificate revoked" in _refused_within(broker.port, gone).lower()


def test_failing_reload_command_is_reported(
    broker: FleetBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol_bundle(broker.fleet, B)
    monkeypatch.setenv("LIFECERT_FLEET__BROKER__RELOAD_COMMAND", "false")
    result = CliRunner().invoke(main, ["fleet", "revoke", B, "--dir", str(broker.fleet_dir)])
    assert result.exit_code == 1
    assert "broker.reload_command 'false' exited 1" in result.output


def test_offline_central_loses_nothing_beyond_the_default_queue_or_a_restart(
    broker: FleetBroker,
) -> None:
    """1,500 QoS 1 results while central is away (default max_queued_messages is 1,000)."""
    n = 1500
    bundle = enrol_bundle(broker.fleet, A)
    central = broker.fleet.central_tls()
    with MqttPeer(central, broker.port, client_id="central-1", session_expiry=3600) as c:
        assert c.subscribe(topics.shared_results()).value == 1
    with MqttPeer(bundle, broker.port) as a:
        infos = [
            a.client.publish(topics.device_topic(A, "result"), f"r{i}".encode(), qos=1)
            for i in range(n)
        ]
        for info in infos:
            info.wait_for_publish(10)
    broker.restart()
    got: set[bytes] = set()

    with MqttPeer(central, broker.port, client_id="central-1", session_expiry=3600) as c:

        def everything() -> bool:
            while (msg := c.expect(0)) is not None:
                got.add(msg.payload)
            return len(got) >= n

        wait_until(everything, 10, f"the {n} queued results")
    assert len(got) == n
    assert "dropped" not in broker.log_path.read_text()
