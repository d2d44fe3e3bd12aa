"""Fleet health on a real database (SQLite and PostgreSQL) and webhooks to a real HTTP server.

The status and telemetry handlers get real paho messages (as the link hands them over);
alerts are checked and delivered by the parts ``lifecert-central run`` builds (bootstrap's
``Central``: the rules, the notify outbox's sender and its webhook adapter); desired
configs are signed by central's code and refused by the terminal's. The 20-terminal test
with a broker is ``test_fleet_health.py``.
"""

import base64
import datetime as dt
import hashlib
import hmac
import logging
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook, WebhookVerificationError

from central.bootstrap import Central
from central.config import CentralConfig
from central.fleet import alerts, desired
from central.fleet.health import FleetHealth, load_states
from central.fleet.health_schema import fleet_alerts
from central.notify import outbox, signature
from central.notify.base import DeliveryError, Message
from central.notify.outbox import Outcome
from central.notify.signature import Signer, new_secret
from central.notify.webhook import WebhookNotifier
from common.errors import ConfigError
from edge.config import EdgeConfig
from edge.fleet.desired import DesiredState
from protocol import fleet, messages, signing, topics
from protocol.messages import Telemetry
from tests.fixtures.database import CentralPki
from tests.fixtures.ports import free_port
from tests.fixtures.webhook import Hooks, serve

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
    return free_port()


