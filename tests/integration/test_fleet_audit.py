"""The fleet audit against a real broker's log and central's real tables.

The broker log comes from Mosquitto itself while test clients misbehave as attackers
and broken terminals would: a revoked terminal retrying, a revoked one let in because
the broker was not reloaded, one login used from two loopback addresses at once, a
client id fought over, wrong passwords. The results are rows in a migrated database.
"""

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central.cli import main as central_main
from central.store import schema
from common import idnumber
from tests.fixtures.broker import FleetBroker, Login, MqttPeer, login_for, mqtt_client, tls_refusal
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _misbehave(broker: FleetBroker) -> None:
    fleet, port = broker.fleet, broker.port
    gone, forgot, cloned, fought = (
        fleet.enrol(d).bundle for d in ("term-gone", "term-forgot", "term-clone", "term-fight")
    )
    fleet.enrol("term-spike", site="east-2")
    with MqttPeer(gone, port):
        pass
    fleet.revoke("term-gone")
    fleet.reload_broker()
    wait_until(lambda: tls_refusal(port, gone), 5, "the revoked one refused")
    tls_refusal(port, gone)  # it keeps trying

    fleet.revoke("term-forgot")  # revoked, but the broker was not told
    time.sleep(1.1)  # the log has whole seconds: the login comes after the revocation
    with MqttPeer(forgot, port):
        pass

    first = MqttPeer(cloned, port).connect()
    copy = mqtt_client(cloned)
    copy.connect("127.0.0.1", port, bind_address="127.0.0.2")  # the same login, elsewhere
    copy.loop_start()
    wait_until(first.disconnected.is_set, 5, "the takeover")
    copy.disconnect()
    copy.loop_stop()

    for _ in range(3):  # (a taken-over paho client reconnects and takes it back: more)
        with MqttPeer(fought, port) as one, MqttPeer(fought, port):
            wait_until(one.disconnected.is_set, 5, "a takeover")
    wrong = login_for(fought)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            MqttPeer(Login(wrong.tls, wrong.username, "not-the-password", "x1"), port).connect()


def _central_rows(config: Path) -> None:
    """Migrate central's database and put in results: night passes at one site, a terminal
    whose clock is ten minutes behind, one quarantined for a clock ahead."""
    done = CliRunner().invoke(central_main, ["--config", str(config), "db", "upgrade"])
    assert done.exit_code == 0, done.output
    engine = sa.create_engine(f"sqlite:///{config.parent / 'central.sqlite'}")
    people = [
        idnumber.make("110105", dt.date(1950, 1, 1) + dt.timedelta(days=i), i) for i in range(30)
    ]
    night = NOW.replace(hour=19, minute=30) - dt.timedelta(days=1)  # 03:30 in Shanghai
    day = NOW.replace(hour=2, minute=0) - dt.timedelta(days=2)  # 10:00 in Shanghai
    rows = [
        dict(device_id="term-fight", device_time=night + dt.timedelta(minutes=i), lag=5)
        for i in range(6)
    ] + [dict(device_id="term-clone", device_time=day + dt.timedelta(hours=i), lag=600)
         for i in range(4)
    ] + [dict(device_id="term-spike", device_time=day - dt.timedelta(days=d, minutes=i), lag=5)
         for d in (1, 2, 3) for i in range(2)
    ] + [dict(device_id="term-spike", device_time=day + dt.timedelta(minutes=i), lag=5)
         for i in range(12)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.retirees),
            [
                {"id_number": p, "name": f"R {i}", "sex": idnumber.sex(p),
                 "birth_date": idnumber.birth_date(p), "created_at": NOW, "updated_at": NOW}
                for i, p in enumerate(people)
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(schema.results),
            [
                {"result_id": uuid.uuid4(), "device_id": r["device_id"], "seq": i, "kid": "0" * 64,
                 "retiree_id": people[i], "method": "assisted", "decision": "pass",
                 "channel": "desk", "device_time": r["device_time"],
                 "received_at": r["device_time"] + dt.timedelta(seconds=r["lag"]),
                 "applied": True, "evidence": {}}
                for i, r in enumerate(rows)
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(schema.quarantine),
            [{"received_at": NOW, "topic": "t", "device_id": "term-forgot", "reason": "future_time",
              "detail": "device clock 3600 s ahead", "acked": True, "payload_size": 1,
              "payload_sha256": "0" * 64, "payload_head": b"x"}],
        )  # fmt: skip
    engine.dispose()


def test_audit_lists_each_finding_with_its_evidence(broker: FleetBroker) -> None:
    _misbehave(broker)
    broker.stop()  # the log is complete
    config = broker.fleet.paths.central / "central.toml"
    _central_rows(config)
    done = CliRunner().invoke(
        central_main,
        ["--config", str(config), "fleet", "audit", "--broker-log", str(broker.log_path),
         "--tz", "Asia/Shanghai", "--json"],
    )  # fmt: skip
    assert done.exit_code == 1, done.output  # high findings
    found = {(f["check"], f["subject"]): f for f in json.loads(done.stdout)}
    assert set(found) == {
        ("revoked_still_trying", "term-gone"),
        ("revoked_connected", "term-forgot"),
        ("certificate_used_twice", "term-clone"),
        ("client_id_conflict", "term-fight"),
        ("refused_logins", "127.0.0.1"),
        ("night_passes", "default"),
        ("unusual_volume", "east-2"),
        ("clock_drift", "term-clone"),
        ("clock_drift", "term-forgot"),
    }, sorted(found)
    assert found[("revoked_still_trying", "term-gone")]["count"] >= 2
    assert (
        "certificate verify failed" in found[("revoked_still_trying", "term-gone")]["evidence"][0]
    )
    assert "as term-forgot" in found[("revoked_connected", "term-forgot")]["evidence"][0]
    assert "127.0.0.2" in found[("certificate_used_twice", "term-clone")]["evidence"][0]
    assert found[("client_id_conflict", "term-fight")]["count"] >= 3
    assert found[("refused_logins", "127.0.0.1")]["count"] == 3
    assert "6 of 10 passes (60%)" in found[("night_passes", "default")]["summary"]
    assert "12 passes on" in found[("unusual_volume", "east-2")]["summary"]
    assert "usually 2 a day" in found[("unusual_volume", "east-2")]["summary"]
    assert "behind by about 600 s" in found[("clock_drift", "term-clone")]["summary"]
    assert "3600 s ahead" in found[("clock_drift", "term-forgot")]["evidence"][0]

    text = CliRunner().invoke(
        central_main, ["--config", str(config), "fleet", "audit", "--tz", "Asia/Shanghai"]
    )
    assert "[medium] night_passes  default:" in text.output
    assert "    " + found[("night_passes", "default")]["evidence"][0] in text.output


def test_bad_audit_options_are_one_clear_line(broker: FleetBroker) -> None:
    config = broker.fleet.paths.central / "central.toml"
    for args, message in (
        (["--tz", "Mars/Olympus"], "--tz: unknown time zone 'Mars/Olympus'"),
        (["--night", "25-3"], "--night: '25-3' is not START-END hours"),
    ):
        done = CliRunner().invoke(central_main, ["--config", str(config), "fleet", "audit", *args])
        assert done.exit_code == 2 and message in done.output, done.output
        assert "Traceback" not in done.output
