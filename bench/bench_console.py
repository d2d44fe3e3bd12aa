"""The staff console under load: dashboard and list pages over a large roster, p95 from a
second process, beside the bare SQL of the same queries in the same run.

1. A database with ``--retirees`` synthetic retirees (8 % overdue; kept in ``--db`` and
   copied for each later run with the same count), this month's payment run and 5,000
   results today;
2. the staff room's CA and accounts (``central.staff``), an approver (every community) and
   a coordinator (two communities), and a server certificate;
3. ``lifecert-central console`` started as its own process (``python -m central ...``);
4. ``--clients`` threads here, each its own HTTPS connection, signed in, requesting the
   pages round robin for ``--seconds`` (after one warm-up round); latency per page;
5. the bare SQL: the same queries on one plain connection, sequentially, p50/p95.

Usage: python bench/bench_console.py [--retirees 1000000] [--clients 20] [--seconds 20]
       [--db /tmp/bench_console.sqlite] [--database-url postgresql+psycopg://.../DB]
"""

import argparse
import datetime as dt
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central.certification.settings import Policy
from central.config import load as load_config
from central.console import queries, reviews
from central.payments import runs
from central.payments.period import Period
from central.people import population
from central.store import db, schema
from provisioning.stack import free_port
from tests.integration.console_pki import Ca
from tests.integration.console_support import staff_certificates

PAGES = {
    "api dashboard": "/api/dashboard",
    "html dashboard": "/",
    "api list overdue": "/api/retirees?state=overdue&limit=100",
    "html list due, one community": "/retirees?state=due&community=Haidian",
    "api list held": "/api/retirees?state=held&limit=100",
}
COORDINATOR_PAGES = {"coordinator dashboard": "/api/dashboard"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def fill(url: str, n: int) -> None:
    """Retirees, this month's run, today's results, review items."""
    engine = db.create_engine(url)
    db.upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    population.insert(
        engine,
        population.generate(n, as_of=now.date(), overdue=0.08),
        added=now - dt.timedelta(days=200),
    )
    runs.run(engine, Period.of(now.date()), Policy(), now=now)
    with engine.begin() as conn:
        ids = conn.execute(sa.select(schema.retirees.c.id_number).limit(5000)).scalars().all()
        conn.execute(
            schema.results.insert(),
            [
                {
                    "result_id": uuid.uuid4(),
                    "device_id": f"term-{i % 50}",
                    "seq": i,
                    "kid": "0" * 64,
                    "retiree_id": rid,
                    "method": ("face", "vein", "assisted")[i % 3],
                    "decision": "refer" if i % 40 == 0 else "pass",
                    "channel": ("kiosk", "desk", "mobile")[i % 3],
                    "device_time": now,
                    "received_at": now - dt.timedelta(seconds=i),
                    "applied": True,
                    "evidence": {},
                }
                for i, rid in enumerate(ids)
            ],
        )
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
    if engine.dialect.name == "postgresql":  # the planner's statistics, as autovacuum would
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"filled {n:,} retirees in {time.perf_counter() - start:.0f} s")


def bare(url: str, rounds: int) -> dict[str, list[float]]:
    """The console's queries on one plain connection, sequentially."""
    engine = db.create_engine(url)
    today = dt.date.today()
    reminder = Policy().reminder_days
    out: dict[str, list[float]] = {}

    def timed(name: str, work: Callable[[sa.Connection], Any]) -> None:
        with engine.connect() as conn:
            work(conn)  # warm
            for _ in range(rounds):
                start = time.perf_counter()
                work(conn)
                out.setdefault(name, []).append(time.perf_counter() - start)

    run_id = None
    with engine.connect() as conn:
        run = queries.latest_run(conn)
        run_id = int(run.id)

    def dashboard(conn: sa.Connection) -> None:
        conn.execute(queries.coverage_query(today, reminder, None)).all()
        queries.today(conn, today, "UTC", None)
        queries.trend(conn, 12, None)
        reviews.counts(conn)

    timed("api dashboard", dashboard)
    timed("html dashboard", dashboard)

    def page(state: queries.State, community: str | None) -> Callable[[sa.Connection], Any]:
        query = queries.retirees_query(state, community, today, reminder, None, run_id)
        return lambda conn: queries.retirees_page(conn, query, 100)

    timed("api list overdue", page(queries.State.OVERDUE, None))
    timed("html list due, one community", page(queries.State.DUE, "Haidian"))
    timed("api list held", page(queries.State.HELD, None))

    def coordinator(conn: sa.Connection) -> None:
        scope = frozenset({"Haidian", "Xuhui"})
        conn.execute(queries.coverage_query(today, reminder, scope)).all()
        queries.today(conn, today, "UTC", scope)
        queries.trend(conn, 12, scope)

    timed("coordinator dashboard", coordinator)
    engine.dispose()
    return out


