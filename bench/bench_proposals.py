"""Roster proposals: what entering, rechecking and approving a roster import costs beside
importing the same file at once.

For each ``--rows`` count: a synthetic roster (``central.population``) imported at once
into an empty database as the base, then a second file changing ``--changed`` % of the rows
(monthly amount) and adding as many new ones, handled two ways on two fresh copies of the
base, alternating: (1) ``roster.import_csv`` at once; (2) ``proposals.propose`` (parse,
rules, diff stored), ``recheck`` and ``approve`` (fingerprint of every touched retiree at
each step, the diff written). Printed: seconds per step and the ratio to the direct import.

Usage: python bench/bench_proposals.py [--rows 20000 100000] [--changed 10]
       [--database-url sqlite|postgresql]
"""

import argparse
import csv
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from central import proposals
from central.people import population, roster
from central.staff.identity import Actor, Role
from central.store import db

CLERK = Actor("clerk", frozenset({Role.ENTRY_CLERK}))
REVIEWER = Actor("reviewer", frozenset({Role.REVIEWER}))
APPROVER = Actor("approver", frozenset({Role.APPROVER}))


def _second_file(base: Path, out: Path, changed_pct: int) -> int:
    """``base`` with every ``100 / changed_pct``-th amount raised, plus as many new people."""
    with base.open(newline="") as f:
        rows = list(csv.DictReader(f))
    step = max(1, 100 // changed_pct)
    for row in rows[::step]:
        row["monthly_amount"] = f"{float(row['monthly_amount'] or 0) + 10:.2f}"
    changed = len(rows[::step])
    extra = out.parent / "extra.csv"
    population.write_csv(population.generate(2 * changed, seed=99), extra)
    known = {r["id_number"] for r in rows}
    with extra.open(newline="") as f:  # accounts numbered like the base's: left out
        new = [r | {"bank_account": "", "account_name": ""} for r in csv.DictReader(f)]
    rows += [r for r in new if r["id_number"] not in known][:changed]
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return changed


def _through(engine: Engine, path: Path) -> dict[str, float]:
    """Propose, recheck and approve ``path`` as three people: seconds per step."""
    took: dict[str, float] = {}
    start = time.perf_counter()
    made = proposals.propose(engine, CLERK, "roster_import", {"path": str(path)})
    took["propose"] = time.perf_counter() - start
    start = time.perf_counter()
    proposals.recheck(engine, REVIEWER, made.id)
    took["recheck"] = time.perf_counter() - start
    start = time.perf_counter()
    done = proposals.approve(engine, APPROVER, made.id)
    took["approve"] = time.perf_counter() - start
    assert done.status == "applied", done.status
    return took


def _copy_sqlite(src: Path, dst: Path) -> str:
    shutil.copy(src, dst)
    return f"sqlite:///{dst}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000])
    parser.add_argument("--changed", type=int, default=10, help="percent of rows changed")
    args = parser.parse_args()
    print(f"roster proposals, {platform.processor() or platform.machine()}, load {os.getloadavg()}")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            base_csv, second_csv = root / "base.csv", root / "second.csv"
            population.write_csv(population.generate(rows, seed=1), base_csv)
            changed = _second_file(base_csv, second_csv, args.changed)
            base_db = root / "base.sqlite"
            engine = db.create_engine(f"sqlite:///{base_db}")
            db.upgrade(engine)
            roster.import_csv(engine, base_csv, now=dt.datetime.now(dt.UTC))
            engine.dispose()
            timings: dict[str, list[float]] = {}
            for attempt in range(2):
                for way in ("direct", "proposal") if attempt % 2 == 0 else ("proposal", "direct"):
                    url = _copy_sqlite(base_db, root / f"{way}-{attempt}.sqlite")
                    engine = db.create_engine(url)
                    if way == "direct":
                        start = time.perf_counter()
                        roster.import_csv(engine, second_csv)
                        timings.setdefault("direct import", []).append(time.perf_counter() - start)
                    else:
                        for step, seconds in _through(engine, second_csv).items():
                            timings.setdefault(step, []).append(seconds)
                    engine.dispose()
            best = {k: min(v) for k, v in timings.items()}
            total = best["propose"] + best["recheck"] + best["approve"]
            print(
                f"{rows:>9,} rows, {changed:,} changed + {changed:,} added: direct "
                f"{best['direct import']:.2f} s; propose {best['propose']:.2f} s, recheck "
                f"{best['recheck']:.2f} s, approve {best['approve']:.2f} s = {total:.2f} s "
                f"({total / best['direct import']:.1f}x)"
            )


if __name__ == "__main__":
    main()
