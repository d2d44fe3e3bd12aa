"""The outbox: durable enqueue, seq across processes, due/back-off, acks."""

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from edge.adapters.outbox import AckOutcome, Entry, Outbox, OutboxError, Status, backoff
from protocol.messages import Ack, AckStatus

DEVICE = "term-0001"
RETIREE = "11010519491231002X"
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def entry(seq: int, result_id: str | None = None) -> Entry:
    """A stand-in signed body: the outbox stores the JWS opaquely."""
    return Entry(
        result_id=result_id or str(uuid.uuid4()),
        jws=f"header.payload-{seq}.signature",
        retiree_id=RETIREE,
        method="assisted",
        decision="pass",
    )


def ack(result_id: str, status: AckStatus = AckStatus.APPLIED, device: str = DEVICE) -> Ack:
    return Ack(result_id=uuid.UUID(result_id), device_id=device, status=status)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Outbox:
    with Outbox(
        tmp_path / "edge.sqlite", DEVICE, ack_timeout_s=10, backoff_max_s=60, clock=clock
    ) as box:
        yield box


def test_enqueue_is_committed_and_visible_to_a_new_connection(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    with Outbox(path, DEVICE) as box:
        receipt = box.enqueue(entry)
        journal = box._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = box._conn.execute("PRAGMA synchronous").fetchone()[0]
        assert not box._conn.in_transaction
    assert (journal, sync) == ("wal", 2)
    raw = sqlite3.connect(path)
    row = raw.execute(
        "SELECT seq, status, jws FROM outbox WHERE result_id = ?", (receipt.result_id,)
    ).fetchone()
    raw.close()
    assert row == (1, "pending", "header.payload-1.signature")


def test_receipt_survives_kill_9_right_after_enqueue(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from tests.unit.test_edge_outbox import entry
        from edge.adapters.outbox import Outbox
        box = Outbox(Path({str(path)!r}), {DEVICE!r})
        receipt = box.enqueue(entry)
        print(receipt.result_id, receipt.seq, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    result_id, seq = proc.stdout.split()
    with Outbox(path, DEVICE) as box:
        row = box.get(result_id)
    assert row is not None
    assert (row.seq, row.status) == (int(seq), Status.PENDING)


def test_seq_is_unique_and_monotonic_across_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    per_process = 150
    script = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from tests.unit.test_edge_outbox import entry
        from edge.adapters.outbox import Outbox
        with Outbox(Path({str(path)!r}), {DEVICE!r}) as box:
            sys.stdin.readline()
            seqs = []
            for _ in range({per_process}):
                seqs.append(box.enqueue(entry).seq)
                time.sleep(0.001)
        print(json.dumps(seqs))
        """
    )
    Outbox(path, DEVICE).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    per_proc = [json.loads(out) for out, _ in outs]
    for seqs in per_proc:
        assert seqs == sorted(seqs) and len(set(seqs)) == per_process
    every = sorted(per_proc[0] + per_proc[1])
    assert every == list(range(1, 2 * per_process + 1))
    raw = sqlite3.connect(path)
    in_commit_order = [r[0] for r in raw.execute("SELECT seq FROM outbox ORDER BY rowid")]
    raw.close()
    assert in_commit_order == every
    interleaved = sum(1 for a, b in itertools.pairwise(per_proc[0]) if b != a + 1)
    assert interleaved > 0, "the two writers never overlapped: the test proved nothing"


def test_failed_build_rolls_back_and_keeps_seq(outbox: Outbox) -> None:
    def broken(seq: int) -> Entry:
        raise ValueError("cannot sign")

    with pytest.raises(ValueError, match="cannot sign"):
        outbox.enqueue(broken)
    assert outbox.enqueue(entry).seq == 1
    assert outbox.counts()["pending"] == 1


def test_enqueue_many_is_one_batch_of_consecutive_seqs(outbox: Outbox) -> None:
    outbox.enqueue(entry)
    receipts = outbox.enqueue_many([entry] * 5)
    assert [r.seq for r in receipts] == [2, 3, 4, 5, 6]
    assert outbox.enqueue_many([]) == []


def test_seq_survives_a_device_id_change_per_device(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    with Outbox(path, DEVICE) as box:
        box.enqueue(entry)
        box.enqueue(entry)
    with Outbox(path, "term-0002") as other:
        assert other.enqueue(entry).seq == 1
        assert [p.seq for p in other.due(10)] == [1]


def test_due_backoff_doubles_and_caps(outbox: Outbox, clock: FakeClock) -> None:
    receipt = outbox.enqueue(entry)
    assert [p.result_id for p in outbox.due(10)] == [receipt.result_id]
    waits = []
    for _ in range(5):
        (pending,) = outbox.due(10)
        outbox.mark_sent([pending.result_id])
        sent_at = clock.now
        clock.advance(0.5)
        while not outbox.due(10):
            clock.advance(0.5)
        waits.append(clock.now - sent_at)
    assert waits == [10, 20, 40, 60, 60]
    row = outbox.get(receipt.result_id)
    assert row is not None and row.attempts == 5


def test_backoff_function() -> None:
    assert [backoff(n, 30, 600) for n in (1, 2, 3, 5, 6, 20)] == [30, 60, 120, 480, 600, 600]


def test_due_orders_by_seq_and_respects_limit(outbox: Outbox, clock: FakeClock) -> None:
    receipts = outbox.enqueue_many([entry] * 5)
    outbox.mark_sent([receipts[0].result_id])
    assert [p.seq for p in outbox.due(3)] == [2, 3, 4]
    clock.advance(10)
    assert [p.seq for p in outbox.due(10)] == [1, 2, 3, 4, 5]


def test_acks_mark_delivered_or_rejected_once(outbox: Outbox) -> None:
    a, b, c = (r.result_id for r in outbox.enqueue_many([entry] * 3))
    outcomes = outbox.mark_acked_many(
        [ack(a), ack(b, AckStatus.REJECTED), ack(c, AckStatus.DUPLICATE)]
    )
    assert outcomes == [AckOutcome.MARKED] * 3
    assert outbox.counts() == {"pending": 0, "delivered": 2, "rejected": 1}
    assert outbox.mark_acked(ack(a, AckStatus.REJECTED)) is AckOutcome.ALREADY
    row = outbox.get(a)
    assert row is not None and row.status is Status.DELIVERED
    assert json.loads(row.ack or "")["status"] == "applied"
    assert outbox.due(10) == []


def test_ack_for_unknown_result_or_other_device_changes_nothing(outbox: Outbox) -> None:
    receipt = outbox.enqueue(entry)
    assert outbox.mark_acked(ack(str(uuid.uuid4()))) is AckOutcome.UNKNOWN
    assert outbox.mark_acked(ack(receipt.result_id, device="term-0002")) is AckOutcome.UNKNOWN
    assert outbox.counts()["pending"] == 1


def test_retry_now_makes_sent_rows_due(outbox: Outbox) -> None:
    receipts = outbox.enqueue_many([entry] * 3)
    outbox.mark_sent([r.result_id for r in receipts[:2]])
    assert [p.seq for p in outbox.due(10)] == [3]
    assert outbox.retry_now() == 2
    assert [p.seq for p in outbox.due(10)] == [1, 2, 3]


def test_rows_and_age_never_expose_the_body(outbox: Outbox, clock: FakeClock) -> None:
    assert outbox.oldest_pending_age() is None
    outbox.enqueue_many([entry] * 3)
    clock.advance(7)
    assert outbox.oldest_pending_age() == 7
    rows = outbox.rows(limit=2)
    assert [r.seq for r in rows] == [3, 2]
    assert all("jws" not in r.as_dict() for r in rows)
    assert outbox.rows(Status.DELIVERED) == []


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    Outbox(path, DEVICE).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            Outbox(path, DEVICE, busy_timeout_s=0.1) as box,
            pytest.raises(OutboxError, match="busy"),
        ):
            box.enqueue(entry)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox(blocker / "edge.sqlite", DEVICE)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version=99")
    raw.close()
    with pytest.raises(OutboxError, match="schema version 99"):
        Outbox(path, DEVICE)
