"""Reminder enqueue for a month of due retirees, beside a bare INSERT of the same rows.

In one run, on one database (a fresh SQLite file, or a fresh PostgreSQL database):

1. ``--retirees`` synthetic retirees, every one due in 20 days (the ``before30`` stage),
   with a phone number (setup, not timed);
2. per repeat, alternating, each on an emptied outbox:
   - ours: ``central.notify.reminders.run`` (pages of the roster by ID number, the
     template rendered per retiree, the outbox insert ``ON CONFLICT DO NOTHING RETURNING``
     and the ``reminders`` rows, one transaction per page of 2,000);
   - bare: the same outbox rows, rendered beforehand, inserted with ``executemany`` into a
     copy of the outbox table (same columns and unique key), 2,000 rows a transaction;
3. once more, ours on the full outbox: every message already there (the daily re-run).

Usage: python bench/bench_reminders.py [--retirees 100000] [--repeat 3] [--database-url URL]
"""

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central.certification.settings import Policy
from central.notify import outbox, reminders
from central.notify.settings import ReminderSettings
from central.store import db, schema
from common import idnumber

ON = dt.date(2027, 1, 1)
NOW = dt.datetime(2027, 1, 1, 8, tzinfo=dt.UTC)
SETTINGS = ReminderSettings(days_before=[30])


def fill(engine: sa.Engine, n: int) -> None:
    """``n`` retirees due on ON + 20 days, each with a phone number."""
    born = dt.date(1940, 1, 1)
    rows = []
    for i in range(n):
        number = idnumber.make("110105", born + dt.timedelta(days=i % 9000), i // 9000 * 2 % 1000)
        rows.append(
            {
                "id_number": number,
                "name": f"Retiree {i}",
                "sex": idnumber.sex(number),
                "birth_date": idnumber.birth_date(number),
                "status": "active",
                "certified_until": ON + dt.timedelta(days=20),
                "phone": f"+86138{i:08d}",
                "language": "zh" if i % 3 else "en",
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(schema.retirees.insert(), rows[start : start + 10_000])


def bare_rows(engine: sa.Engine) -> list[dict[str, object]]:
    """The outbox rows a run makes, rendered and keyed the same way (not timed)."""
    templates = reminders.load_templates()
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(sa.select(schema.retirees).order_by(schema.retirees.c.id_number)):
            due = r.certified_until
            subject, body = templates["before", r.language].render(
                name=r.name, due_date=due.isoformat(), days=str((due - ON).days), period=""
            )
            rows.append(
                {
                    "key": f"reminder:before30:{due.isoformat()}:{r.id_number}",
                    "channel": "sms",
                    "recipient": r.phone,
                    "subject": subject,
                    "body": body,
                    "language": r.language,
                    "data": {},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": NOW,
                    "last_error": None,
                    "created_at": NOW,
                    "sent_at": None,
                }
            )
    return rows


def empty(engine: sa.Engine, *tables: sa.Table) -> None:
    with engine.begin() as conn:
        for table in tables:
            conn.execute(table.delete())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retirees", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        engine = db.create_engine(url)
        db.upgrade(engine)
        load = os.getloadavg()
        cpu = platform.processor() or platform.machine()
        print(f"engine {engine.dialect.name}, {args.retirees:,} retirees due, {cpu}, "
              f"{os.cpu_count()} CPUs, load {load[0]:.1f}")  # fmt: skip
        fill(engine, args.retirees)
        rows = bare_rows(engine)
        name = f"bare_{uuid.uuid4().hex[:8]}"
        bare = sa.Table(  # the outbox's columns, unique key and index, under another name
            name,
            sa.MetaData(),
            *(c._copy() for c in outbox.outbox.c),
            sa.Index(f"ix_{name}", "status", "next_attempt_at"),
        )
        bare.create(engine)
        ours_s, bare_s = [], []
        for _ in range(args.repeat):
            empty(engine, outbox.outbox, reminders.reminders)
            start = time.perf_counter()
            summary = reminders.run(engine, ON, SETTINGS, Policy())
            ours_s.append(time.perf_counter() - start)
            assert summary.enqueued["before30"] == args.retirees, summary
            empty(engine, bare)
            start = time.perf_counter()
            for first in range(0, len(rows), reminders.CHUNK):
                with engine.begin() as conn:
                    conn.execute(bare.insert(), rows[first : first + reminders.CHUNK])
            bare_s.append(time.perf_counter() - start)
            print(f"  ours {ours_s[-1]:.2f} s, bare {bare_s[-1]:.2f} s, "
                  f"ratio {ours_s[-1] / bare_s[-1]:.2f}x")  # fmt: skip
        start = time.perf_counter()
        again = reminders.run(engine, ON, SETTINGS, Policy())
        rerun = time.perf_counter() - start
        assert sum(again.enqueued.values()) == 0
        ours, plain = statistics.median(ours_s), statistics.median(bare_s)
        n = args.retirees
        print(f"ours:  median {ours:.2f} s = {n / ours:,.0f} reminders/s")
        print(f"bare:  median {plain:.2f} s = {n / plain:,.0f} rows/s")
        pairs = statistics.median(o / b for o, b in zip(ours_s, bare_s, strict=True))
        print(f"ratio: {ours / plain:.2f}x (median of pairs {pairs:.2f}x)")
        print(f"re-run (all already enqueued): {rerun:.2f} s, nothing sent twice")
        print(f"load after: {os.getloadavg()[0]:.1f}")
        bare.drop(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
