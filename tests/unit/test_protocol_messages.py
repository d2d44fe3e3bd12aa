"""Schemas, topics and ID numbers of the wire contract."""

import datetime as dt
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import idnumber
from protocol import messages, topics
from protocol.errors import MessageError

RETIREE = idnumber.make("110105", dt.date(1950, 3, 7), 123)


def assisted(**over: object) -> messages.Result:
    fields: dict[str, object] = {
        "result_id": uuid.uuid4(),
        "device_id": "term-0001",
        "seq": 1,
        "device_time": dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC),
        "retiree_id": RETIREE,
        "method": "assisted",
        "decision": "pass",
        "channel": "desk",
        "assisted": {"staff_id": "staff-7"},
    }
    fields.update(over)
    return messages.Result.model_validate(fields)


def test_result_round_trips_through_canonical_json() -> None:
    result = assisted()
    assert messages.decode(messages.Result, messages.encode(result)) == result


def test_encode_is_canonical() -> None:
    result = assisted()
    assert messages.encode(result) == messages.encode(
        messages.decode(messages.Result, messages.encode(result))
    )
    assert b" " not in messages.encode(result)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"retiree_id": RETIREE[:17] + ("1" if RETIREE[17] != "1" else "2")}, "retiree_id"),
        ({"device_id": "Term/1"}, "device_id"),
        ({"seq": 0}, "seq"),
        ({"device_time": dt.datetime(2026, 1, 1, 9, 0)}, "device_time"),
        ({"assisted": None}, "assisted"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_invalid_results_name_the_field(over: dict[str, object], field: str) -> None:
    data = json.loads(messages.encode(assisted()))
    for key, value in over.items():
        data[key] = value.isoformat() if isinstance(value, dt.datetime) else value
    with pytest.raises(MessageError, match=field):
        messages.decode(messages.Result, json.dumps(data).encode())


def test_face_result_needs_match_and_liveness() -> None:
    with pytest.raises(ValueError, match="match"):
        assisted(method="face", assisted=None)


def test_template_only_with_pass() -> None:
    with pytest.raises(ValueError, match="template"):
        assisted(decision="fail", template="x.y.z.w.v")


def test_unknown_field_refused() -> None:
    with pytest.raises(MessageError, match=r"(?i)extra"):
        messages.decode(messages.Result, messages.encode(assisted())[:-1] + b',"x":1}')


@given(st.binary(max_size=300))
def test_decode_never_raises_anything_but_message_error(data: bytes) -> None:
    with pytest.raises(MessageError):
        messages.decode(messages.Result, data)


def test_topics_round_trip() -> None:
    topic = topics.device_topic("term-0001", "result")
    assert topic == "lifecert/v1/dev/term-0001/result"
    assert topics.parse(topic) == ("term-0001", "result")
    assert topics.shared_results() == "$share/central/lifecert/v1/dev/+/result"


@pytest.mark.parametrize("bad", ["", "ab", "Term", "a/b", "a+b", "#", "-abc", "x" * 64])
def test_device_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="device_id"):
        topics.device_topic(bad, "result")


@pytest.mark.parametrize(
    "topic", ["lifecert/v1/dev/term-1/bogus", "other/dev/term-1/result", "lifecert/v1/dev/a/b/c"]
)
def test_parse_refuses_non_device_topics(topic: str) -> None:
    with pytest.raises(ValueError):
        topics.parse(topic)


def test_id_number_check_digit() -> None:
    # A published GB 11643 example: 11010519491231002X.
    assert idnumber.validate("11010519491231002x") == "11010519491231002X"
    assert idnumber.birth_date("11010519491231002X") == dt.date(1949, 12, 31)
    assert idnumber.sex("11010519491231002X") == "F"
    with pytest.raises(idnumber.IdNumberError, match="check digit"):
        idnumber.validate("110105194912310021")
    with pytest.raises(idnumber.IdNumberError, match="birth date"):
        idnumber.validate("11010519491331002" + idnumber.check_digit("11010519491331002"))


@given(
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2025, 12, 31)),
    st.integers(0, 999),
)
def test_made_numbers_validate(born: dt.date, serial: int) -> None:
    number = idnumber.make("440106", born, serial)
    assert idnumber.validate(number) == number
    assert idnumber.birth_date(number) == born
