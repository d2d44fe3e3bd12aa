"""Status lookup: the central function on both engines, the kiosk's request over the real
broker (Mosquitto, mutual TLS, a real ``lifecert-central run``), rate limits, bad input."""

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from central.bootstrap import Central
from central.certification.settings import Policy
from central.certification.templates import Limits, TemplateAnswers
from central.config import load as load_central
from central.payments import runs, status
from central.payments.period import Period
from central.people import roster
from central.store import schema
from common import idnumber
from edge.adapters import keys as edge_keys
from edge.adapters.receipts import CentralReceipts, qr_png, qr_svg
from edge.adapters.status import CentralStatus
from edge.adapters.templates import ReplyError
from edge.bootstrap import open_link
from edge.config import load as load_edge
from edge.session.ports import UnknownRetireeError
from protocol import messages, signing, topics
from provisioning.stack import Stack
from tests.fixtures.stack import central_url, make_stack

pytestmark = pytest.mark.integration

BORN = dt.date(1950, 3, 7)
NOW = dt.datetime(2027, 1, 10, 8, tzinfo=dt.UTC)


def _person(seq: int, until: dt.date | None) -> dict[str, Any]:
    number = idnumber.make("110105", BORN, 100 + 2 * seq)
    return {
        "id_number": number,
        "name": f"Retiree {seq}",
        "sex": idnumber.sex(number),
        "birth_date": BORN,
        "monthly_amount_cents": 320_000,
        "bank_account": f"62220000000{seq:05d}",
        "account_name": f"Retiree {seq}",
        "certified_until": until,
    }


def _result(retiree: str, at: dt.datetime, kid: str, channel: str, **kw: Any) -> dict[str, Any]:
    return {
        "result_id": uuid.uuid4(),
        "device_id": "term-s1",
        "seq": int(at.timestamp()),
        "kid": kid,
        "retiree_id": retiree,
        "method": "face",
        "decision": "pass",
        "channel": channel,
        "device_time": at,
        "received_at": at,
        "applied": True,
        "evidence": {},
    } | kw


def test_status_of_on_both_engines(central_engine: Any) -> None:
    ok, held, manual = _person(1, dt.date(2027, 6, 30)), _person(2, dt.date(2026, 11, 30)), None
    manual = _person(3, dt.date(2027, 6, 30))
    roster.upsert(central_engine, [ok, held, manual], "test", NOW - dt.timedelta(days=90))
    with central_engine.begin() as conn:
        conn.execute(
            schema.results.insert(),
            [
                _result(ok["id_number"], NOW - dt.timedelta(days=200), "k-old", "desk"),
                _result(ok["id_number"], NOW - dt.timedelta(days=20), "k-kiosk", "kiosk"),
                _result(ok["id_number"], NOW - dt.timedelta(days=5), "k-kiosk", "kiosk",
                        decision="fail", applied=False),
            ],
        )  # fmt: skip
        conn.execute(
            schema.holds.insert().values(
                retiree_id=manual["id_number"], reason="manual", since=NOW - dt.timedelta(days=30)
            )
        )
    policy = Policy(timezone="Asia/Shanghai")
    runs.run(central_engine, Period(2027, 1), policy, now=NOW)
    sites = {"k-kiosk": "dongcheng-1"}
    today = dt.date(2027, 1, 10)
    with central_engine.connect() as conn:
        a = status.status_of(conn, ok["id_number"], policy, sites.get, today)
        b = status.status_of(conn, held["id_number"], policy, sites.get, today)
        c = status.status_of(conn, manual["id_number"], policy, sites.get, today)
        nobody = status.status_of(
            conn, idnumber.make("110105", BORN, 998), policy, sites.get, today
        )
        feb = status.status_of(conn, ok["id_number"], policy, sites.get, dt.date(2027, 2, 1))
    assert nobody is None
    assert a == status.Status(
        certified_until=dt.date(2027, 6, 30),
        next_due=dt.date(2027, 6, 30),
        window_opens=dt.date(2027, 5, 31),
        last_certified_on=dt.date(2026, 12, 21),
        last_channel="kiosk",
        last_place="dongcheng-1",
        payment_period="2027-01",
        payment_decision="pay",
        payment_reason=None,
    )
    assert b is not None and (b.payment_decision, b.payment_reason) == (
        "hold",
        "certification_overdue",
    )
    assert b.last_certified_on is None and b.last_place is None
    assert c is not None and (c.payment_decision, c.payment_reason) == ("hold", None)  # private
    assert feb is not None and feb.payment_decision is None  # no run for February yet


