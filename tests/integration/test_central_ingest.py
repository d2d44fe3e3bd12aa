"""The ingest core against a real database (SQLite and PostgreSQL), no MQTT.

Every refusal must land in quarantine with its reason and leave retirees,
results and holds untouched.
"""

import base64
import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from central.certification import ingest
from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor, Reason, ReplayError, Status
from central.certification.policy import add_months
from central.certification.settings import Policy
from central.people import roster
from central.store import schema
from central.store.db import StoreError
from common import idnumber
from protocol import messages
from protocol.limits import MAX_RESULT_BYTES
from protocol.messages import AckStatus
from tests.fixtures.database import CentralPki, Terminal, known_staff

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC)
ALICE = idnumber.make("110105", dt.date(1950, 3, 7), 124)  # F
BOB = idnumber.make("310104", dt.date(1948, 11, 30), 31)  # M
UNKNOWN = idnumber.make("440106", dt.date(1952, 1, 1), 55)


@pytest.fixture
def world(central_engine: Any, central_pki: CentralPki) -> dict[str, Any]:
    """Two retirees (one on a certification hold), two enrolled terminals, an ingestor."""
    roster.upsert(
        central_engine,
        [
            {"id_number": ALICE, "name": "Alice", "sex": "F", "birth_date": dt.date(1950, 3, 7)},
            {
                "id_number": BOB,
                "name": "Bob",
                "sex": "M",
                "birth_date": dt.date(1948, 11, 30),
                "certified_until": dt.date(2020, 1, 31),
            },
        ],
        "test",
        NOW,
    )
    with central_engine.begin() as conn:
        conn.execute(
            schema.holds.insert().values(
                retiree_id=BOB, reason="manual", since=NOW - dt.timedelta(days=30)
            )
        )
    a, b = central_pki.terminal("term-0001"), central_pki.terminal("term-0002")
    trust = DeviceTrust(
        central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir, check_interval_s=0
    )
    known_staff(central_engine, "staff-7")
    return {
        "engine": central_engine,
        "pki": central_pki,
        "a": a,
        "b": b,
        "ingest": Ingestor(central_engine, trust, Policy()),
    }


def _state(engine: Any) -> dict[str, Any]:
    """Everything a refused message must not change."""
    with engine.connect() as conn:
        return {
            "retirees": conn.execute(
                sa.select(schema.retirees).order_by(schema.retirees.c.id_number)
            ).all(),
            "results": conn.scalar(sa.select(sa.func.count()).select_from(schema.results)),
            "holds": conn.execute(sa.select(schema.holds).order_by(schema.holds.c.id)).all(),
            "cert_events": conn.scalar(
                sa.select(sa.func.count())
                .select_from(schema.events)
                .where(schema.events.c.kind.like("certification_%"))
            ),
        }


def _quarantine(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.quarantine).order_by(schema.quarantine.c.id)).all()


def _send(world: dict[str, Any], term: Terminal, payload: bytes, topic: str | None = None) -> Any:
    return world["ingest"].apply(Inbound(topic or term.topic(), payload, dt.datetime.now(dt.UTC)))


