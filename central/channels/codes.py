"""One-time codes for the phone channel: send one to the roster's phone, check it.

The answer and the database work are the same whether or not an ID number is on the
roster (or has a phone): the same statements run (a per-phone count and log row under a
key standing in for a missing phone), a code row is written either way, the text message
goes out on a worker thread ``SEND_AFTER_S`` after the request, once the answer is out.
A check runs the same statements too, with or without a code for the ID number: without
one, the guess is compared with a stand-in no code matches and the wrong try is counted on
a row written for it (expired at once), so it answers and locks like a wrong code. The
remote terminal also answers both no sooner than ``[remote] code_answer_ms``
(bench/bench_code_timing.py measures both over HTTP). Codes are kept as an HMAC (key
derived from central's sealing key: six digits would fall to a plain hash), never logged.
Limits: codes per ID number (any ID number, so refusals reveal nothing), per phone
(silently not sent) and requests and checks per client address.
"""

import datetime as dt
import hashlib
import hmac
import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from central.channels.settings import PhoneSettings
from central.channels.tables import phone_code_log, phone_codes, phone_verifications
from central.notify.base import DeliveryError, Message, Notifier
from central.people.contacts import Contact, contact_of, mask_phone
from protocol.messages import Result

log = logging.getLogger(__name__)

Sent = Literal["sent", "rate_limited"]
Checked = Literal["ok", "wrong", "locked"]
Clock = Callable[[], dt.datetime]
_DAY = dt.timedelta(days=1)
_HOUR = dt.timedelta(hours=1)
_QUEUE_MAX = 1000
SEND_AFTER_S = 0.1
"""How long after its code request a text message leaves (the answer is out by then)."""

TEXT = {
    "zh": "【养老金认证】您的验证码是{code}，{minutes}分钟内有效。请勿告诉任何人。",
    "en": "Pension certification: your code is {code}. It is valid for {minutes} minutes. "
    "Never tell it to anyone.",
}


def utc_now() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