# -- the kiosk's request over the real broker ------------------------------------------

DEVICE = "term-st1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[str]]]:
    root = tmp_path_factory.mktemp("status")
    built, ids = make_stack(root, [DEVICE], retirees=3)
    with built:
        built.broker.start()
        built.start_central()
        yield built, ids


def test_kiosk_asks_status_over_the_broker(stack: tuple[Stack, list[str]]) -> None:
    built, ids = stack
    cfg = load_edge(built.edge_config(DEVICE))
    verifier = edge_keys.load(cfg).central_verifier
    with open_link(cfg, on_ack=lambda payload: None) as link:
        link.start()
        lookup = CentralStatus(link, cfg.device_id, verifier, timeout_s=10)
        got = lookup.lookup(ids[0])
        assert got.retiree_id == ids[0] and got.device_id == DEVICE
        assert got.certified_until is None and got.last_channel is None
        with pytest.raises(UnknownRetireeError):
            lookup.lookup(idnumber.make("110105", BORN, 998))


def test_status_requests_rate_limited_per_device_and_bad_ones_refused(
    stack: tuple[Stack, list[str]],
) -> None:
    built, ids = stack
    central = Central(load_central(built.central_config))
    answers = TemplateAnswers(
        central.engine,
        central.trust,
        central.cfg.fleet.devices_dir,
        central.seal_key,
        central.signer,
        central.cfg.require_mqtt().root,
        Limits(burst=2, per_minute=1),
        handlers={"status": status.StatusAnswers(central.engine, Policy(), central.site_of)},
    )
    verifier = signing.Verifier(central.sign_key.public_key())
    req, resp = topics.device_topic(DEVICE, "req"), topics.device_topic(DEVICE, "resp")

    def ask(body: bytes, now: float) -> messages.Reply:
        token = answers.answer(req, body, resp, now=now)
        assert token is not None
        return messages.decode(messages.Reply, verifier.verify(token))

    good = json.dumps({"op": "status", "request_id": "a" * 32, "retiree_id": ids[1]}).encode()
    assert ask(good, 0).status == "ok"
    bad = json.dumps({"op": "status", "request_id": "a" * 32, "retiree_id": "123"}).encode()
    refused = ask(bad, 0)
    assert refused.status == "error" and refused.error and "bad_request" in refused.error
    assert ask(good, 0).error == "rate_limited"  # the third in a burst of 2
    assert ask(good, 120).status == "ok"  # refilled
    # another device's response topic, or an unknown device: no answer at all
    assert answers.answer(req, good, topics.device_topic("term-other", "resp")) is None
    other = topics.device_topic("term-zz9", "req")
    assert answers.answer(other, good, topics.device_topic("term-zz9", "resp")) is None
    central.close()


def test_kiosk_fetches_a_receipt_of_its_own_pass_over_the_broker(
    stack: tuple[Stack, list[str]],
) -> None:
    built, ids = stack
    rid = uuid.uuid4()
    engine = sa.create_engine(central_url(built))
    with engine.begin() as conn:
        conn.execute(
            schema.results.insert(),
            _result(ids[2], NOW, "k", "kiosk", result_id=rid, seq=1, device_id=DEVICE),
        )
        conn.execute(  # a result of the same retiree from another terminal
            schema.results.insert(),
            _result(ids[2], NOW, "k", "kiosk", device_id="term-x1", seq=1),
        )
    engine.dispose()
    cfg = load_edge(built.edge_config(DEVICE))
    keys = edge_keys.load(cfg)
    with open_link(cfg, on_ack=lambda payload: None) as link:
        link.start()
        asker = CentralReceipts(link, DEVICE, keys.central_verifier, keys.central_sign_kid, 10)
        token, found = asker.fetch(rid)
        assert found.result_id == rid and found.masked_id == ids[2][:3] + "*" * 11 + ids[2][-4:]
        assert qr_png(token).startswith(b"\x89PNG") and "<svg" in qr_svg(token)
        with pytest.raises(ReplyError, match="not_found"):
            asker.fetch(uuid.uuid4())