def load(
    base: str,
    tls: Callable[[str], ssl.SSLContext],
    clients: int,
    seconds: float,
) -> dict[str, list[float]]:
    """``clients`` threads (one a coordinator), each requesting the pages round robin."""
    out: dict[str, list[float]] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    errors: list[str] = []

    def client(i: int) -> None:
        who, pages = ("coordinator", COORDINATOR_PAGES) if i == 0 else ("approver", PAGES)
        with httpx.Client(base_url=base, verify=tls(who), timeout=60) as http:
            http.post("/api/session", json={}).raise_for_status()
            for path in pages.values():
                http.get(path).raise_for_status()  # warm-up round
            barrier.wait()
            names = list(pages.items())
            k = i
            while time.monotonic() < stop + 0:
                name, path = names[k % len(names)]
                k += 1
                start = time.perf_counter()
                reply = http.get(path)
                took = time.perf_counter() - start
                if reply.status_code != 200:
                    errors.append(f"{path}: {reply.status_code}")
                with lock:
                    out.setdefault(name, []).append(took)

    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"errors under load: {errors[:5]}")
    return out


def _pg_copy(url: str, retirees: int) -> tuple[str, Callable[[], None]]:
    """The PostgreSQL database at ``url`` filled once (kept), and a copy of it for this run
    (``CREATE DATABASE ... TEMPLATE``); the copy's URL and what drops it."""
    template = sa.engine.make_url(url)
    engine = db.create_engine(url)
    db.upgrade(engine)
    with engine.connect() as conn:
        have = conn.scalar(sa.select(sa.func.count()).select_from(schema.retirees))
    engine.dispose()
    if have != retirees:
        fill(url, retirees)
    name = f"{template.database}_run"
    admin = sa.create_engine(template.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return template.set(database=name).render_as_string(hide_password=False), drop


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the console did not start") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retirees", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=50, help="bare SQL repetitions")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("/tmp/bench_console.sqlite"),
        help="the filled SQLite database, kept and copied for each run",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to fill (kept, refilled when its count differs) instead; "
        "each run works on a copy",
    )
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    root = Path(tempfile.mkdtemp(prefix="bench-console-"))
    copy = None
    if args.database_url:
        url, copy = _pg_copy(args.database_url, args.retirees)
    else:
        stamp = args.db.with_suffix(".count")
        if not stamp.exists() or stamp.read_text() != str(args.retirees):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.db}{suffix}").unlink(missing_ok=True)
            fill(f"sqlite:///{args.db}", args.retirees)
            stamp.write_text(str(args.retirees))
        shutil.copy(args.db, root / "central.sqlite")
        url = f"sqlite:///{root / 'central.sqlite'}"
    try:
        web = Ca(root / "web", "web CA")
        pem, key, _ = web.issue("console", server=True)
        port = free_port()
        config = root / "central.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[console]\nport = {port}\ncert_file = "{pem}"\n'
            f'key_file = "{key}"\n'
        )
        cfg = load_config(config)
        engine = db.create_engine(url)
        db.upgrade(engine)
        everyone = staff_certificates(engine, cfg.staff, root / "certs")
        engine.dispose()
        certs = {who: everyone[who] for who in ("approver", "coordinator")}
        server = subprocess.Popen(
            [sys.executable, "-m", "central", "--config", str(config), "console"],
            env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        try:
            _wait_for(port, server)

            def tls(who: str) -> ssl.SSLContext:
                context = ssl.create_default_context(cafile=str(web.ca_file))
                context.load_cert_chain(*certs[who])
                return context

            served = load(f"https://127.0.0.1:{port}", tls, args.clients, args.seconds)
        finally:
            server.terminate()
            server.wait(10)
        sql = bare(url, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if copy is not None:
            copy()
    print(
        f"{args.retirees:,} retirees, {args.clients} clients for {args.seconds:.0f} s "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    print(
        f"{'page':32} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'bare p50':>9} {'bare p95':>9}"
    )
    for name in [*PAGES, *COORDINATOR_PAGES]:
        got, base = served.get(name, []), sql.get(name, [])
        print(
            f"{name:32} {len(got):8} {_pct(got, 0.5):8.1f} {_pct(got, 0.95):8.1f} "
            f"{_pct(base, 0.5):9.2f} {_pct(base, 0.95):9.2f}"
        )
    everything = [t for ts in served.values() for t in ts]
    print(
        f"all pages: {len(everything)} requests, {len(everything) / args.seconds:.0f}/s, "
        f"p95 {_pct(everything, 0.95):.1f} ms, median {statistics.median(everything) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