class Deliveries:
    """Sends code messages on a worker thread, so answers do not wait on the gateway; each
    one ``after_s`` after it was queued, once its answer is out (sending at once competed
    with the answer for the CPU: 1.2 ms slower answers for ID numbers with a phone,
    bench/bench_code_timing.py)."""

    def __init__(self, notifier: Notifier, after_s: float = SEND_AFTER_S) -> None:
        self.notifier, self.after_s = notifier, after_s
        self._queue: queue.Queue[tuple[float, Message] | None] = queue.Queue(_QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name="phone-codes", daemon=True)
        self._thread.start()

    def put(self, message: Message) -> None:
        try:
            self._queue.put_nowait((time.monotonic() + self.after_s, message))
        except queue.Full:
            log.error("code to %s not sent: delivery queue full", mask_phone(message.recipient))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            not_before, message = item
            time.sleep(max(0.0, not_before - time.monotonic()))
            try:
                self.notifier.deliver(message)
            except DeliveryError as exc:
                log.error("code to %s not delivered: %s", mask_phone(message.recipient), exc)
            except Exception:
                log.exception("code to %s not delivered", mask_phone(message.recipient))
            else:
                log.info("code sent to %s", mask_phone(message.recipient))

    def close(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PhoneCodes:
    """Sends and checks codes against the database; ``send`` queues the text message."""

    def __init__(
        self,
        engine: Engine,
        settings: PhoneSettings,
        deliveries: Deliveries,
        secret: bytes,
        clock: Clock = utc_now,
    ) -> None:
        self.engine, self.settings, self.deliveries = engine, settings, deliveries
        self._secret, self._clock = secret, clock

    def _mac(self, *parts: str) -> str:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()

    def _count(self, conn: Connection, kind: str, key: str, since: dt.datetime) -> int:
        t = phone_code_log
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t)
                .where(t.c.kind == kind, t.c.key == key, t.c.at > since)
            ).scalar_one()
        )

    def _log(self, conn: Connection, now: dt.datetime, keys: dict[str, str]) -> None:
        conn.execute(
            phone_code_log.insert(), [{"kind": k, "key": v, "at": now} for k, v in keys.items()]
        )

    def send(self, retiree_id: str, client: str) -> Sent:
        """Make a new code for ``retiree_id`` and text it to the roster's phone, if any."""
        s, now = self.settings, self._clock()
        keys = {"id": self._mac("id", retiree_id), "client": self._mac("client", client)}
        code = f"{secrets.randbelow(10**6):06d}"
        with self.engine.begin() as conn:
            if (
                self._count(conn, "id", keys["id"], now - _DAY) >= s.per_id_per_day
                or self._count(conn, "client", keys["client"], now - _HOUR) >= s.per_client_per_hour
            ):
                return "rate_limited"
            contact: Contact | None = contact_of(conn, retiree_id)
            phone = contact.phone if contact is not None else None
            # the same statements with or without a phone: a key standing in for none
            key = ("phone", phone) if phone is not None else ("no-phone", retiree_id)
            keys["phone"] = self._mac(*key)
            over = self._count(conn, "phone", keys["phone"], now - _DAY) >= s.per_phone_per_day
            if phone is not None and over:
                log.warning("codes to %s: daily limit reached, not sent", mask_phone(phone))
                phone = None
            self._log(conn, now, keys)
            conn.execute(phone_code_log.delete().where(phone_code_log.c.at < now - _DAY))
            conn.execute(phone_codes.delete().where(phone_codes.c.id_number == retiree_id))
            conn.execute(phone_codes.delete().where(phone_codes.c.expires_at < now - _DAY))
            conn.execute(
                phone_codes.insert().values(
                    id_number=retiree_id,
                    code_mac=self._mac("code", retiree_id, code),
                    tries=0,
                    created_at=now,
                    expires_at=now + dt.timedelta(seconds=s.code_ttl_s),
                )
            )
        if phone is not None and contact is not None:
            language = contact.language.value
            self.deliveries.put(
                Message(
                    channel=s.channel,
                    recipient=phone,
                    subject="code",
                    body=TEXT[language].format(code=code, minutes=s.code_ttl_s // 60),
                    key=f"phone-code:{uuid.uuid4()}",
                    language=language,
                )
            )
        return "sent"

    def check(self, retiree_id: str, code: str, client: str, device_id: str) -> Checked:
        """``ok`` (the code is used up, and ``device_id`` may now send a ``mobile`` result for
        ``retiree_id``), ``wrong`` (or expired, or no code), ``locked`` (too many tries)."""
        s, now = self.settings, self._clock()
        client_key = self._mac("client", client)
        mac = self._mac("code", retiree_id, code)
        stand_in = self._mac("no-code", retiree_id)  # compared when there is no code
        t = phone_codes
        with self.engine.begin() as conn:
            if self._count(conn, "check", client_key, now - _HOUR) >= s.per_client_per_hour:
                return "locked"
            self._log(conn, now, {"check": client_key})
            row = conn.execute(
                sa.select(t.c.code_mac, t.c.tries, t.c.expires_at)
                .where(t.c.id_number == retiree_id)
                .with_for_update()
            ).first()
            stored, tries, expires = row if row is not None else (stand_in, 0, now)
            if tries >= s.max_tries:
                return "locked"
            if hmac.compare_digest(stored, mac) and expires > now:
                conn.execute(t.delete().where(t.c.id_number == retiree_id))
                conn.execute(
                    phone_verifications.insert().values(
                        retiree_id=retiree_id, device_id=device_id, verified_at=now
                    )
                )
                return "ok"
            conn.execute(_wrong_try(conn, retiree_id, stand_in, now))
            return "wrong"


def _wrong_try(conn: Connection, retiree_id: str, stand_in: str, now: dt.datetime) -> Any:
    """One more wrong try on ``retiree_id``'s code; without a code, on a row written for it
    (the stand-in's HMAC, expired at once): one statement either way."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    t = phone_codes
    new = dict(id_number=retiree_id, code_mac=stand_in, tries=1, created_at=now, expires_at=now)
    return (
        dialect.insert(t)
        .values(**new)
        .on_conflict_do_update(index_elements=[t.c.id_number], set_={"tries": t.c.tries + 1})
    )


SESSION_WINDOW = dt.timedelta(minutes=30)
"""How long after a code was checked the remote terminal's result may be signed."""
CLOCK_SLACK = dt.timedelta(minutes=5)
"""How far the remote terminal's clock may be off central's."""


def mobile_gate(conn: Connection, result: Result) -> str | None:
    """Why ingest must refuse a ``mobile`` result, or ``None``: its device checked a code
    for its retiree at most ``SESSION_WINDOW`` before signing it (clocks within
    ``CLOCK_SLACK``). A stolen remote terminal key, without the retirees' phones, certifies
    nobody."""
    v = phone_verifications
    at = result.device_time
    found = conn.execute(
        sa.select(v.c.id)
        .where(
            v.c.retiree_id == result.retiree_id,
            v.c.device_id == result.device_id,
            v.c.verified_at >= at - SESSION_WINDOW - CLOCK_SLACK,
            v.c.verified_at <= at + CLOCK_SLACK,
        )
        .limit(1)
    ).first()
    if found is None:
        return (
            f"no one-time code checked by {result.device_id} for this retiree in the "
            f"{SESSION_WINDOW.seconds // 60} minutes before the result"
        )
    return None