def test_assisted_pass_moves_certification_not_a_manual_hold(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["a"]
    result = term.result(BOB)
    outcome = _send(world, term, term.sign(result))
    expected = add_months(result.device_time.date(), 12)
    assert outcome.status is Status.APPLIED
    assert outcome.ack.status is AckStatus.APPLIED and outcome.ack.certified_until == expected
    with engine.connect() as conn:
        until = conn.scalar(
            sa.select(schema.retirees.c.certified_until).where(schema.retirees.c.id_number == BOB)
        )
        hold = conn.execute(sa.select(schema.holds)).one()
        kinds = conn.scalars(
            sa.select(schema.events.c.kind).where(schema.events.c.result_id == result.result_id)
        ).all()
        row = conn.execute(sa.select(schema.results)).one()
    assert until == expected
    assert (hold.released_by_result, hold.released_at) == (None, None)  # staff release it
    assert kinds == ["certification_pass"]
    assert (row.device_id, row.seq, row.applied, row.method) == (
        "term-0001",
        result.seq,
        True,
        "assisted",
    )
    assert row.evidence["assisted"]["staff_id"] == "staff-7"


def test_certification_never_moves_backwards(world: dict[str, Any]) -> None:
    term = world["a"]
    recent = term.result(ALICE)
    older = term.result(ALICE, device_time=NOW - dt.timedelta(days=20))
    assert _send(world, term, term.sign(recent)).ack.certified_until == add_months(
        recent.device_time.date(), 12
    )
    second = _send(world, term, term.sign(older))
    assert second.status is Status.APPLIED
    assert second.ack.certified_until == add_months(recent.device_time.date(), 12)


def test_fail_is_recorded_but_does_not_certify(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["a"]
    before = _state(engine)
    outcome = _send(world, term, term.sign(term.result(BOB, decision="fail")))
    after = _state(engine)
    assert outcome.status is Status.APPLIED and outcome.ack.certified_until == dt.date(2020, 1, 31)
    assert after["retirees"] == before["retirees"] and after["holds"] == before["holds"]
    assert after["results"] == 1 and after["cert_events"] == 1


def test_duplicate_result_id_has_one_effect(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["a"]
    payload = term.sign(term.result(BOB))
    first = _send(world, term, payload)
    again = [_send(world, term, payload) for _ in range(3)]
    assert first.status is Status.APPLIED
    assert all(o.status is Status.DUPLICATE and o.ack.status is AckStatus.DUPLICATE for o in again)
    assert all(o.ack.certified_until == first.ack.certified_until for o in again)
    state = _state(engine)
    assert state["results"] == 1 and state["cert_events"] == 1
    assert _quarantine(engine) == []


def test_batch_with_duplicates_inside_applies_once(world: dict[str, Any]) -> None:
    engine, term = world["engine"], world["a"]
    payload = term.sign(term.result(ALICE))
    now = dt.datetime.now(dt.UTC)
    outcomes = world["ingest"].apply_batch([Inbound(term.topic(), payload, now)] * 4)
    assert [o.status for o in outcomes].count(Status.APPLIED) == 1
    assert [o.status for o in outcomes].count(Status.DUPLICATE) == 3
    assert _state(engine)["results"] == 1


def test_batch_keeps_good_messages_around_bad_ones(world: dict[str, Any]) -> None:
    engine, a, b = world["engine"], world["a"], world["b"]
    now = dt.datetime.now(dt.UTC)
    batch = [
        Inbound(a.topic(), a.sign(a.result(ALICE)), now),
        Inbound(a.topic(), b"garbage", now),
        Inbound(b.topic(), a.sign(a.result(BOB)), now),  # a's result on b's topic
        Inbound(b.topic(), b.sign(b.result(BOB)), now),
        Inbound(a.topic(), a.sign(a.result(UNKNOWN)), now),
    ]
    outcomes = world["ingest"].apply_batch(batch)
    assert [o.status for o in outcomes] == [
        Status.APPLIED,
        Status.QUARANTINED,
        Status.QUARANTINED,
        Status.APPLIED,
        Status.REJECTED,
    ]
    assert sorted(q.reason for q in _quarantine(engine)) == [
        "identity_mismatch",
        "malformed",
        "unknown_retiree",
    ]
    assert _state(engine)["results"] == 2


def _refused(world: dict[str, Any], payload: bytes, topic: str, reason: Reason, acked: bool) -> Any:
    engine = world["engine"]
    before = _state(engine)
    outcome = world["ingest"].apply(Inbound(topic, payload, dt.datetime.now(dt.UTC)))
    assert outcome.reason is reason, outcome
    assert outcome.status is (Status.REJECTED if acked else Status.QUARANTINED)
    assert (outcome.ack is not None) is acked
    if acked:
        assert outcome.ack.status is AckStatus.REJECTED and outcome.ack.reason == reason.value
    assert _state(engine) == before
    rows = _quarantine(engine)
    assert rows[-1].reason == reason.value and rows[-1].acked is acked
    assert rows[-1].payload_size == len(payload)
    return rows[-1]


def test_forged_signature(world: dict[str, Any]) -> None:
    a = world["a"]
    forger = world["pki"].terminal("term-0001", enrol=False)  # right kid, wrong key
    payload = forger.sign(a.result(BOB), kid=a.kid)
    _refused(world, payload, a.topic(), Reason.BAD_SIGNATURE, acked=False)


def test_tampered_payload(world: dict[str, Any]) -> None:
    a = world["a"]
    header, _body, sig = a.sign(a.result(ALICE)).split(b".")
    tampered = messages.encode(a.result(BOB))
    forged_body = base64.urlsafe_b64encode(tampered).rstrip(b"=")
    _refused(world, b".".join([header, forged_body, sig]), a.topic(), Reason.BAD_SIGNATURE, False)


def test_unknown_kid(world: dict[str, Any]) -> None:
    a = world["a"]
    stranger = world["pki"].terminal("term-0001", enrol=False)
    _refused(world, stranger.sign(a.result(BOB)), a.topic(), Reason.UNKNOWN_KID, False)


def test_unknown_device(world: dict[str, Any]) -> None:
    ghost = world["pki"].terminal("term-0099", enrol=False)
    row = _refused(
        world, ghost.sign(ghost.result(BOB)), ghost.topic(), Reason.UNKNOWN_DEVICE, False
    )
    assert row.device_id == "term-0099" and row.kid == ghost.kid


def test_revoked_device_is_refused_without_restart(world: dict[str, Any]) -> None:
    a = world["a"]
    assert _send(world, a, a.sign(a.result(ALICE))).status is Status.APPLIED
    world["pki"].revoke(a)
    queued = a.result(BOB)
    row = _refused(world, a.sign(queued), a.topic(), Reason.REVOKED_DEVICE, True)
    # what staff need to follow it up: which result, retiree, decision and device time
    assert row.result_id == queued.result_id and BOB in row.detail and "pass" in row.detail
    forger = world["pki"].terminal("term-0001", enrol=False)  # the revoked kid, another key
    _refused(world, forger.sign(a.result(BOB), kid=a.kid), a.topic(), Reason.BAD_SIGNATURE, False)


def test_topic_payload_device_mismatch(world: dict[str, Any]) -> None:
    a, b = world["a"], world["b"]
    # b signs a result that names device a, on b's own topic
    forged = b.result(BOB).model_copy(update={"device_id": "term-0001"})
    _refused(world, b.sign(forged), b.topic(), Reason.IDENTITY_MISMATCH, False)
    # a's genuine result re-published on b's topic
    _refused(world, a.sign(a.result(BOB)), b.topic(), Reason.IDENTITY_MISMATCH, False)


def test_seq_reused(world: dict[str, Any]) -> None:
    a = world["a"]
    first = a.result(ALICE, seq=7)
    assert _send(world, a, a.sign(first)).status is Status.APPLIED
    row = _refused(world, a.sign(a.result(BOB, seq=7)), a.topic(), Reason.SEQ_REUSED, True)
    assert str(first.result_id) in row.detail


def test_out_of_order_seq_is_fine(world: dict[str, Any]) -> None:
    a = world["a"]
    assert _send(world, a, a.sign(a.result(ALICE, seq=9))).status is Status.APPLIED
    assert _send(world, a, a.sign(a.result(BOB, seq=8))).status is Status.APPLIED


def test_future_device_time(world: dict[str, Any]) -> None:
    a = world["a"]
    late = a.result(BOB, device_time=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    _refused(world, a.sign(late), a.topic(), Reason.FUTURE_TIME, True)


def test_too_old(world: dict[str, Any]) -> None:
    a = world["a"]
    old = a.result(BOB, device_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=61))
    _refused(world, a.sign(old), a.topic(), Reason.TOO_OLD, True)


def test_oversize(world: dict[str, Any]) -> None:
    a = world["a"]
    payload = a.sign(a.result(BOB)) + b"A" * MAX_RESULT_BYTES
    row = _refused(world, payload, a.topic(), Reason.OVERSIZE, False)
    assert len(row.payload_head) == 2048


def test_unknown_retiree(world: dict[str, Any]) -> None:
    a = world["a"]
    _refused(world, a.sign(a.result(UNKNOWN)), a.topic(), Reason.UNKNOWN_RETIREE, True)


def test_schema_error_after_valid_signature_is_acked_rejected(world: dict[str, Any]) -> None:
    a = world["a"]
    body = messages.encode(a.result(BOB))[:-1] + b',"extra":1}'
    _refused(world, a.sign(body), a.topic(), Reason.SCHEMA, True)


def test_resent_rejection_adds_no_second_row(world: dict[str, Any]) -> None:
    a = world["a"]
    payload = a.sign(a.result(UNKNOWN))
    assert _send(world, a, payload).status is Status.REJECTED
    assert _send(world, a, payload).status is Status.REJECTED
    assert len(_quarantine(world["engine"])) == 1


# -- poison: messages that once stopped central (issue 12) -------------------------------


FACE = {
    "method": "face",
    "channel": "kiosk",
    "assisted": None,
    "match": {
        "modality": "face",
        "reference": "template",
        "score": 0.5,
        "threshold": 1.0,
        "model": "sface",
        "attempts": 1,
    },
    "liveness": {"passed": True, "challenges": ["blink"]},
}
POISON: dict[str, dict[str, Any]] = {
    "seq over 64 bits": {"seq": 2**64},
    "seq one over BIGINT": {"seq": 2**63},
    "NaN score": FACE | {"match": FACE["match"] | {"score": float("nan")}},
    "infinite threshold": FACE | {"match": FACE["match"] | {"threshold": float("inf")}},
    "huge score": FACE | {"match": FACE["match"] | {"score": 1e300}},
    "NUL in staff id": {"assisted__staff_id": "staff\x00-7"},
    "NUL in note": {"assisted__note": "seen\x00"},
    "control chars in model": FACE | {"match": FACE["match"] | {"model": "sf\x1bace"}},
    "long challenge": FACE | {"liveness": {"passed": True, "challenges": ["b" * 40_000]}},
    "year 9999 west of UTC": {"device_time": "9999-12-31T23:59:59-23:59"},
    "year 1 east of UTC": {"device_time": "0001-01-01T00:00:00+23:59"},
    "year 2999": {"device_time": "2999-01-01T00:00:00Z"},
    "template not JWE": {"template": "\x00" * 10},
}


def _signed_json(term: Terminal, fields: dict[str, Any]) -> bytes:
    """A valid assisted pass for BOB with ``fields`` replaced (``a__b``: nested), signed."""
    body = json.loads(messages.encode(term.result(BOB)))
    for key, value in fields.items():
        if "__" in key:
            parent, leaf = key.split("__")
            body[parent][leaf] = value
        elif value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return term.sign(json.dumps(body).encode())  # json.dumps writes NaN / Infinity as given


@pytest.mark.parametrize("kind", POISON)
def test_poison_is_refused_by_the_schema_and_good_results_go_on(
    world: dict[str, Any], kind: str
) -> None:
    engine, a, b = world["engine"], world["a"], world["b"]
    now = dt.datetime.now(dt.UTC)
    poison, good = _signed_json(a, POISON[kind]), b.sign(b.result(ALICE))
    outcomes = world["ingest"].apply_batch(
        [Inbound(a.topic(), poison, now), Inbound(b.topic(), good, now)]
    )
    assert [o.status for o in outcomes] == [Status.REJECTED, Status.APPLIED], outcomes
    assert outcomes[0].reason is Reason.SCHEMA and outcomes[0].ack.reason == "schema"
    assert [q.reason for q in _quarantine(engine)] == ["schema"]
    assert _state(engine)["results"] == 1


def test_poison_builder_control(world: dict[str, Any]) -> None:
    """The poison test's builder makes results central applies when nothing is wrong."""
    a = world["a"]
    for fields in ({}, FACE | {"decision": "refer"}):
        assert _send(world, a, _signed_json(a, fields)).status is Status.APPLIED


@pytest.mark.parametrize(
    ("tail", "words"),
    [(b"\n", "trailing whitespace"), (b"\r\n", "trailing whitespace"), (b".x", "4 parts")],
)
def test_jws_with_trailing_bytes_is_malformed_with_a_detail(
    world: dict[str, Any], tail: bytes, words: str
) -> None:
    a = world["a"]
    row = _refused(world, a.sign(a.result(BOB)) + tail, a.topic(), Reason.MALFORMED, False)
    assert words in row.detail


def test_jws_with_a_critical_header_is_malformed_with_a_detail(world: dict[str, Any]) -> None:
    """Built with ``cryptography`` alone, as an attacker's own JOSE code would."""
    a = world["a"]
    header = {"alg": "ES256", "kid": a.kid, "crit": ["exp"], "exp": 1}
    row = _refused(
        world, _es256(a, header, messages.encode(a.result(BOB))), a.topic(), Reason.MALFORMED, False
    )
    assert "critical" in row.detail and "exp" in row.detail


def _es256(term: Terminal, header: dict[str, Any], payload: bytes) -> bytes:
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps(header).encode()) + b"." + b64(payload)
    r, s = decode_dss_signature(term.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input + b"." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def test_hand_made_jws_control(world: dict[str, Any]) -> None:
    """``_es256`` makes tokens central accepts when the header is plain."""
    a = world["a"]
    token = _es256(a, {"alg": "ES256", "kid": a.kid}, messages.encode(a.result(BOB)))
    assert _send(world, a, token).status is Status.APPLIED


def test_an_exception_applying_one_result_quarantines_it_alone(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug met by one message: that one is quarantined (whole payload kept, acked so it is
    not re-sent forever, traceback in the log); the others of its batch are applied."""
    engine, a, b = world["engine"], world["a"], world["b"]
    real = ingest.certified_until

    def buggy(day: dt.date, born: dt.date, policy: Any) -> dt.date:
        if born == dt.date(1950, 3, 7):  # ALICE
            raise KeyError("a bug met by Alice's result")
        return real(day, born, policy)

    monkeypatch.setattr(ingest, "certified_until", buggy)
    now = dt.datetime.now(dt.UTC)
    bad = a.sign(a.result(ALICE))
    outcomes = world["ingest"].apply_batch(
        [Inbound(a.topic(), bad, now), Inbound(b.topic(), b.sign(b.result(BOB)), now)]
    )
    assert [o.status for o in outcomes] == [Status.REJECTED, Status.APPLIED]
    assert outcomes[0].reason is Reason.INTERNAL_ERROR and outcomes[0].ack is not None
    (row,) = _quarantine(engine)
    assert row.reason == "internal_error" and "KeyError" in row.detail
    assert bytes(row.payload_head) == bad  # whole, to replay once fixed
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    assert _state(engine)["results"] == 1

    monkeypatch.undo()  # the bug is fixed: staff replay the message, once
    assert world["ingest"].replay(row.id).status is Status.APPLIED
    assert world["ingest"].replay(row.id).status is Status.DUPLICATE
    assert _state(engine)["results"] == 2


def test_only_whole_internal_errors_replay(world: dict[str, Any]) -> None:
    a = world["a"]
    row = _refused(world, a.sign(a.result(UNKNOWN)), a.topic(), Reason.UNKNOWN_RETIREE, True)
    with pytest.raises(ReplayError, match="only internal_error"):
        world["ingest"].replay(row.id)
    with pytest.raises(ReplayError, match="no quarantined message 999"):
        world["ingest"].replay(999)


def test_a_batch_that_fails_as_a_whole_is_isolated(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure outside any one message's savepoint (the batch's snapshot read): each
    message gets its own transaction; the one that still fails is quarantined alone."""
    engine, a, b = world["engine"], world["a"], world["b"]
    real = ingest._Snapshot.read.__func__  # type: ignore[attr-defined]

    def picky(cls: Any, conn: Any, items: Any) -> Any:
        if any(i.result.retiree_id == ALICE for i in items):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real(cls, conn, items)

    monkeypatch.setattr(ingest._Snapshot, "read", classmethod(picky))
    now = dt.datetime.now(dt.UTC)
    outcomes = world["ingest"].apply_batch(
        [
            Inbound(b.topic(), b.sign(b.result(BOB)), now),
            Inbound(a.topic(), a.sign(a.result(ALICE)), now),
        ]
    )
    assert [o.status for o in outcomes] == [Status.APPLIED, Status.REJECTED]
    assert [q.reason for q in _quarantine(engine)] == ["internal_error"]


def test_when_not_even_quarantine_can_be_written_the_batch_is_not_applied(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database, not the message, is broken: StoreError, so the consumer PUBACKs
    nothing and the broker redelivers later; nothing is half-written."""
    engine, a = world["engine"], world["a"]
    monkeypatch.setattr(ingest, "certified_until", lambda *_: 1 / 0)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE quarantine RENAME TO quarantine_gone"))
    before = _state(engine)
    with pytest.raises(StoreError):
        world["ingest"].apply_batch(
            [Inbound(a.topic(), a.sign(a.result(BOB)), dt.datetime.now(dt.UTC))]
        )
    assert _state(engine) == before
