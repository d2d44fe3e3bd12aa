"""A fleet of 20 real terminal processes, a real Mosquitto (the fleet's mTLS + dynsec
config) and a real ``lifecert-central run``: terminals killed (``kill -9``) or frozen
(SIGSTOP: no packets, like a pulled cable) show offline, are alerted through a signed webhook and
the metrics, recover when they come back; garbage from a terminal's login is dropped.
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central.cli import main
from central.fleet import alerts
from central.fleet.health import load_states
from central.notify import signature
from central.store import db
from protocol import topics
from provisioning.stack import Stack
from tests.fixtures.broker import MqttPeer, login_for
from tests.fixtures.ports import free_port
from tests.fixtures.stack import central_url
from tests.fixtures.webhook import Hooks

pytestmark = pytest.mark.integration

TERMINALS = [f"term-{i:04d}" for i in range(1, 21)]
KILLED = TERMINALS[:3]
FROZEN = TERMINALS[3]
KEEPALIVE_S = 5  # the broker drops a silent client after 1.5 x keepalive


@pytest.fixture
def fleet(tmp_path: Path, hooks: Hooks) -> Iterator[tuple[Stack, sa.Engine, int]]:
    stack = Stack.create(tmp_path, free_port(), TERMINALS)
    metrics_port = free_port()
    secret_file = signature.write_secret(tmp_path / "webhook.secret")
    hooks.secret = secret_file.read_text().strip()  # the receiver checks every signature
    with stack.central_config.open("a") as toml:
        toml.write(
            "\n[alerts]\ninterval_s = 1\noffline_after_s = 0\n"
            'opening_hours = "00:00-24:00"\nopening_days = [1, 2, 3, 4, 5, 6, 7]\n'
            f'notify = ["log", "webhook"]\nwebhook_url = "{hooks.url}"\n'
            f'webhook_secret_file = "{secret_file}"\n'
            f"webhook_timeout_s = 2\n\n[metrics]\nport = {metrics_port}\n"
            "\n[notify]\ninterval_s = 1\n"  # the outbox's sender delivers the alerts
        )
    engine = db.create_engine(central_url(stack))
    db.upgrade(engine)
    stack.broker.start()
    try:
        stack.start_central()
        stack.start_edges(
            TERMINALS,
            extra_env={
                "LIFECERT_EDGE__LINK__TELEMETRY_INTERVAL_S": "1",
                "LIFECERT_EDGE__MQTT__KEEPALIVE": str(KEEPALIVE_S),
                "LIFECERT_EDGE__LOG_LEVEL": "WARNING",
            },
        )
        yield stack, engine, metrics_port
    finally:
        stack.signal(FROZEN, signal.SIGCONT)
        for device_id in TERMINALS:  # all at once, then close() waits for each
            if stack.running(device_id):
                stack.signal(device_id, signal.SIGTERM)
        stack.close()
        engine.dispose()


def _states(engine: sa.Engine) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {s.device_id: s.state(now, 180) for s in load_states(engine)}


def _open_offline(engine: sa.Engine) -> set[str]:
    return {a["subject"] for a in alerts.list_alerts(engine, True) if a["rule"] == "offline"}


def _hooked(hooks: Hooks, event: str) -> set[str]:
    """The terminals whose alerts' ``event`` reached the webhook."""
    return {b["data"]["subject"] for b in hooks.delivered() if b["data"]["event"] == event}


def _cli(stack: Stack, *args: str) -> str:
    """``lifecert-central --config … ARGS`` in this process (the real click command)."""
    done = CliRunner().invoke(main, ["--config", str(stack.central_config), *args])
    assert done.exit_code == 0, done.output
    return done.output


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        name: float(value)
        for line in text.splitlines()
        if line and not line.startswith("#")
        for name, value in [line.rsplit(" ", 1)]
    }


