"""End to end over real processes: terminals → Mosquitto (mTLS, ACL) → central → acks.

Every part runs through its shipped entry point; faults are real signals
(``kill -9``, SIGSTOP/SIGCONT, broker restarts). Effects are counted in
central's database: each result applied exactly once, nothing lost.
"""

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import topics
from provisioning.stack import Stack
from tests.fixtures.stack import central_url, count, make_stack, record, times_applied, watch
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B = "term-a01", "term-b01"
FAST_RESEND = {
    "LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S": "3",
    "LIFECERT_EDGE__OUTBOX__BACKOFF_MAX_S": "6",
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, list[str]]]:
    built, ids = make_stack(tmp_path, [A, B])
    with built:
        built.broker.start()
        yield built, ids


def _applied_once(url: str, result_ids: list[str]) -> None:
    """Every id is in ``results`` exactly once, with one event each, and nothing else is:
    applied, or (a retiree's later assisted passes in a row) referred to review unapplied."""
    assert count(url, "results") == len(result_ids)
    referred = count(url, "events", "WHERE kind = 'certification_referred'")
    assert count(url, "results", "WHERE applied") + referred == len(result_ids)
    assert count(url, "events", "WHERE result_id IS NOT NULL") == len(result_ids)
    assert count(url, "quarantine") == 0


def test_two_terminals_deliver_and_central_applies(tmp_path: Path, db_url: str) -> None:
    built, ids = make_stack(tmp_path, [A, B], database_url=db_url)
    with built as stack:
        stack.broker.start()
        stack.start_central()
        stack.start_edge(A)
        stack.start_edge(B)
        sent = [
            stack.edge(A, "certify-assisted", "--retiree", ids[0], "--staff", "desk-1"),
            stack.edge(B, "certify-assisted", "--retiree", ids[1], "--staff", "desk-2"),
        ]
        assert all("result" in out.lower() for out in sent)
        stack.wait_delivered([A, B], timeout=60)
        assert stack.outbox_counts(A) == {"pending": 0, "delivered": 1, "rejected": 0}
        assert stack.outbox_counts(B) == {"pending": 0, "delivered": 1, "rejected": 0}
        listed = stack.central("retirees", "list", "--json")
        assert listed.count('"certified_until": null') == len(ids) - 2
        url = central_url(stack)
        assert count(url, "results") == 2
        assert count(url, "retirees", "WHERE certified_until IS NOT NULL") == 2


def test_kill9_terminal_between_outbox_write_and_publish(
    stack: tuple[Stack, list[str]],
) -> None:
    """The terminal dies with a result on disk and unpublished: delivered once after restart."""
    built, ids = stack
    built.start_central()
    built.start_edge(A)
    built.signal(A, signal.SIGSTOP)  # the service can no longer publish
    receipt = built.edge(A, "certify-assisted", "--retiree", ids[3], "--staff", "desk-1", "--json")
    built.kill(A)  # power cut: the result was written, never published (it was stopped)
    url = central_url(built)
    assert count(url, "results") == 0
    assert built.outbox_counts(A)["pending"] == 1
    built.start_edge(A)
    built.wait_delivered([A], timeout=60)
    assert count(url, "results") == 1
    assert times_applied(url, json.loads(receipt)["result_id"]) == 1


def test_kill9_terminal_after_publish_before_ack(stack: tuple[Stack, list[str]]) -> None:
    """Published but never acked, the terminal dies and re-sends: central applies it once."""
    built, ids = stack
    built.start_central()
    built.signal("central-1", signal.SIGSTOP)  # central receives nothing, acks nothing
    with watch(built, topics.device_topic(A, "result")) as seen:
        built.start_edge(A)
        rids = record(built, A, ids, 5)
        wait_until(lambda: len(seen.now()) == 5, 30, "the five results at the broker")
        built.kill(A)  # published, no ack could come
        built.start_edge(A)  # re-sends every unacked result at start
        wait_until(lambda: min(seen.now().values()) == 2, 30, "the five re-sent")
    built.signal("central-1", signal.SIGCONT)
    built.wait_delivered([A], timeout=60)
    _applied_once(central_url(built), rids)


def test_broker_restarts_mid_stream(stack: tuple[Stack, list[str]]) -> None:
    built, ids = stack
    built.start_central()
    rids = record(built, A, ids, 300) + record(built, B, ids, 300)
    built.start_edge(A, FAST_RESEND)
    built.start_edge(B, FAST_RESEND)
    url = central_url(built)
    built.wait_until(lambda: count(url, "results") > 50, 60, "the first results to be applied")
    built.broker.restart()
    built.wait_until(lambda: count(url, "results") > 350, 90, "more results after a restart")
    built.broker.kill()  # a crash this time, not a clean stop
    built.broker.start()
    built.wait_delivered([A, B], timeout=120)
    _applied_once(url, rids)


def test_kill9_central_mid_batch(tmp_path: Path, db_url: str) -> None:
    built, ids = make_stack(tmp_path, [A, B], database_url=db_url)
    with built:
        built.broker.start()
        built.start_central()
        rids = record(built, A, ids, 600) + record(built, B, ids, 600)
        built.start_edge(A, FAST_RESEND)
        built.start_edge(B, FAST_RESEND)
        url = central_url(built)
        built.wait_until(lambda: count(url, "results") > 100, 60, "central to be mid-stream")
        built.kill("central-1")
        mid = count(url, "results")
        assert mid < len(rids), "central finished before it could be killed mid-stream"
        built.start_central()
        built.wait_delivered([A, B], timeout=120)
        _applied_once(url, rids)


def test_flood_on_a_slow_central_loses_nothing(tmp_path: Path) -> None:
    """A broker queue far too small drops messages for a lagging central; re-sends recover them."""
    built, ids = make_stack(tmp_path, [A, B], max_queued_messages=50, max_queued_bytes=0)
    with built:
        built.broker.start()
        built.start_central()
        rids = record(built, A, ids, 1000) + record(built, B, ids, 1000)
        # Central lags from the start: it runs 10% of the time while the terminals flood
        # with windows (2 x 1000) far beyond what the broker may hold for it (its receive
        # maximum of 400 in flight + 50 queued).
        built.signal("central-1", signal.SIGSTOP)
        built.start_edges([A, B], {**FAST_RESEND, "LIFECERT_EDGE__OUTBOX__MAX_INFLIGHT": "1000"})
        url = central_url(built)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the pacing is the fault simulated, not a wait
            time.sleep(0.45)
            built.signal("central-1", signal.SIGCONT)
            time.sleep(0.05)
            built.signal("central-1", signal.SIGSTOP)
        built.signal("central-1", signal.SIGCONT)
        dropped = (
            (tmp_path / "logs" / "mosquitto.log")
            .read_text()
            .count("Outgoing messages are being dropped")
        )
        assert dropped > 0, "the small queue never overflowed: the test proves nothing"
        built.wait_delivered([A, B], timeout=180)
        _applied_once(url, rids)
