"""``audit verify`` over a long chain: rows/s against a bare SHA-256 of the same bytes.

Fills a fresh database with ``--entries`` chained audit entries (one in 100 sealing an
``events`` row, like central's mix of staff actions and events; before/after JSON of a
typical change), then, ``--repeat`` times:

- verify: ``central.staff.audit.verify`` (streams the rows joined with their events,
  re-encodes each canonically, hashes, checks the links and the sealed events);
- read: the same query streamed, nothing else (what the database costs);
- bare: ``hashlib.sha256`` over the entries' canonical bytes (built beforehand, in
  chunks, untimed): the floor for any verifier of this chain.

A ``--url`` database that already holds exactly ``--entries`` entries is reused (filling
1M takes minutes).

Usage: python bench/bench_audit.py [--entries 1000000] [--repeat 3] [--url URL]
"""

import argparse
import datetime as dt
import hashlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.staff import audit
from central.staff.tables import audit_log
from central.store import db
from central.store.schema import events

CHUNK = 20_000
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _entry(n: int, head: tuple[int, str], event_id: int | None) -> tuple[audit.Entry, Any]:
    at = T0 + dt.timedelta(seconds=n)
    if event_id is not None:
        event = SimpleNamespace(
            id=event_id,
            at=at,
            kind="result_applied",
            retiree_id=f"11010519500307{n % 10000:04d}",
            result_id=None,
            device_id="term-0001",
            actor="device:term-0001",
            detail={"certified_until": "2027-06-30", "score": 0.8731},
        )
        entry = audit._make(
            head, at=at, staff_id=event.actor, roles="", action="event.result_applied",
            target=event.retiree_id, before=None, after=audit.event_json(event), address=None,
            cert_serial=None, via="event", event_id=event_id,
        )  # fmt: skip
        return entry, event
    entry = audit._make(
        head, at=at, staff_id=f"clerk.{n % 40}", roles="entry_clerk", action="proposal.enter",
        target=f"retiree:11010519500307{n % 10000:04d}",
        before=audit.canonical_json({"bank_account": "6222020200112233", "amount_cents": 312000}),
        after=audit.canonical_json({"bank_account": "6222020200998877", "amount_cents": 312000}),
        address="10.20.30.40", cert_serial="3f2a9c81d07e4b55a1c2", via="console", event_id=None,
    )  # fmt: skip
    return entry, None


def fill(engine: Engine, entries: int) -> None:
    """``entries`` chained entries, one in 100 sealing an event."""
    head, event_id = (0, audit.GENESIS), 0
    with engine.begin() as conn:
        for start in range(0, entries, CHUNK):
            rows, evs = [], []
            for n in range(start, min(start + CHUNK, entries)):
                sealed = None
                if n % 100 == 50:
                    event_id += 1
                    sealed = event_id
                entry, event = _entry(n, head, sealed)
                if event is not None:
                    evs.append(vars(event))
                rows.append(audit._values(entry))
                head = (entry.id, entry.hash)
            if evs:
                conn.execute(events.insert(), evs)
            conn.execute(audit_log.insert(), rows)


def read_only(engine: Engine) -> int:
    """Stream verify's query and touch each row, nothing else."""
    count = 0
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
            audit._verify_query()
        )
        for row in rows:
            count += row.id > 0
    return count


def bare_seconds(engine: Engine) -> float:
    """Seconds hashlib takes over every entry's canonical bytes (built untimed, in chunks)."""
    total = 0.0
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(
            sa.select(audit_log).order_by(audit_log.c.id)
        )
        for part in rows.partitions(CHUNK):
            chunk = [audit.entry_bytes(r) for r in part]
            started = time.perf_counter()
            for data in chunk:
                hashlib.sha256(data).hexdigest()
            total += time.perf_counter() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        engine = db.create_engine(url)
        db.upgrade(engine)
        started = time.perf_counter()
        if audit.count(engine) != args.entries:
            fill(engine, args.entries)
        print(
            f"# {platform.node()} {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {engine.dialect.name}"
        )
        print(f"filled {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
        ratios, verify_rates = [], []
        for run in range(1, args.repeat + 1):
            started = time.perf_counter()
            verified = audit.verify(engine)
            verify_s = time.perf_counter() - started
            assert verified.entries == args.entries and verified.unsealed_events == 0
            started = time.perf_counter()
            read_only(engine)
            read_s = time.perf_counter() - started
            bare_s = bare_seconds(engine)
            n = args.entries
            verify_rates.append(n / verify_s)
            ratios.append(verify_s / bare_s)
            print(
                f"run {run}: verify {n / verify_s:,.0f} rows/s ({verify_s:.2f} s); "
                f"read only {n / read_s:,.0f} rows/s; bare sha256 {n / bare_s:,.0f} rows/s "
                f"({bare_s:.2f} s); verify = {verify_s / bare_s:.1f}x bare"
            )
        print(
            f"median: verify {statistics.median(verify_rates):,.0f} rows/s, "
            f"{statistics.median(ratios):.1f}x the bare SHA-256; load {os.getloadavg()[0]:.1f}"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