def test_killed_and_unplugged_terminals_show_offline_and_are_alerted(
    fleet: tuple[Stack, sa.Engine, int], hooks: Hooks
) -> None:
    stack, engine, metrics_port = fleet
    stack.wait_until(
        lambda: (
            sum(
                s.state(dt.datetime.now(dt.UTC), 180) == "online" and s.telemetry is not None
                for s in load_states(engine)
            )
            == len(TERMINALS)
        ),
        90,
        "every terminal online with telemetry",
    )
    rows = {r["device_id"]: r for r in json.loads(_cli(stack, "fleet", "status", "--json"))}
    assert set(rows) == set(TERMINALS)
    row = rows[TERMINALS[-1]]
    assert row["state"] == "online" and row["backlog"] == 0 and row["software"]
    assert row["skew_s"] is not None and abs(row["skew_s"]) < 5 and row["disk_free_mb"] > 0

    start = time.monotonic()
    for device_id in KILLED:
        stack.kill(device_id)
    stack.signal(FROZEN, signal.SIGSTOP)
    gone = {*KILLED, FROZEN}
    stack.wait_until(lambda: _open_offline(engine) >= set(KILLED), 45, "kill -9 alerted")
    killed_s = time.monotonic() - start
    stack.wait_until(lambda: _open_offline(engine) == gone, 60, "the frozen terminal alerted")
    frozen_s = time.monotonic() - start
    assert frozen_s < 120 and killed_s < frozen_s
    states = _states(engine)
    assert {d for d, s in states.items() if s != "online"} == gone
    assert {states[d] for d in gone} == {"offline"}
    operator = subprocess.run(  # the operator's own command, from the fleet directory
        [sys.executable, "-m", "provisioning", "fleet", "status", "--json"],
        cwd=stack.fleet.directory.parent,
        env=os.environ | {"LIFECERT_FLEET_DIR": stack.fleet.directory.name},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = {r["device_id"]: r["state"] for r in json.loads(operator.stdout)}
    assert {d for d, s in shown.items() if s == "offline"} == gone and len(shown) == len(states)

    stack.wait_until(lambda: gone <= _hooked(hooks, "raised"), 10, "the alerts delivered")
    metrics = _metrics(metrics_port)
    assert metrics['lifecert_fleet_devices{state="online"}'] == len(TERMINALS) - len(gone)
    assert metrics['lifecert_fleet_devices{state="offline"}'] == len(gone)
    assert metrics['lifecert_fleet_alerts_open{rule="offline"}'] == len(gone)

    # a killed terminal's login sends garbage: counted and dropped, central carries on
    bundle = stack.fleet.paths.bundle(KILLED[0])
    with MqttPeer(login_for(bundle), stack.fleet.settings.broker.port) as peer:
        tele = topics.device_topic(KILLED[0], "telemetry")
        for payload in (b"\x00garbage", b"{" * 8000, b'{"device_id": "term-0005"}'):
            assert not peer.publish(tele, payload, qos=1).is_failure
        assert not peer.publish(topics.device_topic(KILLED[0], "status"), b"x" * 100).is_failure
    dropped = 'lifecert_fleet_dropped_total{reason="%s"}'
    stack.wait_until(
        lambda: _metrics(metrics_port).get(dropped % "invalid", 0) >= 2,
        30,
        "garbage counted",
    )
    m = _metrics(metrics_port)
    assert m[dropped % "oversized"] >= 2
    assert stack.running("central-1")

    table = _cli(stack, "fleet", "alerts", "--open").splitlines()
    assert table[0].split()[:3] == ["id", "rule", "subject"] and "delivery" in table[0]
    shown = json.loads(_cli(stack, "fleet", "alerts", "--open", "--json"))
    delivered = {a["delivery"] for a in shown if a["rule"] == "offline"}
    assert delivered == {"raised: log sent, webhook sent"}
    assert {line.split()[2] for line in table[1:] if line.split()[1] == "offline"} == gone
    alert_id = next(a["id"] for a in alerts.list_alerts(engine, True) if a["subject"] == FROZEN)
    said = _cli(stack, "fleet", "ack", str(alert_id), "--by", "ops on call")
    assert f"alert {alert_id} (offline on {FROZEN}) acknowledged by ops on call" in said
    stack.wait_until(lambda: _hooked(hooks, "acked") == {FROZEN}, 10, "the ack delivered")

    # back: the frozen one resumes, a killed one restarts; their alerts clear
    stack.signal(FROZEN, signal.SIGCONT)
    stack.start_edge(KILLED[0], extra_env={"LIFECERT_EDGE__LINK__TELEMETRY_INTERVAL_S": "1"})
    stack.wait_until(
        lambda: _open_offline(engine) == set(KILLED[1:]), 60, "recovered terminals cleared"
    )
    stack.wait_until(
        lambda: {FROZEN, KILLED[0]} <= _hooked(hooks, "cleared"), 10, "the clearings delivered"
    )
    assert not [h for _, h in hooks.received if "x-refused" in h]  # every one signed right
