"""Upgrading a fleet whose broker ran the config from before broker logins (certificate CN as
username, an ACL file): what sessions made back then can still do, and how they are purged.

Before the fix any terminal could park a persistent session in central's share group under a
client id of its choosing, and Mosquitto 2.0.11 hands such an offline member its share of every
terminal's results (queued there, never delivered) for as long as the broker runs. Measured
here: after a restart the same broker no longer gives a shared subscription restored from its
persistence file any share (central's own consumers subscribe again on every connect), so the
restart the upgrade needs ends those shares on 2.0.11 - but the sessions themselves, their
queues and their other subscriptions stay until they expire, and a broker that restores shared
subscriptions properly would keep the shares too. ``lifecert fleet purge-sessions --all``
(broker stopped) deletes the persistence file. The new config also denies receiving by default,
so a stale subscription to ``#`` delivers nothing its owner may not read.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from protocol import topics
from provisioning import brokerconf
from provisioning.broker import MosquittoProcess
from provisioning.cli import main
from provisioning.fleet import Fleet
from tests.fixtures.broker import Login, MqttPeer, central_login, login_for, make_fleet
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

A, B = "term-aaaa", "term-bbbb"
N = 20
OLD_ACL = """user lifecert-central
topic read {root}/dev/+/result
topic read $share/central/{root}/dev/+/result
topic write {root}/dev/+/ack
pattern write {root}/dev/%u/result
pattern read {root}/dev/%u/ack
"""


def _old_fleet(tmp_path: Path) -> tuple[Fleet, MosquittoProcess]:
    """A fleet as it was before broker passwords, and its broker with the old config."""
    fleet = make_fleet(tmp_path / "fleet")
    fleet.enrol(A)
    fleet.enrol(B)
    data = json.loads(fleet.paths.registry.read_text())
    for device in data["devices"]:
        device.pop("broker_password")
    fleet.paths.registry.write_text(json.dumps(data))
    acl = fleet.paths.broker / "acl"
    acl.write_text(OLD_ACL.format(root=topics.ROOT))
    conf = fleet.paths.broker / "mosquitto.conf"
    lines = conf.read_text().splitlines()
    lines = [line for line in lines if not line.startswith("plugin")]
    old = "\n".join(lines).replace(
        "use_identity_as_username false", "use_identity_as_username true"
    )
    conf.write_text(old.replace("allow_anonymous false", f"allow_anonymous false\nacl_file {acl}"))
    port = fleet.settings.broker.port
    return fleet, MosquittoProcess(conf, port, log_path=tmp_path / "mosquitto.log")


def _cli(fleet: Fleet, *args: str) -> str:
    result = CliRunner().invoke(main, ["fleet", *args, "--dir", str(fleet.directory)])
    assert result.exit_code == 0, result.output
    return result.output


def _received(fleet: Fleet, port: int) -> set[bytes]:
    """Central consumes while B publishes N results; what central got (all N, else fails)."""
    central = central_login(fleet).as_client("lifecert-central-1")
    with MqttPeer(central, port, session_expiry=3600) as c:
        assert not c.subscribe(topics.shared_results()).is_failure
        with MqttPeer(login_for(fleet.paths.bundle(B)), port) as b:
            for i in range(N):
                assert not b.publish(topics.device_topic(B, "result"), f"r{i}").is_failure
        got: set[bytes] = set()

        def everything() -> bool:
            while (msg := c.expect(0)) is not None:
                got.add(msg.payload)
            return len(got) >= N

        wait_until(everything, 10, f"central to receive {N} results")
    return got


def _present(fleet: Fleet, port: int, client_id: str) -> bool:
    """Whether the broker holds a session for ``client_id``; it stays as it was."""
    login = central_login(fleet).as_client(client_id)
    with MqttPeer(login, port, session_expiry=30 * 86400, resume=True) as peer:
        return peer.session_present


def test_sessions_from_before_the_upgrade_stay_until_purged(tmp_path: Path) -> None:
    fleet, old_broker = _old_fleet(tmp_path)
    port = old_broker.port
    device_a = fleet.paths.bundle(A)
    cert_only = login_for(device_a)
    central_before = Login(fleet.central_tls(), None, None, "lifecert-central-1")
    with old_broker:  # the attack, before the fix: any client id, central's share group
        stale = Login(cert_only.tls, None, None, "not-central")
        with MqttPeer(stale, port, session_expiry=30 * 86400) as thief:
            assert not thief.subscribe(topics.shared_results()).is_failure
        with MqttPeer(Login(cert_only.tls, None, None, A), port, session_expiry=86400) as a:
            assert not a.subscribe("#").is_failure
        with MqttPeer(central_before, port) as c:
            assert not c.subscribe(topics.shared_results()).is_failure
            b_cert = login_for(fleet.paths.bundle(B)).tls
            with MqttPeer(Login(b_cert, None, None, B), port) as b:
                for i in range(N):
                    assert not b.publish(topics.device_topic(B, "result"), f"r{i}").is_failure
            got = set()
            while (msg := c.expect(1.0)) is not None:  # 1 s quiet: the rest never comes
                got.add(msg.payload)
        assert 0 < len(got) < N  # the thief's offline session took the rest
    # the upgrade: new config and logins; the persistence file still holds both sessions
    assert "dynamic-security.json" in _cli(fleet, "broker-config", "--port", str(port))
    conf = fleet.paths.broker / "mosquitto.conf"
    with MosquittoProcess(conf, port, log_path=old_broker.log_path):
        assert (
            "reissue --missing"
            in CliRunner().invoke(main, ["fleet", "list", "--dir", str(fleet.directory)]).output
        )
        _cli(fleet, "reissue", "--missing")
        assert _received(fleet, port) == {f"r{i}".encode() for i in range(N)}
        assert _present(fleet, port, "not-central")
        with MqttPeer(login_for(device_a), port, session_expiry=86400) as a:
            assert a.session_present  # A's old session, '#' and all
            with MqttPeer(login_for(fleet.paths.bundle(B)), port) as b:
                assert not b.publish(topics.device_topic(B, "result"), b"not for A").is_failure
            assert a.expect(1.0) is None  # receiving is denied unless granted
    assert "removed" in _cli(fleet, "purge-sessions", "--all")
    db = brokerconf.persistence_dir(conf.read_text())
    assert db is not None and not (db / brokerconf.PERSISTENCE_FILE).exists()
    with MosquittoProcess(conf, port, log_path=old_broker.log_path):
        assert not _present(fleet, port, "not-central")
        assert not _present(fleet, port, A)
        assert _received(fleet, port) == {f"r{i}".encode() for i in range(N)}


def test_purge_all_refuses_while_the_broker_runs(tmp_path: Path) -> None:
    fleet, broker = _old_fleet(tmp_path)
    _cli(fleet, "broker-config", "--port", str(broker.port))
    with MosquittoProcess(
        fleet.paths.broker / "mosquitto.conf", broker.port, log_path=broker.log_path
    ):
        result = CliRunner().invoke(
            main, ["fleet", "purge-sessions", "--all", "--dir", str(fleet.directory)]
        )
    assert result.exit_code == 1 and "the broker is running: stop it first" in result.output


def test_purge_named_sessions_at_a_running_broker(tmp_path: Path) -> None:
    fleet, broker = _old_fleet(tmp_path)
    _cli(fleet, "broker-config", "--port", str(broker.port))
    with MosquittoProcess(
        fleet.paths.broker / "mosquitto.conf", broker.port, log_path=broker.log_path
    ):
        _cli(fleet, "reissue", A)
        with MqttPeer(login_for(fleet.paths.bundle(A)), broker.port, session_expiry=3600):
            pass
        out = _cli(fleet, "purge-sessions", A, "lifecert-central-9")
        assert f"{A}: session purged" in out
        assert "lifecert-central-9: no session" in out
        with MqttPeer(login_for(fleet.paths.bundle(A)), broker.port, session_expiry=1) as a:
            assert not a.session_present
