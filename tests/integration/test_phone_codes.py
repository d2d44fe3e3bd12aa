"""The phone channel's one-time codes on SQLite and PostgreSQL, and central's answers.

``PhoneCodes`` on a migrated database with a roster carrying phone numbers; the notifier
is a hand-written recorder of what would be texted (the SMS adapter itself is reach's,
tested against a local gateway there; the browser test sends codes through it).
"""

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from central.channels.answers import PhoneAnswers
from central.channels.codes import SEND_AFTER_S, Deliveries, PhoneCodes, mobile_gate
from central.channels.settings import PhoneSettings
from central.channels.tables import phone_code_log, phone_codes, phone_verifications
from central.notify.base import Message
from central.people import roster
from central.store import db
from common import idnumber
from protocol import messages, signing
from protocol.messages import Result
from tests.fixtures.database import _pg_admin
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

KNOWN = idnumber.make("110105", dt.date(1950, 3, 7), 124)
NO_PHONE = idnumber.make("310104", dt.date(1948, 11, 30), 31)
UNKNOWN = idnumber.make("440305", dt.date(1951, 1, 1), 77)
PHONE = "+8613800138000"
Setup = tuple[PhoneCodes, "Texts", "Clock", sa.Engine]


class Texts:
    """A notifier that keeps the messages it is given (the port's hand-written fake)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.sent.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def migrated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sa.Engine]:
    """A migrated database per engine with a roster of two, shared by this module's tests."""
    root = tmp_path_factory.mktemp("codes")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{root / 'central.sqlite'}", None
    else:
        drop = f"lifecert_test_codes_{os.getpid()}"
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{drop}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{drop}"
    engine = db.create_engine(url)
    db.upgrade(engine)
    csv = root / "roster.csv"
    csv.write_text(
        "id_number,name,sex,birth_date,community,phone,language\n"
        f"{KNOWN},Wang,{idnumber.sex(KNOWN)},{idnumber.birth_date(KNOWN)},C1,{PHONE},en\n"
        f"{NO_PHONE},Li,{idnumber.sex(NO_PHONE)},{idnumber.birth_date(NO_PHONE)},C1,,\n"
    )
    report = roster.import_csv(engine, csv, actor="test")
    assert report.added == 2, report
    yield engine
    engine.dispose()
    if drop is not None:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


@pytest.fixture
def setup(migrated: sa.Engine) -> Iterator[tuple[PhoneCodes, Texts, Clock, sa.Engine]]:
    """Empty code tables, a fresh clock and a notifier that keeps what it is given."""
    with migrated.begin() as conn:
        for table in (phone_codes, phone_code_log, phone_verifications):
            conn.execute(table.delete())
    texts, clock = Texts(), Clock()
    deliveries = Deliveries(texts)
    codes = PhoneCodes(
        migrated, PhoneSettings(per_client_per_hour=50), deliveries, b"k" * 32, clock
    )
    yield codes, texts, clock, migrated
    deliveries.close()


def _code(texts: Texts, n: int = 1) -> str:
    wait_until(lambda: len(texts.sent) >= n, 5, "the code message")
    return texts.sent[n - 1].body.split("code is ")[1][:6]


def _tables(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(phone_codes)).all()]


def test_a_code_reaches_the_rosters_phone_and_opens_once(setup: Setup) -> None:
    codes, texts, _clock, engine = setup
    assert codes.send(KNOWN, "10.0.0.1") == "sent"
    code = _code(texts)
    message = texts.sent[0]
    assert message.recipient == PHONE and message.channel == "sms" and message.language == "en"
    with engine.connect() as conn:
        stored = conn.execute(sa.select(phone_codes.c.code_mac)).scalar_one()
    assert code not in stored and len(stored) == 64  # an HMAC, never the code
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert codes.check(KNOWN, wrong, "10.0.0.1", "remote-01") == "wrong"
    assert codes.check(KNOWN, code, "10.0.0.1", "remote-01") == "ok"
    assert codes.check(KNOWN, code, "10.0.0.1", "remote-01") == "wrong"  # used up


def test_unknown_id_and_no_phone_answer_like_a_known_one(setup: Setup) -> None:
    codes, texts, _clock, engine = setup
    timings = {}
    for who in (UNKNOWN, NO_PHONE, KNOWN):
        t0 = time.perf_counter()
        assert codes.send(who, "10.0.0.2") == "sent"
        timings[who] = time.perf_counter() - t0
        assert codes.check(who, "000000", "10.0.0.2", "remote-01") in ("wrong", "ok")
    wait_until(lambda: len(texts.sent) == 1, 5, "one message")
    assert [m.recipient for m in texts.sent] == [PHONE]  # nobody else was texted
    assert len(_tables(engine)) == 3  # a code row for each: they behave alike
    # same work either way: no answer takes much longer than another (generous for CI)
    assert max(timings.values()) < 5 * min(timings.values()) + 0.05, timings