def _hmac_check(secret: str, raw: bytes, headers: dict[str, str]) -> bool:
    """The Standard Webhooks check written out with the standard library (not the package
    central signs with): HMAC-SHA256 of "{id}.{timestamp}.{body}", key = the base64 after
    ``whsec_``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


def test_a_signed_webhook_verifies_and_tampering_does_not(hooks: Hooks) -> None:
    secret = new_secret()
    hooks.secret = secret  # the receiver checks every request's signature
    notifier = WebhookNotifier(timeout_s=2, attempts=1, signer=Signer(secret))
    notifier.deliver(_hook_message(hooks.url))
    [(body, headers)], [raw] = hooks.received, hooks.raw
    assert headers["x-answer"] == "200" and body["key"] == "k-1"
    assert headers["webhook-id"] == "k-1" == headers["idempotency-key"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["webhook-signature"].startswith("v1,") and _hmac_check(secret, raw, headers)
    assert Webhook(secret).verify(raw, headers) == body
    # what a receiver's check catches: another body, another secret, another id
    tampered = raw.replace(b"offline for 5 min", b"offline for 6 min")
    assert tampered != raw and not _hmac_check(secret, tampered, headers)
    other = new_secret()
    for data, key, got in [
        (tampered, secret, headers),
        (raw, other, headers),
        (raw, secret, headers | {"webhook-id": "k-2"}),
    ]:
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(key).verify(data, got)
    assert not _hmac_check(other, raw, headers)
    # an unsigned sender, or one with the wrong secret, is refused by the receiver (final)
    for wrong in (WebhookNotifier(timeout_s=2), WebhookNotifier(timeout_s=2, signer=Signer(other))):
        with pytest.raises(DeliveryError, match="HTTP 401") as refused:
            wrong.deliver(_hook_message(hooks.url))
        assert not refused.value.retryable
    assert [h.get("x-refused") for _, h in hooks.received[1:]] == [
        "Missing required headers",
        "No matching signature found",
    ]


def test_an_old_timestamp_is_refused_as_a_replay(hooks: Hooks) -> None:
    secret = new_secret()
    hooks.secret = secret
    past = time.time() - 6 * 60  # a request captured 6 minutes ago and sent again
    replayed = WebhookNotifier(timeout_s=2, signer=Signer(secret), clock=lambda: past)
    with pytest.raises(DeliveryError, match="HTTP 401"):
        replayed.deliver(_hook_message(hooks.url))
    [(_, headers)], [raw] = hooks.received, hooks.raw
    assert headers["x-refused"] == "Message timestamp too old"
    assert _hmac_check(secret, raw, headers)  # the signature itself is right: only its age is not


def test_each_retry_is_signed_again_with_a_fresh_timestamp(hooks: Hooks) -> None:
    secret = new_secret()
    hooks.secret = secret
    pauses: list[float] = []
    start = time.time()
    notifier = WebhookNotifier(
        timeout_s=2, attempts=4, backoff_s=1, sleep=pauses.append, signer=Signer(secret),
        clock=lambda: start + sum(pauses),  # the sender's clock moves on with each pause
    )  # fmt: skip
    hooks.fail_next(503, 0, 429)
    notifier.deliver(_hook_message(hooks.url))
    tries = [h for _, h in hooks.received]
    assert [h["x-answer"] for h in tries] == ["503", "0", "429", "200"]  # none refused as forged
    stamps = [int(h["webhook-timestamp"]) for h in tries]
    assert [s - stamps[0] for s in stamps] == [0, 1, 3, 7]
    assert {h["webhook-id"] for h in tries} == {"k-1"}
    assert len({h["webhook-signature"] for h in tries}) == 4
    assert all(_hmac_check(secret, raw, h) for raw, h in zip(hooks.raw, tries, strict=True))


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


def _central(db_url: str, pki: CentralPki, tmp_path: Path, url: str, **alert: Any) -> Central:
    """Central's parts as ``lifecert-central run`` builds them, alerting to webhook ``url``
    (one HTTP try per outbox attempt; the outbox waits 10 s, then 20 s ... between tries)."""
    always = {"opening_hours": "00:00-24:00", "opening_days": [1, 2, 3, 4, 5, 6, 7]}
    data = {
        "database": {"url": db_url},
        "fleet": {"ca_file": str(pki.ca_file), "crl_file": str(pki.crl_file),
                  "devices_dir": str(pki.devices_dir)},
        "alerts": always | {"offline_after_s": 0, "notify": ["log", "webhook"], "webhook_url": url,
                            "webhook_timeout_s": 2, "webhook_attempts": 1} | alert,
        "notify": {"backoff_s": 10, "max_attempts": 4},
    }  # fmt: skip
    return Central(CentralConfig.model_validate(data, context={"base_dir": tmp_path}))


def _keys(alert_ids: list[int], hooks: Hooks, event: str = "raised") -> dict[str, list[str]]:
    """Per idempotency key of these alerts' ``event``: what the webhook answered, in turn."""
    wanted = {alerts.delivery_key(i, event, "webhook") for i in alert_ids}
    out: dict[str, list[str]] = {}
    for _body, headers in hooks.received:
        if headers["idempotency-key"] in wanted:
            out.setdefault(headers["idempotency-key"], []).append(headers["x-answer"])
    return out


def _delivery(engine: Engine) -> dict[tuple[str, str], str]:
    return {(a["rule"], a["subject"]): a["delivery"] for a in alerts.list_alerts(engine)}


