"""Property-based: random and mutated payloads never raise and never change state."""

import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor, Reason, Status
from central.certification.settings import Policy
from central.people import roster
from central.store import schema
from common import idnumber
from protocol import messages
from tests.fixtures.database import CentralPki, known_staff

pytestmark = pytest.mark.integration

RETIREE = idnumber.make("110105", dt.date(1950, 3, 7), 124)


@pytest.fixture
def setup(central_engine: Any, central_pki: CentralPki) -> dict[str, Any]:
    roster.upsert(
        central_engine,
        [{"id_number": RETIREE, "name": "W", "sex": "F", "birth_date": dt.date(1950, 3, 7)}],
        "test",
        dt.datetime.now(dt.UTC),
    )
    term = central_pki.terminal("term-0001")
    trust = DeviceTrust(central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir)
    known_staff(central_engine, "staff-7", "desk-1")
    ingest = Ingestor(central_engine, trust, Policy())
    original = term.sign(term.result(RETIREE))
    first = ingest.apply(Inbound(term.topic(), original, dt.datetime.now(dt.UTC)))
    assert first.status is Status.APPLIED
    with central_engine.connect() as conn:
        before = conn.execute(sa.select(schema.retirees)).all()
    return {"ingest": ingest, "term": term, "original": original, "before": before}


def _mutate(data: bytes, draw: Any) -> bytes:
    """Flip, insert or delete a few bytes, or splice JWS parts."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dot"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[pos : pos + draw(st.integers(1, 8))]
        else:
            out[pos:pos] = b"."
    return bytes(out)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_payloads_are_quarantined_never_applied(setup: dict[str, Any], data: Any) -> None:
    ingest, term = setup["ingest"], setup["term"]
    kind = data.draw(st.sampled_from(["random", "mutated", "text"]))
    if kind == "random":
        payload = data.draw(st.binary(max_size=2048))
    elif kind == "text":
        payload = data.draw(st.text(max_size=512)).encode()
    else:
        payload = _mutate(setup["original"], data.draw)
    topic = data.draw(st.sampled_from([term.topic(), "lifecert/v1/dev/term-0001/ack", "x/y"]))
    outcome = ingest.apply(Inbound(topic, payload, dt.datetime.now(dt.UTC)))
    if payload == setup["original"] and topic == term.topic():
        assert outcome.status is Status.DUPLICATE
    else:
        # a mutation the base64 decoder forgives is the same signed result: a duplicate
        assert outcome.status in (Status.QUARANTINED, Status.REJECTED, Status.DUPLICATE)
        assert (outcome.reason is None) == (outcome.status is Status.DUPLICATE)
    with ingest.engine.connect() as conn:
        assert conn.execute(sa.select(schema.retirees)).all() == setup["before"]
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.results)) == 1
        if outcome.reason is not None:
            reasons = conn.scalars(sa.select(schema.quarantine.c.reason)).all()
            assert outcome.reason.value in reasons


FIELDS = [
    "seq",
    "device_time",
    "retiree_id",
    "method",
    "decision",
    "channel",
    "template",
    "match.score",
    "match.threshold",
    "match.model",
    "match.attempts",
    "liveness.challenges",
    "liveness.pad_score",
    "assisted.staff_id",
    "assisted.note",
]
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([float("nan"), float("inf"), 1e300, -1e300, 5e-324])
    | st.text(max_size=64)
    | st.sampled_from(["\x00", "a\x00b", "\x1b[31m", "x" * 40_000])
    | st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat())
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("field", FIELDS)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_json)
def test_signed_results_with_any_field_value_never_meet_an_internal_error(
    setup: dict[str, Any], field: str, value: Any
) -> None:
    """A terminal's key signs anything: whatever the schema accepts, the database holds
    (no ``internal_error``), and whatever it refuses is refused as ``schema``."""
    ingest, term = setup["ingest"], setup["term"]
    body = json.loads(messages.encode(term.result(RETIREE)))
    body |= {"method": "face", "channel": "kiosk", "decision": "refer"}
    body.pop("assisted")
    body["match"] = {
        "modality": "face",
        "reference": "template",
        "score": 0.5,
        "threshold": 1.0,
        "model": "m",
        "attempts": 1,
    }
    body["liveness"] = {"passed": True, "challenges": ["blink"]}
    body["assisted"] = {"staff_id": "desk-1"}
    node, key = body, field
    if "." in field:
        parent, key = field.split(".")
        node = body[parent]
    node[key] = value
    payload = term.sign(json.dumps(body).encode())
    outcome = ingest.apply(Inbound(term.topic(), payload, dt.datetime.now(dt.UTC)))
    assert outcome.reason is not Reason.INTERNAL_ERROR, outcome
    assert outcome.status in (Status.APPLIED, Status.REJECTED) or outcome.reason is Reason.OVERSIZE
