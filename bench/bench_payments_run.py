"""Monthly payment run on a synthetic population, beside a bare SQL UPDATE over the same table.

In one run, on one database (a fresh SQLite file, or a fresh PostgreSQL database):

1. ``--retirees`` synthetic retirees (valid ID numbers; 5 % overdue) plus 0.1 % death
   records, 0.1 % prison records and 0.1 % manual holds;
2. bare: ``UPDATE retirees SET monthly_amount_cents = monthly_amount_cents + 0``
   (every row rewritten once, one transaction), with the roster's triggers (migration
   0005) disabled inside that transaction: the yardstick is the row rewrite, not the
   per-row trigger check the versioned roster adds to this statement (timed next, too);
3. the payment run for 2026-04 (first month: overdue retirees held), then 2026-05 (a
   month of lines and arrears already stored; the retirees whose certification ran out in
   April newly held, a tenth of April's held resumed with their arrears);
4. what else reads or writes the versioned roster: a roster import changing 1 % of the
   retirees' amounts (between the runs), and after the runs the diff of 2026-05 and its
   sealed bank file (throwaway keys).

``--profile`` also prints each statement of the timed region that took over 20 ms.
``--repeat N`` (SQLite) then measures N more pairs, each on a copy of the database as it
was before 2026-05: the bare UPDATE, then the 2026-05 run, seconds apart; on a shared
machine one pair can land on a busy moment for one of the two, so the median ratio of the
pairs is printed beside the single one.
``--filled FILE`` (SQLite) keeps the filled database of step 1 (fill, records, ANALYZE) in
FILE, and on later runs with the same ``--retirees`` starts from a copy of it instead of
filling again: the fill is setup (minutes at 1M), never timed; the copy is the same file.

Usage: python bench/bench_payments_run.py [--retirees 1000000] [--database-url URL] [--profile]
       [--filled FILE] [--repeat N]
"""

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from central.certification.settings import Policy
from central.payments import bankfile, review, runs
from central.payments.period import Period
from central.people import population, roster
from central.store import db, schema

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ADDED = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # the synthetic roster's import
APRIL_RUN, MAY_RUN = (dt.datetime(2026, m, 1, 6, tzinfo=dt.UTC) for m in (4, 5))  # made then


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _profile(engine: sa.Engine) -> Callable[[str], None]:
    """Time every statement on ``engine``; the returned function prints and clears them."""
    timed: list[tuple[float, str]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _start(conn: sa.Connection, *_: object) -> None:
        conn.info["started"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _stop(conn: sa.Connection, _cursor: object, statement: str, *_: object) -> None:
        timed.append((time.perf_counter() - conn.info["started"], " ".join(statement.split())))

    def report(label: str) -> None:
        print(f"  {label}:")
        for seconds, statement in timed:
            if seconds > 0.02:
                print(f"    {seconds:6.2f} s  {statement[:90]}")
        timed.clear()

    return report


def _fresh_pg(name: str) -> str:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop_triggers(conn: sa.Connection) -> list[str]:
    """Disable the triggers on ``retirees`` inside the current transaction; the statements
    that restore them (run them before the commit: nobody ever sees the table without)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE retirees DISABLE TRIGGER USER")
        return ["ALTER TABLE retirees ENABLE TRIGGER USER"]
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'retirees'"
    ).all()
    for name, _ in found:
        conn.exec_driver_sql(f"DROP TRIGGER {name}")
    return [sql for _, sql in found]


def _extras(engine: sa.Engine, n: int) -> None:
    """Registry records and manual holds for a sample of retirees (matched on ID + birth)."""
    r = schema.retirees
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        sample = conn.execute(
            sa.select(r.c.id_number, r.c.birth_date).order_by(r.c.id_number).limit(3 * n)
        ).all()
        deaths, jailed, held = sample[:n], sample[n : 2 * n], sample[2 * n :]
        conn.execute(
            schema.registry_records.insert(),
            [
                {
                    "kind": kind,
                    "id_number": p.id_number,
                    "birth_date": p.birth_date,
                    "start_date": dt.date(2026, 1 + i % 4, 1 + i % 28),
                    "end_date": None if kind == "death" or i % 2 else dt.date(2026, 5, 15),
                    "source": "bench",
                    "imported_at": now,
                    "retiree_id": p.id_number,
                }
                for kind, people in (("death", deaths), ("prison", jailed))
                for i, p in enumerate(people)
            ],
        )
        conn.execute(
            schema.holds.insert(),
            [{"retiree_id": p.id_number, "reason": "manual", "since": now} for p in held],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retirees", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", help="default: a fresh SQLite file; 'postgresql' = a fresh local DB"
    )
    parser.add_argument("--profile", action="store_true", help="time each statement")
    parser.add_argument(
        "--filled", type=Path, help="SQLite: keep the filled database here, reuse it next time"
    )
    parser.add_argument("--repeat", type=int, default=0, help="SQLite: N more bare/May pairs")
    args = parser.parse_args()
    if (args.filled or args.repeat) and args.database_url:
        parser.error("--filled and --repeat are for the default fresh SQLite file")
    with tempfile.TemporaryDirectory(prefix="bench-payments-") as tmp:
        if args.database_url == "postgresql":
            url = _fresh_pg(f"lifecert_bench_payments_{os.getpid()}")
        else:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'central.sqlite'}"
        r = schema.retirees
        reused = args.filled is not None and args.filled.exists()
        if reused:
            shutil.copyfile(args.filled, Path(tmp) / "central.sqlite")
        engine = db.create_engine(url)
        db.upgrade(engine)
        if reused:
            with engine.connect() as conn:
                count = conn.scalar(sa.select(sa.func.count()).select_from(r))
                added = conn.scalar(sa.select(sa.func.max(r.c.created_at)))
            if count != args.retirees:
                parser.error(f"{args.filled} holds {count:,} retirees, not {args.retirees:,}")
            if added > ADDED:
                parser.error(
                    f"{args.filled} holds retirees added on {added:%Y-%m-%d}, after April's "
                    "run would be made: delete it to fill again (runs are refused for months "
                    "before the roster's first)"
                )
            t_fill = 0.0
        else:
            t_fill = _seconds(
                lambda: population.insert(
                    engine,
                    population.generate(args.retirees, as_of=dt.date(2026, 4, 1)),
                    added=ADDED,
                )
            )
            _extras(engine, max(1, args.retirees // 1000))
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            else:
                with engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            if args.filled:
                engine.dispose()  # the last connection's close checkpoints the WAL into the file
                shutil.copyfile(Path(tmp) / "central.sqlite", args.filled)

        def bare(triggers: bool) -> None:
            with engine.begin() as conn:
                restore = [] if triggers else _drop_triggers(conn)
                conn.execute(r.update().values(monthly_amount_cents=r.c.monthly_amount_cents + 0))
                for statement in restore:
                    conn.exec_driver_sql(statement)

        report = _profile(engine) if args.profile else lambda _label: None
        t_bare = _seconds(lambda: bare(triggers=False))
        report("bare UPDATE")
        t_checked = _seconds(lambda: bare(triggers=True))
        report("bare UPDATE, triggers on")
        policy = Policy()
        t_april = _seconds(lambda: runs.run(engine, Period(2026, 4), policy, now=APRIL_RUN))
        report("run 2026-04")
        with engine.begin() as conn:  # a tenth of April's overdue certify before May
            conn.execute(
                r.update()
                .where(r.c.certified_until < dt.date(2026, 4, 1), r.c.id_number.like("%1_"))
                .values(certified_until=dt.date(2027, 4, 20))
            )
            raised = [
                {"id_number": number, "monthly_amount_cents": cents + 100}
                for number, cents in conn.execute(
                    sa.select(r.c.id_number, r.c.monthly_amount_cents)
                    .where(r.c.id_number.like("%37_"))
                    .limit(args.retirees // 100)
                )
            ]
        t_import = _seconds(lambda: roster.upsert(engine, raised, "bench", dt.datetime.now(dt.UTC)))
        report("(between runs)")
        database, before_may = Path(tmp) / "central.sqlite", Path(tmp) / "before-may.sqlite"
        if args.repeat:
            engine.dispose()  # checkpointed into the file
            shutil.copyfile(database, before_may)
        t_may = _seconds(lambda: runs.run(engine, Period(2026, 5), policy, now=MAY_RUN))
        report("run 2026-05")
        start = time.perf_counter()
        may = runs.run(engine, Period(2026, 5), policy, now=MAY_RUN)
        t_again = time.perf_counter() - start
        report("2026-05 recomputed")
        t_diff = _seconds(lambda: review.diff(engine, Period(2026, 5)))
        report("diff 2026-05")
        key = ec.generate_private_key(ec.SECP256R1())
        t_file = _seconds(
            lambda: bankfile.make(
                engine, Period(2026, 5), "BENCH", Path(tmp), key, key.public_key()
            )
        )
        report("bank file 2026-05")
        engine.dispose()
        pairs = []
        for _ in range(args.repeat):
            for suffix in ("-wal", "-shm"):
                database.with_name(database.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(before_may, database)
            t_pair_bare = _seconds(lambda: bare(triggers=False))
            start = time.perf_counter()
            same = runs.run(engine, Period(2026, 5), policy, now=MAY_RUN)
            t_pair_may = time.perf_counter() - start
            engine.dispose()
            if (same.decisions, same.payable_cents) != (may.decisions, may.payable_cents):
                raise SystemExit(f"a repeated 2026-05 run differs: {same} vs {may}")
            pairs.append((t_pair_bare, t_pair_may))
        if args.database_url == "postgresql":
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                name = url.rsplit("/", 1)[1]
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    cpu = platform.processor() or platform.machine()
    print(f"engine {engine.dialect.name}, {args.retirees:,} retirees, {cpu}, {os.cpu_count()} CPUs")
    fill = f"copy of {args.filled}" if reused else f"{t_fill:8.2f} s"
    print(f"  fill (bench setup)          {fill}")
    print(f"  bare UPDATE of every row    {t_bare:8.2f} s")
    print(f"  the same, triggers on       {t_checked:8.2f} s")
    print(f"  payment run 2026-04 (first) {t_april:8.2f} s  = {t_april / t_bare:.2f} x bare")
    print(f"  payment run 2026-05         {t_may:8.2f} s  = {t_may / t_bare:.2f} x bare")
    print(f"  2026-05 recomputed          {t_again:8.2f} s")
    print(f"  roster import, {len(raised):,} changed  {t_import:8.2f} s")
    print(f"  diff 2026-05                {t_diff:8.2f} s")
    print(f"  bank file 2026-05 (sealed)  {t_file:8.2f} s")
    print(f"  2026-05: {may.decisions}, reasons {may.reasons}")
    if pairs:
        ratios = sorted(m / b for b, m in pairs)
        listed = ", ".join(f"{b:.2f}/{m:.2f}" for b, m in pairs)
        print(f"  {len(pairs)} more pairs, bare/2026-05 in s: {listed}")
        print(
            f"  2026-05 / bare over the pairs: median {statistics.median(ratios):.2f} x"
            f" (range {ratios[0]:.2f}-{ratios[-1]:.2f} x)"
        )


if __name__ == "__main__":
    main()
