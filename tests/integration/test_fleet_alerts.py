"""Fleet health on a real database (SQLite and PostgreSQL) and webhooks to a real HTTP server.

The status and telemetry handlers get real paho messages (as the link hands them over);
the 20-terminal test with a broker is ``test_fleet_health.py``.
"""

import datetime as dt
import logging
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.fleet import alerts
from central.fleet.alerts import Alerts, Outlet, read_trust
from central.fleet.health import FleetHealth, load_states
from central.fleet.health_schema import fleet_alerts
from central.fleet.health_settings import AlertSettings
from central.notify.adapters import MaskedLogNotifier
from central.notify.base import DeliveryError, Message
from central.notify.webhook import WebhookNotifier
from protocol import messages, topics
from protocol.messages import Telemetry
from tests.fixtures.database import CentralPki
from tests.fixtures.webhook import Hooks

pytestmark = pytest.mark.integration

DEVICE = "term-0001"


def _message(topic: str, payload: bytes, qos: int = 0) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    msg.payload = payload
    msg.qos = qos
    return msg


def _report(device_id: str = DEVICE, **over: Any) -> bytes:
    body: dict[str, Any] = {
        "device_id": device_id,
        "device_time": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120),
        "uptime_s": 5.0,
        "software": "0.1.0",
        "outbox_pending": 2,
        "outbox_inflight": 1,
        "oldest_pending_s": 30.0,
        "sessions_today": 4,
        "disk_free_bytes": 10**10,
    }
    return messages.encode(Telemetry.model_validate(body | over))


# -- webhook ------------------------------------------------------------------------------


def _hook_message(url: str) -> Message:
    return Message("webhook", url, "lifecert alert 1 raised", "offline for 5 min", "k-1",
                   data={"rule": "offline"})  # fmt: skip