def test_alerts_are_raised_once_delivered_cleared_and_acknowledged(
    health: FleetHealth, central_pki: CentralPki, hooks: Hooks, db_url: str, tmp_path: Path
) -> None:
    parts = _central(db_url, central_pki, tmp_path, hooks.url)
    rules, sender = parts.alerts(), parts.sender()
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
    assert hooks.received == []  # stored in the outbox with the alerts: the sender delivers
    assert sender.run_once(now + dt.timedelta(seconds=1)) == Outcome(sent=8)  # log + webhook
    ids = [a["id"] for a in alerts.list_alerts(health.engine, True)]
    assert _keys(ids, hooks) == {f"alert:{i}:raised:webhook": ["200"] for i in ids}
    body = next(b for b in hooks.delivered() if b["data"]["rule"] == "offline")
    assert body["subject"].endswith(f"raised: offline on {DEVICE}") and body["body"]
    assert set(_delivery(health.engine).values()) == {"raised: log sent, webhook sent"}
    # the next check raises nothing again, and nothing more is sent
    assert rules.check(load_states(health.engine), now + dt.timedelta(seconds=2)) == (0, 0)
    assert sender.run_once(now + dt.timedelta(seconds=2)) == Outcome()
    # a second central process checking at the same moment cannot open it twice
    with pytest.raises(sa.exc.IntegrityError), health.engine.begin() as conn:
        twice = {"rule": "offline", "subject": DEVICE, "reason": "again", "raised_at": now}
        conn.execute(fleet_alerts.insert().values(**twice))
    offline = next(a for a in alerts.list_alerts(health.engine) if a["rule"] == "offline")
    channels = parts.cfg.alerts.notify
    acked = alerts.acknowledge(health.engine, offline["id"], "J. Li", now, channels)
    assert acked["acked_by"] == "J. Li" and acked["cleared_at"] is None
    with pytest.raises(alerts.AlertError, match=r"acknowledged by J\. Li"):
        alerts.acknowledge(health.engine, offline["id"], "someone else", now, channels)
    with pytest.raises(alerts.AlertError, match="no alert 999"):
        alerts.acknowledge(health.engine, 999, "J. Li", now, channels)
    assert sender.run_once(now) == Outcome(sent=2)  # the acknowledgement: log + webhook
    # back online: cleared; the webhook fails once, and the other message for it waits
    health.on_status(_message(status, b"online", qos=1))
    health.on_telemetry(_message(topics.device_topic(DEVICE, "telemetry"), _report()))
    health.flush()
    hooks.fail_next(500)
    before = len(hooks.received)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    skew = rules.check(load_states(health.engine), later)
    assert skew == (1, 1)  # clock_skew raised (the report is 120 s ahead), offline cleared
    assert sender.run_once(later) == Outcome(sent=2, retried=1, deferred=1)
    assert len(hooks.received) == before + 1  # the clearing did not wait on a dead webhook
    shown = _delivery(health.engine)
    assert shown["clock_skew", DEVICE] == (
        "raised: log sent, webhook pending (webhook http://127.0.0.1: message "
        f"alert:{_skew_id(health.engine)}:raised:webhook not delivered after 1 attempt(s): "
        "HTTP 500)"
    )
    assert shown["offline", DEVICE] == (
        "raised: log sent, webhook sent; acked: log sent, webhook sent; "
        "cleared: log sent, webhook pending"
    )
    assert "s3cret" not in str(shown)
    # 10 s on: the webhook refuses the raising for good (a dead letter), takes the clearing
    hooks.fail_next(404)
    assert sender.run_once(later + dt.timedelta(seconds=10)) == Outcome(sent=1, dead=1)
    assert "webhook dead" in _delivery(health.engine)["clock_skew", DEVICE]
    dead = f"alert:{_skew_id(health.engine)}:raised:webhook"
    with health.engine.begin() as conn:  # what ``lifecert-central notify retry KEY`` does
        assert outbox.retry(conn, dead, later)
    assert sender.run_once(later + dt.timedelta(seconds=11)) == Outcome(sent=1)
    events = [(b["data"]["rule"], b["data"]["event"]) for b in hooks.delivered()]
    assert events.count(("offline", "cleared")) == 1 and events.count(("clock_skew", "raised")) == 1
    parts.close()


def _skew_id(engine: Engine) -> int:
    return next(a["id"] for a in alerts.list_alerts(engine) if a["rule"] == "clock_skew")


