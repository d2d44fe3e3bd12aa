"""Roster import: seconds and peak memory for synthetic rosters of growing size.

For each ``--rows`` count: a roster CSV from ``central.population`` (valid ID numbers,
fake people), then, in a fresh child process each (so one import's memory never
counts for the next):

1. first import into an empty, migrated database (every row added);
2. the same file again (every row read, checked against the stored roster, unchanged).

Printed per import: seconds, the child's peak RSS during the import (Linux: the high-water
mark ``VmHWM``, reset through ``/proc/self/clear_refs`` just before; ``ru_maxrss`` would
also count the parent's pages from before the child's exec) and that peak less the RSS
before the import (interpreter, SQLAlchemy and the driver already loaded), beside the
file's size. ``--tracemalloc`` also prints the peak of Python allocations (slower).

Usage: python bench/bench_roster_import.py [--rows 100000 1000000] [--database-url URL]
       [--tracemalloc]
"""

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from central.people import population, roster
from central.store import db

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MIB = 1024 * 1024


def _status(field: str) -> int:
    """A memory figure of this process in bytes, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} in /proc/self/status: this benchmark needs Linux")


def _import(url: str, path: Path, traced: bool, out: Any) -> None:
    """Child: import ``path`` once, send (seconds, peak RSS, RSS before, traced peak, report)."""
    engine = db.create_engine(url)
    with engine.connect() as conn:  # driver loaded, pool warm: not the import's memory
        conn.execute(sa.text("SELECT 1"))
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    report = roster.import_csv(engine, path)
    seconds = time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
    peak = _status("VmHWM")
    out.send((seconds, peak, before, traced_peak, (report.added, report.unchanged)))
    engine.dispose()


def _measure(url: str, path: Path, traced: bool) -> tuple[float, int, int, int, Any]:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_import, args=(url, path, traced, send))
    child.start()
    got = receive.recv()
    child.join()
    if child.exitcode:
        raise SystemExit(f"import child exited with {child.exitcode}")
    return got  # type: ignore[no-any-return]


def _pg(*statements: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


def _fresh(database_url: str | None, tmp: Path, rows: int) -> str:
    if database_url != "postgresql":
        return database_url or f"sqlite:///{tmp / f'roster-{rows}.sqlite'}"
    name = f"lifecert_bench_roster_{os.getpid()}_{rows}"
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--database-url", help="default: fresh SQLite files; 'postgresql'")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python memory")
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"roster import, {cpu}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-roster-") as tmp_dir:
        tmp = Path(tmp_dir)
        for rows in args.rows:
            path = tmp / f"roster-{rows}.csv"
            population.write_csv(population.generate(rows, as_of=dt.date(2026, 4, 1)), path)
            url = _fresh(args.database_url, tmp, rows)
            engine = db.create_engine(url)
            db.upgrade(engine)
            engine.dispose()
            size = path.stat().st_size
            print(f"  {rows:,} rows, {size / MIB:.1f} MiB file, {sa.make_url(url).drivername}")
            for label in ("first import", "same file again"):
                seconds, peak, before, traced, counts = _measure(url, path, args.tracemalloc)
                extra = f", traced peak {traced / MIB:6.1f} MiB" if args.tracemalloc else ""
                print(
                    f"    {label:16} {seconds:7.1f} s  peak RSS {peak / MIB:7.1f} MiB "
                    f"(+{(peak - before) / MIB:6.1f} MiB = {(peak - before) / size:5.2f} x "
                    f"file){extra}  added/unchanged {counts}"
                )
            if args.database_url == "postgresql":
                _pg(f'DROP DATABASE "{sa.make_url(url).database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
