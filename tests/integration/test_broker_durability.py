"""A broker crash right after it acknowledged a QoS 1 message: what is lost, and who recovers it.

Measured on Mosquitto 2.0.11 with the generated config: the broker saves its
sessions and queues only every ``autosave_interval`` (30 s) and on a clean stop,
so a ``kill -9`` right after a PUBACK loses that message and every session made
since the last save. (``autosave_on_changes`` closes the window at a price:
bench/bench_broker_autosave.py.) Nothing the project sends depends on that
save: a terminal re-sends each result until central's *signed* ack arrives, and
central answers a re-sent result with a fresh ack (``duplicate``), so a lost
result and a lost ack both end delivered, applied once. The tests below pin the
window and the two recoveries, with the save pushed far away (autosave 3600 s)
so that the crash always falls inside the window.
"""

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol import topics
from provisioning.stack import Stack
from tests.fixtures.broker import FleetBroker, MqttPeer, central_login, enrol_bundle
from tests.fixtures.stack import central_url, count, make_stack, record, times_applied

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A = "term-d01"
FAST_RESEND = {
    "LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S": "2",
    "LIFECERT_EDGE__OUTBOX__BACKOFF_MAX_S": "4",
}
NO_SAVE = {"autosave_interval": 3600}


def test_a_puback_is_not_a_save(broker: FleetBroker) -> None:
    """The window the end-to-end re-sends cover: acknowledged, then gone with a crash."""
    bundle = enrol_bundle(broker.fleet, A)
    central = central_login(broker.fleet).as_client("lifecert-central-1")
    with MqttPeer(central, broker.port, session_expiry=3600) as c:
        assert not c.subscribe(topics.shared_results()).is_failure
    with MqttPeer(bundle, broker.port) as device:
        assert not device.publish(topics.device_topic(A, "result"), b"acked").is_failure
        broker.kill()  # right after the PUBACK
    broker.start()
    with MqttPeer(central, broker.port, session_expiry=3600) as c:
        assert not c.session_present
        assert c.expect(1.0) is None


def _sent(built: Stack, device_id: str) -> bool:
    rows = json.loads(built.edge(device_id, "outbox", "--json"))["rows"]
    return bool(rows) and all(r["attempts"] >= 1 for r in rows)


def _wait(built: Stack, done: Callable[[], bool], what: str) -> None:
    built.wait_until(done, 60, what, poll=0.1)


def test_a_result_acked_by_the_broker_then_lost_is_sent_again(tmp_path: Path) -> None:
    built, ids = make_stack(tmp_path, [A], **NO_SAVE)
    with built:
        built.broker.start()
        built.start_central()
        built.stop("central-1")  # its session (in the share group) waits at the broker
        built.start_edge(A, FAST_RESEND)
        rids = record(built, A, ids, 3)
        _wait(built, lambda: _sent(built, A), "the terminal to publish")
        time.sleep(0.5)  # PUBACKs on loopback take milliseconds
        built.broker.kill()
        built.broker.start()
        built.start_central()
        built.wait_delivered([A], timeout=90)
        url = central_url(built)
        assert [times_applied(url, r) for r in rids] == [1, 1, 1]
        assert count(url, "results") == 3


def test_an_ack_acked_by_the_broker_then_lost_is_derived_again(tmp_path: Path) -> None:
    built, ids = make_stack(tmp_path, [A], **NO_SAVE)
    with built:
        built.broker.start()
        built.start_central()
        built.start_edge(A, FAST_RESEND)  # its persistent session subscribes to its acks
        built.signal("central-1", signal.SIGSTOP)
        rids = record(built, A, ids, 2)
        _wait(built, lambda: _sent(built, A), "the terminal to publish")
        built.stop(A)  # offline: central's acks will wait in its session at the broker
        built.signal("central-1", signal.SIGCONT)
        url = central_url(built)
        _wait(built, lambda: count(url, "results") == 2, "central to apply both")
        time.sleep(0.5)  # central publishes the signed ack right after its commit
        built.broker.kill()  # the broker had acked central's ack; the terminal never saw it
        built.broker.start()
        assert built.outbox_counts(A)["pending"] == 2
        built.start_edge(A, FAST_RESEND)  # re-sends; central answers 'duplicate', signed
        built.wait_delivered([A], timeout=90)
        assert [times_applied(url, r) for r in rids] == [1, 1]
        rows = json.loads(built.edge(A, "outbox", "--json"))["rows"]
        assert {r["ack"]["status"] for r in rows} == {"duplicate"}
