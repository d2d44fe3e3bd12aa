"""Outbox durable enqueue latency: sign + store with fsync (WAL, synchronous=FULL), p50/p99.

Beside it, in the same run and on the same file system: the bare cost of one
SQLite INSERT + COMMIT at ``synchronous=FULL`` in WAL mode (the raw limit of
"on disk before anyone is told done"), and ES256 signing alone.

Usage: python bench/bench_outbox.py [--n 2000]
"""

import argparse
import datetime as dt
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from common import idnumber
from edge.adapters.keys import load as load_keys
from edge.adapters.recorder import Recorder
from edge.bootstrap import open_outbox
from edge.config import load as load_edge_config
from edge.session.model import assisted
from protocol import signing
from provisioning.fleet import Fleet


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


def bare_commit(path: Path, n: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 600
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def sign_only(n: int) -> list[float]:
    signer = signing.Signer(ec.generate_private_key(ec.SECP256R1()), "kid")
    payload = b"x" * 450
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        signer.sign(payload)
        out.append(time.perf_counter() - t0)
    return out


def lifecert_record(root: Path, n: int) -> list[float]:
    fleet = Fleet.create(root / "fleet", "bench", broker_port=18883)
    fleet.enrol("term-bench")
    cfg = load_edge_config(fleet.paths.bundle("term-bench") / "edge.toml")
    retiree = idnumber.make("110105", dt.date(1950, 1, 1), 1)
    out = []
    with open_outbox(cfg) as outbox:
        recorder = Recorder(outbox, load_keys(cfg))
        for _ in range(n):
            draft = assisted(retiree, "desk-1")
            t0 = time.perf_counter()
            recorder.record(draft)
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lifecert-bench-") as tmp:
        rows = {
            "bare_sqlite_insert_commit_full": _percentiles(bare_commit(Path(tmp) / "b.db", args.n)),
            "es256_sign": _percentiles(sign_only(args.n)),
            "lifecert_record_durable": _percentiles(lifecert_record(Path(tmp), args.n)),
        }
    rows["ratio_p50_to_bare_commit"] = round(
        rows["lifecert_record_durable"]["p50_ms"]
        / rows["bare_sqlite_insert_commit_full"]["p50_ms"],
        2,
    )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
