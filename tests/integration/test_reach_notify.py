"""The notifier's outbox and adapters: a real SMTP server (aiosmtpd, with STARTTLS), a real
HTTP SMS gateway that fails sometimes, retries with backoff, dead letters, no duplicates."""

import datetime as dt
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as SmtpMessageHandler

from central.notify import adapters, outbox
from central.notify.base import DeliveryError, Message
from central.notify.email import SmtpNotifier
from central.notify.settings import NotifySettings, SmsSettings, SmtpSettings
from central.store import db
from provisioning import pki
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
PHONE = "+8613800138000"


def _msg(key: str, channel: str = "sms", recipient: str = PHONE, body: str = "hello") -> Message:
    return Message(channel, recipient, "Reminder", body, key, "zh")


# -- SMTP ------------------------------------------------------------------------------


class _Inbox(SmtpMessageHandler):
    def __init__(self) -> None:
        super().__init__()
        self.mails: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.mails.append(message)


@pytest.fixture
def smtp_tls(tmp_path: Path) -> Iterator[tuple[Controller, _Inbox, Path]]:
    """A real SMTP server on loopback that requires STARTTLS, its inbox, and its CA file."""
    ca = pki.Authority.create("mail", days=2)
    key = pki.new_key()
    cert = ca.issue("localhost", key.public_key(), 2, server_names=["127.0.0.1"], client=False)
    pki.write_cert(tmp_path / "smtp.pem", cert)
    pki.write_private_key(tmp_path / "smtp.key", key)
    pki.write_cert(tmp_path / "ca.pem", ca.cert)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "smtp.pem", tmp_path / "smtp.key")
    inbox = _Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    yield controller, inbox, tmp_path / "ca.pem"
    controller.stop()


def test_email_over_starttls_through_the_outbox(
    central_engine: Any, smtp_tls: tuple[Controller, _Inbox, Path]
) -> None:
    controller, inbox, ca = smtp_tls
    smtp = SmtpSettings(
        host="127.0.0.1", port=controller.port, starttls=True, ca_file=ca, sender="pensions@city"
    )
    settings = NotifySettings(channels={"email": "smtp"}, smtp=smtp)
    with central_engine.begin() as conn:
        assert outbox.enqueue(conn, _msg("r:1", "email", "wang@example.org", "您好"), T0)
        assert not outbox.enqueue(conn, _msg("r:1", "email", "wang@example.org", "again"), T0)
    sender = outbox.Sender(central_engine, adapters.build(settings), settings)
    assert sender.run_once(T0) == outbox.Outcome(sent=1)
    assert sender.run_once(T0 + dt.timedelta(days=1)) == outbox.Outcome()  # sent once
    [mail] = inbox.mails
    assert mail["To"] == "wang@example.org" and mail["From"] == "pensions@city"
    assert mail["Message-ID"] == f"<{outbox.idempotency_key('r:1')}@lifecert>"
    assert mail.get_payload(decode=True).decode("utf-8").strip() == "您好"


def test_email_without_starttls_refused_by_a_server_that_requires_it(
    smtp_tls: tuple[Controller, _Inbox, Path],
) -> None:
    controller, inbox, _ = smtp_tls
    plain = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=controller.port, starttls=False))
    with pytest.raises(DeliveryError) as caught:
        plain.deliver(_msg("r:2", "email", "wang@example.org"))
    assert "530" in str(caught.value) and not caught.value.retryable
    assert inbox.mails == []


def test_email_to_a_server_that_is_down_is_retryable() -> None:
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=free_port(), starttls=False))
    with pytest.raises(DeliveryError) as caught:
        notifier.deliver(_msg("r:3", "email", "wang@example.org"))
    assert caught.value.retryable


# -- the SMS gateway -------------------------------------------------------------------


@dataclass
class _Gateway:
    """What the gateway saw: every request, and the messages it accepted (once per key)."""

    fail: list[str] = field(default_factory=list)  # per request in turn: "ok", "500", "drop"
    requests: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def gateway() -> Iterator[tuple[_Gateway, str]]:
    """A real HTTP server on loopback playing an SMS gateway; its state and URL."""
    state = _Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key = self.headers["Idempotency-Key"]
            with state.lock:
                state.requests.append({"key": key, "auth": self.headers["Authorization"], **body})
                mode = state.fail.pop(0) if state.fail else "ok"
                if mode == "500":
                    self.send_error(503)
                    return
                if self.headers["Authorization"] != "Bearer s3cret":
                    self.send_error(401)
                    return
                state.accepted.setdefault(key, body)  # idempotent on the key
            if mode == "drop":  # accepted, but the reply is lost
                self.connection.close()
                return
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}/sms"
    server.shutdown()
    server.server_close()