def _traced(engine: sa.Engine, calls: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Each call's SQL statements, with the number of parameter sets each ran with."""
    seen: list[tuple[str, int]] = []

    def statement(conn: object, cursor: object, sql: str, params: object, *rest: object) -> None:
        seen.append((sql, len(params) if isinstance(params, list) else 1))

    traces: dict[str, object] = {}
    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        for name, call in calls.items():
            seen.clear()
            traces[name] = (call(), list(seen))
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
    return traces


def test_a_code_request_runs_the_same_statements_for_every_id_number(setup: Setup) -> None:
    """What central does for an ID number with a phone, without one and unknown: the same
    SQL, with the same number of rows each (bench/bench_code_timing.py times it)."""
    codes, _texts, _clock, engine = setup
    traces = _traced(
        engine,
        {who: lambda who=who: codes.send(who, "10.0.0.5") for who in (KNOWN, NO_PHONE, UNKNOWN)},
    )
    outcome, statements = traces[KNOWN]  # type: ignore[misc]
    assert outcome == "sent" and statements, traces
    assert traces[NO_PHONE] == traces[KNOWN] and traces[UNKNOWN] == traces[KNOWN], traces


def test_a_code_check_runs_the_same_statements_with_or_without_a_code(setup: Setup) -> None:
    """A wrong code, an expired one and none at all (on the roster or not): the same SQL,
    the same answer (bench/bench_code_timing.py --endpoint verify times it)."""
    codes, texts, clock, engine = setup
    codes.send(NO_PHONE, "10.0.0.6")  # expires before the checks
    clock.now += dt.timedelta(seconds=301)
    codes.send(KNOWN, "10.0.0.6")
    wrong = f"{(int(_code(texts)) + 1) % 10**6:06d}"
    later = idnumber.make("510107", dt.date(1944, 8, 8), 5)  # on no list, never asked
    traces = _traced(
        engine,
        {
            name: lambda who=who: codes.check(who, wrong, "10.0.0.6", "remote-01")
            for name, who in (
                ("wrong", KNOWN),
                ("expired", NO_PHONE),
                ("no code", UNKNOWN),
                ("never asked", later),
            )
        },
    )
    outcome, statements = traces["wrong"]  # type: ignore[misc]
    assert outcome == "wrong" and statements, traces
    assert all(trace == traces["wrong"] for trace in traces.values()), traces


def test_no_code_answers_and_locks_like_a_wrong_one_and_a_new_code_opens(setup: Setup) -> None:
    """Tries count alike with or without a code (a lock says nothing either), and a code
    asked for afterwards starts afresh: the right one opens, wrong ones count."""
    codes, texts, _clock, engine = setup
    codes.send(KNOWN, "10.0.0.7")
    right = _code(texts)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    answers = {
        who: [codes.check(who, wrong, "10.0.0.7", "remote-01") for _ in range(6)]
        for who in (KNOWN, NO_PHONE, UNKNOWN)
    }
    assert answers[KNOWN] == ["wrong"] * 5 + ["locked"], answers
    assert answers[NO_PHONE] == answers[UNKNOWN] == answers[KNOWN], answers
    assert codes.check(KNOWN, right, "10.0.0.7", "remote-01") == "locked"
    for who in (KNOWN, UNKNOWN):
        codes.send(who, "10.0.0.7")
    right = _code(texts, 2)
    assert codes.check(UNKNOWN, right, "10.0.0.7", "remote-01") == "wrong"  # not its code
    assert codes.check(KNOWN, wrong, "10.0.0.7", "remote-01") == "wrong"
    assert codes.check(KNOWN, right, "10.0.0.7", "remote-01") == "ok"
    with engine.connect() as conn:
        tries = dict(conn.execute(sa.select(phone_codes.c.id_number, phone_codes.c.tries)).all())
    assert tries == {NO_PHONE: 5, UNKNOWN: 1}  # KNOWN's code is used up


def test_a_text_leaves_only_after_its_answer_is_out() -> None:
    """Sending at once competed with the answer for the CPU (bench/bench_code_timing.py)."""
    delivered: list[float] = []

    class Clocked:
        def deliver(self, message: Message) -> None:
            delivered.append(time.monotonic())

    message = Message(channel="sms", recipient=PHONE, subject="code", body="x", key="k")
    with Deliveries(Clocked()) as deliveries:
        queued = time.monotonic()
        for _ in range(10):
            deliveries.put(message)
        wait_until(lambda: len(delivered) == 10, 5, "the texts")
    assert all(at - queued >= SEND_AFTER_S for at in delivered), (queued, delivered)
    assert delivered[-1] - queued < 9 * SEND_AFTER_S  # queued together: not one delay each


def test_expired_and_too_many_tries(setup: Setup) -> None:
    codes, texts, clock, _engine = setup
    codes.send(KNOWN, "10.0.0.3")
    code = _code(texts)
    clock.now += dt.timedelta(seconds=301)
    assert codes.check(KNOWN, code, "10.0.0.3", "remote-01") == "wrong"  # expired
    clock.now += dt.timedelta(seconds=60)
    codes.send(KNOWN, "10.0.0.3")
    code = _code(texts, 2)
    for _ in range(5):
        assert codes.check(
            KNOWN, "999999" if code != "999999" else "000000", "10.0.0.3", "remote-01"
        ) in ("wrong",)
    assert codes.check(KNOWN, code, "10.0.0.3", "remote-01") == "locked"  # even the right one, now


def test_rate_limits_per_id_phone_and_client(setup: Setup) -> None:
    codes, _texts, clock, _engine = setup
    for i in range(5):
        assert codes.send(UNKNOWN, f"10.1.0.{i}") == "sent"
    assert codes.send(UNKNOWN, "10.1.0.9") == "rate_limited"  # any ID number: reveals nothing
    clock.now += dt.timedelta(days=1, seconds=1)
    assert codes.send(UNKNOWN, "10.1.0.9") == "sent"
    small = PhoneCodes(
        codes.engine, PhoneSettings(per_client_per_hour=3), codes.deliveries, b"k" * 32, clock
    )
    for _ in range(3):
        assert small.send(KNOWN, "10.2.0.1") == "sent"
    assert small.send(KNOWN, "10.2.0.1") == "rate_limited"  # per client address
    with codes.engine.connect() as conn:
        keys = conn.execute(sa.select(phone_code_log.c.key)).scalars().all()
    assert all(PHONE not in k and KNOWN not in k for k in keys)


def test_only_remote_terminals_are_answered(setup: Setup) -> None:
    codes, texts, _clock, _engine = setup
    key = ec.generate_private_key(ec.SECP256R1())
    signer = signing.Signer(key, "central")
    verifier = signing.Verifier(key.public_key())
    answers = PhoneAnswers(codes, PhoneSettings(remote_devices=("remote-01",)))

    def signed(reply: messages.Reply) -> str:  # as the template service signs it
        return signer.sign(messages.encode(reply))

    handlers = answers.handlers()
    body = {"op": "phone_code", "request_id": "a" * 32, "retiree_id": KNOWN, "client": "x"}
    reply = messages.decode(
        messages.Reply,
        verifier.verify(signed(handlers["phone_code"]("term-k01", json.dumps(body).encode()))),
    )
    assert reply.status == "error" and reply.error == "not_a_remote_terminal"
    assert texts.sent == []
    ok = messages.decode(
        messages.Reply,
        verifier.verify(signed(handlers["phone_code"]("remote-01", json.dumps(body).encode()))),
    )
    assert ok.status == "ok" and ok.data == {
        "request_id": "a" * 32,
        "device_id": "remote-01",
        "retiree_id": KNOWN,
        "outcome": "sent",
    }
    bad = {**body, "op": "phone_verify", "code": "12ab56"}
    refused = messages.decode(
        messages.Reply,
        verifier.verify(signed(handlers["phone_verify"]("remote-01", json.dumps(bad).encode()))),
    )
    assert refused.status == "error" and "code" in (refused.error or "")


def test_a_mobile_result_needs_a_code_checked_by_its_device(setup: Setup) -> None:
    codes, texts, clock, engine = setup
    codes.send(KNOWN, "10.3.0.1")
    assert codes.check(KNOWN, _code(texts), "10.3.0.1", "remote-01") == "ok"
    checked = clock.now

    def result(device: str, at: dt.datetime, who: str = KNOWN) -> Result:
        return Result.model_validate(
            {
                "result_id": uuid.uuid4(),
                "device_id": device,
                "seq": 1,
                "device_time": at,
                "retiree_id": who,
                "method": "face",
                "decision": "pass",
                "channel": "mobile",
                "match": {
                    "modality": "face",
                    "reference": "template",
                    "score": 0.5,
                    "threshold": 1.08,
                    "model": "bench",
                    "attempts": 1,
                },
                "liveness": {"passed": True, "challenges": ["nod", "turn_left"]},
            }
        )

    with engine.connect() as conn:
        assert mobile_gate(conn, result("remote-01", checked + dt.timedelta(minutes=3))) is None
        assert mobile_gate(conn, result("remote-02", checked))  # another remote terminal
        assert mobile_gate(conn, result("remote-01", checked, NO_PHONE))  # another retiree
        late = checked + dt.timedelta(minutes=40)
        assert "30 minutes" in (mobile_gate(conn, result("remote-01", late)) or "")
        early = checked - dt.timedelta(minutes=10)  # signed before the code was checked
        assert mobile_gate(conn, result("remote-01", early))