def test_alert_deliveries_wait_out_a_dead_webhook_and_a_central_restart(
    health: FleetHealth, central_pki: CentralPki, db_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet: the webhook is down
    url = f"http://127.0.0.1:{port}/hooks/lifecert?token=s3cret"
    first = _central(db_url, central_pki, tmp_path, url)
    health.on_status(_message(topics.device_topic(DEVICE, "status"), b"offline", qos=1))
    health.flush()
    now = dt.datetime.now(dt.UTC)
    assert first.alerts().check(load_states(health.engine), now) == (4, 0)
    # the log gets them; the first webhook message fails, the other three wait with it
    assert first.sender().run_once(now) == Outcome(sent=4, retried=1, deferred=3)
    assert all("webhook pending" in d for d in _delivery(health.engine).values())
    first.close()  # central stops with the deliveries pending

    hooks = Hooks()
    with serve(hooks, port):  # the webhook is back, answering an error at first
        hooks.fail_next(500)
        second = _central(db_url, central_pki, tmp_path, url)  # central restarted
        sender = second.sender()
        assert sender.run_once(now + dt.timedelta(seconds=9)) == Outcome()  # backing off
        assert sender.run_once(now + dt.timedelta(seconds=10)) == Outcome(retried=1, deferred=3)
        assert sender.run_once(now + dt.timedelta(seconds=30)) == Outcome(sent=4)
        assert sender.run_once(now + dt.timedelta(days=1)) == Outcome()  # once, not again
        second.close()
    ids = [a["id"] for a in alerts.list_alerts(health.engine)]
    answers = _keys(ids, hooks)
    assert set(answers) == {f"alert:{i}:raised:webhook" for i in ids}
    assert sorted(a.count("200") for a in answers.values()) == [1, 1, 1, 1]
    assert ["500", "200"] in answers.values()  # the same key before and after the failure
    assert {b["data"]["alert_id"] for b in hooks.delivered()} == {str(i) for i in ids}
    assert set(_delivery(health.engine).values()) == {"raised: log sent, webhook sent"}


def test_an_acknowledgement_is_delivered_once_naming_who_acked(
    health: FleetHealth, central_pki: CentralPki, hooks: Hooks, db_url: str, tmp_path: Path
) -> None:
    parts = _central(db_url, central_pki, tmp_path, hooks.url)
    sender = parts.sender()
    health.on_status(_message(topics.device_topic(DEVICE, "status"), b"offline", qos=1))
    health.flush()
    now = dt.datetime.now(dt.UTC)
    parts.alerts().check(load_states(health.engine), now)
    sender.run_once(now)
    offline = next(a for a in alerts.list_alerts(health.engine) if a["rule"] == "offline")
    channels = parts.cfg.alerts.notify
    alerts.acknowledge(health.engine, offline["id"], "J. Li", now, channels)
    with pytest.raises(alerts.AlertError):  # a second acknowledgement changes nothing
        alerts.acknowledge(health.engine, offline["id"], "K. Wu", now, channels)
    assert sender.run_once(now) == Outcome(sent=2)  # log + webhook
    assert sender.run_once(now + dt.timedelta(days=1)) == Outcome()  # once, not again
    [acked] = [b for b in hooks.delivered() if b["data"]["event"] == "acked"]
    assert acked["key"] == f"alert:{offline['id']}:acked:webhook"
    assert acked["data"]["acked_by"] == "J. Li" and acked["data"]["rule"] == "offline"
    assert acked["subject"] == f"lifecert alert {offline['id']} acked: offline on {DEVICE}"
    assert acked["body"] == f"acknowledged by J. Li: {offline['reason']}"
    assert _delivery(health.engine)["offline", DEVICE] == (
        "raised: log sent, webhook sent; acked: log sent, webhook sent"
    )
    parts.close()


def test_alert_webhooks_are_signed_with_the_secret_file(
    health: FleetHealth, central_pki: CentralPki, hooks: Hooks, db_url: str, tmp_path: Path
) -> None:
    secret_file = signature.write_secret(tmp_path / "webhook.secret")
    hooks.secret = secret_file.read_text().strip()
    parts = _central(db_url, central_pki, tmp_path, hooks.url, webhook_secret_file="webhook.secret")
    now = dt.datetime.now(dt.UTC)
    assert parts.alerts().check(load_states(health.engine), now) == (3, 0)  # CRL, certificates
    assert parts.sender().run_once(now) == Outcome(sent=6)
    assert [h["x-answer"] for _, h in hooks.received] == ["200"] * 3  # each one verified
    assert "whsec_" not in repr(parts.notifiers["webhook"].__dict__)
    parts.close()


def test_an_unsigned_alert_webhook_is_warned_about_once(
    central_pki: CentralPki, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parts = _central(db_url, central_pki, tmp_path, "http://127.0.0.1:1/h")
    with caplog.at_level(logging.WARNING):
        parts.sender()
        parts.sender()
    unsigned = [r for r in caplog.records if "go unsigned" in r.getMessage()]
    assert len(unsigned) == 1
    assert "webhook_secret_file" in unsigned[0].getMessage()
    assert "notify webhook-secret" in unsigned[0].getMessage()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read .*No such file or directory"),
        (b"\xff\xfe whsec_", "cannot read .*not UTF-8"),
        (b"", "must hold whsec_"),
        (b"s3cret-token-of-some-length-000000000000", "must hold whsec_"),
        (b"whsec_not base64!", "must hold whsec_"),
        (b"whsec_" + base64.b64encode(b"x" * 23), "at least 24 random bytes"),
    ],
)
def test_a_bad_webhook_secret_file_is_a_clear_error(
    central_pki: CentralPki, db_url: str, tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "webhook.secret"
    if content is not None:
        path.write_bytes(content)
    parts = _central(db_url, central_pki, tmp_path, "http://127.0.0.1:1/h",
                     webhook_secret_file="webhook.secret")  # fmt: skip
    with pytest.raises(ConfigError, match=problem) as bad:
        _ = parts.notifiers  # built at the start of ``run`` and by --validate-config
    said = str(bad.value)
    assert said.startswith("alerts.webhook_secret_file: ")
    assert "(make one: lifecert-central notify webhook-secret FILE)" in said
    assert content is None or len(content) < 12 or content.decode("latin-1") not in said


def test_a_directory_as_webhook_secret_file_is_a_clear_error(
    central_pki: CentralPki, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "secrets").mkdir()
    parts = _central(db_url, central_pki, tmp_path, "http://127.0.0.1:1/h",
                     webhook_secret_file="secrets")  # fmt: skip
    with pytest.raises(ConfigError, match=r"alerts\.webhook_secret_file: cannot read .*directory"):
        _ = parts.notifiers


def test_the_alert_webhook_channel_is_not_also_a_notify_channel(
    db_url: str, central_pki: CentralPki, tmp_path: Path
) -> None:
    parts = _central(db_url, central_pki, tmp_path, "http://127.0.0.1:1/h")
    parts.cfg.notify.channels["webhook"] = "log"
    with pytest.raises(ConfigError, match=r"notify\.channels\.webhook"):
        parts.sender()


# -- config drift -------------------------------------------------------------------------


class _Terminal:
    """The terminal's side of desired config: its real check and apply, and its report."""

    def __init__(self, tmp_path: Path, verifier: signing.Verifier) -> None:
        self.base = EdgeConfig.model_validate(
            {
                "device_id": DEVICE,
                "data_dir": str(tmp_path / "edge"),
                "mqtt": {"tls": {"ca_file": "ca", "cert_file": "c", "key_file": "k"}},
                "central": {"sign_pub": "s", "seal_pub": "p", "model_sign_pub": "m"},
                "models": {"bundle": str(tmp_path / "models")},
            }
        )
        self.state = DesiredState(tmp_path / "edge", DEVICE, verifier)

    def receive(self, engine: Engine, now: dt.datetime) -> None:
        """Take the retained config central would publish, report what it runs."""
        [(_, token)] = [u for u in desired.unpublished(engine, True) if u[0] == DEVICE]
        self.state.receive(token.encode(), self.base)
        applied = self.state.applied
        report = fleet.Reported(
            device_id=DEVICE,
            config_version=applied.version if applied else 0,
            config_sha256=applied.sha256 if applied else None,
            config_error=self.state.refused,
            software_version="0.1.0",
            at=now,
        )
        desired.record_reported(engine, report, now)


def _drift(engine: Engine) -> list[dict[str, Any]]:
    return [a for a in alerts.list_alerts(engine) if a["rule"] == "config_drift"]


def test_a_refused_config_becomes_a_config_drift_alert_after_the_delay(
    health: FleetHealth, central_pki: CentralPki, hooks: Hooks, db_url: str, tmp_path: Path
) -> None:
    parts = _central(db_url, central_pki, tmp_path, hooks.url, config_drift_after_s=600)
    rules, sender, engine = parts.alerts(), parts.sender(), health.engine
    key = ec.generate_private_key(ec.SECP256R1())
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    terminal = _Terminal(tmp_path, signing.Verifier(key.public_key()))
    members = [desired.Member(DEVICE, "default"), desired.Member("term-0002", "default")]

    def operator_sets(setting: str, at: dt.datetime) -> None:  # ``fleet config set``
        desired.set_config(engine, f"device:{DEVICE}", dict([desired.parse_setting(setting)]),
                           [], at)  # fmt: skip
        assert desired.refresh(engine, members, signer, at) == [DEVICE]

    t0 = dt.datetime.now(dt.UTC)
    operator_sets("log_level=DEBUG", t0)
    terminal.receive(engine, t0)
    rules.check(load_states(engine), t0 + dt.timedelta(hours=1))
    assert _drift(engine) == []  # in sync
    # a value the terminal's own schema refuses: it keeps version 1 and says why
    t1 = t0 + dt.timedelta(hours=2)
    operator_sets("link.telemetry_interval_s=-5", t1)
    terminal.receive(engine, t1)
    assert terminal.state.refused and "greater than or equal" in terminal.state.refused
    rules.check(load_states(engine), t1 + dt.timedelta(seconds=599))
    assert _drift(engine) == []  # not before the delay
    rules.check(load_states(engine), t1 + dt.timedelta(seconds=600))
    [alert] = _drift(engine)
    assert alert["subject"] == DEVICE and alert["cleared_at"] is None
    assert alert["reason"].startswith(
        "desired config version 2 not running after 10 min: the terminal reports version 1; "
        "it refused: version 2: telemetry_interval_s: Input should be greater than or "
        "equal to 0"
    )
    rules.check(load_states(engine), t1 + dt.timedelta(seconds=900))
    assert len(_drift(engine)) == 1  # raised once, not at every check
    assert sender.run_once(t1 + dt.timedelta(seconds=900)).sent > 0
    [hook] = [b for b in hooks.delivered() if b["data"]["rule"] == "config_drift"]
    assert hook["data"]["event"] == "raised" and hook["body"] == alert["reason"]
    acked = alerts.acknowledge(engine, alert["id"], "J. Li", t1, parts.cfg.alerts.notify)
    assert acked["acked_by"] == "J. Li"
    # the operator gives a value it takes: converged, the alert is cleared (and delivered)
    t2 = t1 + dt.timedelta(hours=1)
    operator_sets("link.telemetry_interval_s=30", t2)
    rules.check(load_states(engine), t2 + dt.timedelta(seconds=601))
    assert _drift(engine)[0]["cleared_at"] is None  # version 3 not running yet: still open
    terminal.receive(engine, t2 + dt.timedelta(seconds=602))
    rules.check(load_states(engine), t2 + dt.timedelta(seconds=603))
    assert _drift(engine)[0]["cleared_at"] is not None
    sender.run_once(t2 + dt.timedelta(seconds=603))
    events = [b["data"]["event"] for b in hooks.delivered() if b["data"]["rule"] == "config_drift"]
    assert events == ["raised", "acked", "cleared"]
    # a terminal that never reports its config drifts too; a revoked one is not watched
    desired.set_config(engine, "device:term-0002", {"log_level": "INFO"}, [], t2)
    desired.refresh(engine, members, signer, t2)
    rules.check(load_states(engine), t2 + dt.timedelta(seconds=900))
    [never] = [a for a in _drift(engine) if a["cleared_at"] is None]
    assert never["subject"] == "term-0002" and "reports nothing yet" in never["reason"]
    parts.close()