def _sms_settings(tmp_path: Path, url: str, **kw: Any) -> NotifySettings:
    (tmp_path / "token").write_text("s3cret\n")
    sms = SmsSettings(url=url, token_file=tmp_path / "token")  # type: ignore[arg-type]
    return NotifySettings(channels={"sms": "sms_http"}, sms=sms, backoff_s=10, **kw)


def test_sms_retries_with_backoff_and_no_duplicates(
    central_engine: Any,
    gateway: tuple[_Gateway, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, url = gateway
    settings = _sms_settings(tmp_path, url)
    sender = outbox.Sender(central_engine, adapters.build(settings), settings)
    with central_engine.begin() as conn:
        assert outbox.enqueue_many(conn, [_msg(f"k{i}", body=f"code {i}") for i in range(3)], T0)
        assert outbox.enqueue_many(conn, [_msg("k1"), _msg("k3")], T0) == ["k3"]  # k1 is there
    # k0 fails, k1 is accepted but its reply is lost, k2 ok, k3 fails
    state.fail = ["500", "drop", "ok", "500"]
    caplog.set_level(logging.INFO)
    assert sender.run_once(T0) == outbox.Outcome(sent=1, retried=3)
    assert sender.run_once(T0 + dt.timedelta(seconds=9)) == outbox.Outcome()  # backing off
    assert sender.run_once(T0 + dt.timedelta(seconds=10)) == outbox.Outcome(sent=3)
    assert sorted(state.accepted) == sorted(outbox.idempotency_key(f"k{i}") for i in range(4))
    k1 = [r for r in state.requests if r["key"] == outbox.idempotency_key("k1")]
    assert len(k1) == 2 and k1[0] == k1[1]  # the retry carried the same key: deduplicated
    assert {r["to"] for r in state.requests} == {PHONE}
    with central_engine.connect() as conn:
        assert outbox.counts(conn) == {"pending": 0, "sent": 4, "dead": 0}
    logged = caplog.text
    assert PHONE not in logged and "13800138000" not in logged and "code 1" not in logged


def test_sms_dead_letter_after_max_attempts_then_retried(
    central_engine: Any, gateway: tuple[_Gateway, str], tmp_path: Path
) -> None:
    state, url = gateway
    settings = _sms_settings(tmp_path, url, max_attempts=2)
    sender = outbox.Sender(central_engine, adapters.build(settings), settings)
    with central_engine.begin() as conn:
        outbox.enqueue(conn, _msg("dead-1"), T0)
    state.fail = ["500", "500"]
    assert sender.run_once(T0) == outbox.Outcome(retried=1)
    assert sender.run_once(T0 + dt.timedelta(hours=1)) == outbox.Outcome(dead=1)
    with central_engine.connect() as conn:
        [dead] = outbox.dead_letters(conn)
    assert dead["key"] == "dead-1" and dead["attempts"] == 2
    assert dead["recipient"] == "+*********8000" and "503" in dead["last_error"]
    assert sender.run_once(T0 + dt.timedelta(days=1)) == outbox.Outcome()  # stays dead
    with central_engine.begin() as conn:
        assert outbox.retry(conn, "dead-1", T0 + dt.timedelta(days=1))
        assert not outbox.retry(conn, "no-such-key")
    assert sender.run_once(T0 + dt.timedelta(days=1)) == outbox.Outcome(sent=1)


def test_sms_wrong_token_is_a_dead_letter_at_once(
    central_engine: Any, gateway: tuple[_Gateway, str], tmp_path: Path
) -> None:
    state, url = gateway
    settings = _sms_settings(tmp_path, url)
    (tmp_path / "token").write_text("wrong\n")
    sender = outbox.Sender(central_engine, adapters.build(settings), settings)
    with central_engine.begin() as conn:
        outbox.enqueue(conn, _msg("auth-1"), T0)
    assert sender.run_once(T0) == outbox.Outcome(dead=1)
    assert state.accepted == {}


def test_bad_messages_refused_before_storing(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")  # the checks are the
    db.upgrade(engine)  # same on both engines: they run before the database is asked
    with engine.begin() as conn:
        for bad in (_msg(""), _msg("x" * 201), _msg("k", body="x" * 5000), _msg("k", recipient="")):
            with pytest.raises(outbox.OutboxError):
                outbox.enqueue(conn, bad, T0)
        assert outbox.counts(conn)["pending"] == 0


def test_adapter_mismatch_refused_in_config() -> None:
    with pytest.raises(ValueError, match="smtp cannot deliver sms"):
        NotifySettings(channels={"sms": "smtp"})