def test_webhook_posts_json_and_retries_through_failures(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    pauses: list[float] = []
    notifier = WebhookNotifier(timeout_s=2, attempts=4, backoff_s=0.25, sleep=pauses.append)
    hooks.fail_next(503, 0, 429)  # an error, a dropped connection, "slow down"
    with caplog.at_level(logging.INFO):
        notifier.deliver(_hook_message(hooks.url))
    assert [h["x-answer"] for _, h in hooks.received] == ["503", "0", "429", "200"]
    assert pauses == [0.25, 0.5, 1.0]
    body, headers = hooks.received[-1]
    assert body == {
        "channel": "webhook",
        "subject": "lifecert alert 1 raised",
        "body": "offline for 5 min",
        "key": "k-1",
        "language": "en",
        "data": {"rule": "offline"},
    }
    assert headers["idempotency-key"] == "k-1"
    assert headers["content-type"] == "application/json"
    assert "s3cret" not in caplog.text and "127.0.0.1" in caplog.text


def test_webhook_gives_up_and_says_whether_to_retry(hooks: Hooks) -> None:
    notifier = WebhookNotifier(timeout_s=2, attempts=2, backoff_s=0, sleep=lambda _s: None)
    hooks.fail_next(500, 500)
    with pytest.raises(DeliveryError, match="after 2 attempt") as failed:
        notifier.deliver(_hook_message(hooks.url))
    assert failed.value.retryable
    hooks.fail_next(404)
    with pytest.raises(DeliveryError, match="HTTP 404") as refused:
        notifier.deliver(_hook_message(hooks.url))
    assert not refused.value.retryable and len(hooks.received) == 3  # no retry after a 404
    with pytest.raises(DeliveryError, match="not an http"):
        notifier.deliver(_hook_message("file:///etc/passwd"))
    closed = f"http://127.0.0.1:{_closed_port()}/x"
    with pytest.raises(DeliveryError, match="not delivered"):
        notifier.deliver(_hook_message(closed))


def _closed_port() -> int:
    from tests.fixtures.ports import free_port

    return free_port()


# -- state from status and telemetry ------------------------------------------------------


@pytest.fixture
def health(central_engine: Engine, central_pki: CentralPki) -> FleetHealth:
    central_pki.terminal(DEVICE)
    central_pki.terminal("term-0002")
    enrolled = {p.stem for p in central_pki.devices_dir.glob("*.pem")}
    return FleetHealth(central_engine, enrolled.__contains__)


def test_status_and_telemetry_become_the_device_state(health: FleetHealth) -> None:
    status = topics.device_topic(DEVICE, "status")
    health.on_status(_message(status, b"online", qos=1))
    health.on_telemetry(_message(topics.device_topic(DEVICE, "telemetry"), _report()))
    assert health.flush() == 2
    (state,) = load_states(health.engine)
    first_at = state.status_at
    assert state.status == "online" and state.telemetry is not None
    assert state.telemetry["outbox_pending"] == 2 and state.telemetry["sessions_today"] == 4
    assert state.clock_skew_s is not None and 119 < state.clock_skew_s < 121
    # a retained status re-delivered at a reconnect keeps the time it first came
    health.on_status(_message(status, b"online", qos=1))
    health.flush()
    assert load_states(health.engine)[0].status_at == first_at
    health.on_status(_message(status, b"offline", qos=1))
    health.flush()
    (state,) = load_states(health.engine)
    assert state.status == "offline" and state.status_at is not None
    assert state.status_at > first_at and state.telemetry is not None


def test_garbage_is_counted_by_reason_and_never_stored(health: FleetHealth) -> None:
    tele = topics.device_topic(DEVICE, "telemetry")
    junk = [
        (health.on_telemetry, tele, b"\xff\xfe not json"),
        (health.on_telemetry, tele, b"{}"),
        (health.on_telemetry, tele, b"[" * 100_000),
        (health.on_telemetry, tele, _report(device_id="term-0002")),
        (health.on_telemetry, topics.device_topic("term-9999", "telemetry"), _report("term-9999")),
        (health.on_telemetry, "lifecert/v1/dev/../telemetry", _report()),
        (health.on_status, topics.device_topic(DEVICE, "status"), b"on fire"),
        (health.on_status, topics.device_topic(DEVICE, "status"), b""),
        (health.on_status, topics.device_topic(DEVICE, "status"), b"online" * 10),
    ]
    for handler, topic, payload in junk:
        handler(_message(topic, payload))
    assert health.flush() == 0
    assert load_states(health.engine) == []
    assert dict(health.dropped) == {
        "invalid": 2,
        "oversized": 2,
        "foreign_device": 1,
        "unknown_device": 1,
        "bad_topic": 1,
        "bad_status": 2,
    }
    assert sum(health.received.values()) == 0


# -- alerts -------------------------------------------------------------------------------


def test_alerts_are_raised_once_delivered_cleared_and_acknowledged(
    health: FleetHealth, central_pki: CentralPki, hooks: Hooks
) -> None:
    settings = AlertSettings(
        offline_after_s=0,
        opening_hours="00:00-24:00",
        opening_days=(1, 2, 3, 4, 5, 6, 7),
        notify=("log", "webhook"),
        webhook_url=hooks.url,  # type: ignore[arg-type]
    )
    outlets = [
        Outlet("log", "log", MaskedLogNotifier()),
        Outlet("webhook", hooks.url, WebhookNotifier(2, 1, 0)),
    ]
    rules = Alerts(
        health.engine,
        settings,
        "UTC",
        outlets,
        lambda: read_trust(central_pki.devices_dir, central_pki.crl_file),
    )
    status = topics.device_topic(DEVICE, "status")
    health.on_status(_message(status, b"offline", qos=1))
    health.flush()
    now = dt.datetime.now(dt.UTC)
    # the test PKI's CRL is valid for 7 days (< 14) and its certificates for 30 (< 30 + 1)
    raised, cleared = rules.check(load_states(health.engine), now + dt.timedelta(seconds=1))
    open_now = {(a["rule"], a["subject"]) for a in alerts.list_alerts(health.engine, True)}
    assert open_now == {
        ("offline", DEVICE),
        ("crl_next_update", "*"),
        ("cert_expiring", DEVICE),
        ("cert_expiring", "term-0002"),
    }
    assert (raised, cleared) == (4, 0)
    assert len(hooks.delivered()) == 4
    # the next check raises nothing again
    assert rules.check(load_states(health.engine), now + dt.timedelta(seconds=2)) == (0, 0)
    # a second central process checking at the same moment cannot open it twice
    with pytest.raises(sa.exc.IntegrityError), health.engine.begin() as conn:
        twice = {"rule": "offline", "subject": DEVICE, "reason": "again", "raised_at": now}
        conn.execute(fleet_alerts.insert().values(**twice))
    offline = next(a for a in alerts.list_alerts(health.engine) if a["rule"] == "offline")
    acked = alerts.acknowledge(health.engine, offline["id"], "J. Li", now)
    assert acked["acked_by"] == "J. Li" and acked["cleared_at"] is None
    with pytest.raises(alerts.AlertError, match=r"acknowledged by J\. Li"):
        alerts.acknowledge(health.engine, offline["id"], "someone else", now)
    with pytest.raises(alerts.AlertError, match="no alert 999"):
        alerts.acknowledge(health.engine, 999, "J. Li", now)
    # back online: cleared (and delivered), while a failing webhook is recorded on the alert
    health.on_status(_message(status, b"online", qos=1))
    health.on_telemetry(_message(topics.device_topic(DEVICE, "telemetry"), _report()))
    health.flush()
    hooks.fail_next(500)
    before = len(hooks.received)
    skew = rules.check(load_states(health.engine), dt.datetime.now(dt.UTC))
    assert skew == (1, 1)  # clock_skew raised (the report is 120 s ahead), offline cleared
    rows = {a["rule"]: a for a in alerts.list_alerts(health.engine) if a["subject"] == DEVICE}
    assert rows["offline"]["cleared_at"] is not None
    assert "HTTP 500" in (rows["clock_skew"]["notify_error"] or "")
    # the webhook failed once in this check: the clearing was not sent to wait on it again
    assert len(hooks.received) == before + 1
    assert "not tried" in (rows["offline"]["notify_error"] or "")
    assert ("offline", "cleared") not in [
        (b["data"]["rule"], b["data"]["event"]) for b in hooks.delivered()
    ]
