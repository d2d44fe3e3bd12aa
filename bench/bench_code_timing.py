"""Does the phone page's "send me a code" answer tell known ID numbers from unknown ones by time?

    python bench/bench_code_timing.py [--samples 300] [--code-answer-ms 250] [--gap-ms 50]
                                      [--database-url URL] [--out bench/out]

An outside attacker's view: a real stack (Mosquitto with mutual TLS and per-device logins,
``lifecert-central run`` on SQLite or ``--database-url``, a remote terminal
``lifecert-edge run`` with ``[remote] enabled`` serving the phone page over HTTP, central
texting codes through reach's HTTP SMS adapter to a local gateway in another process),
and a client that POSTs ``/api/code`` ``{id_number}`` one request at a time, timing each
round trip, for three kinds of ID numbers interleaved in random order:

- ``phone``: on the roster with a phone number (a code is texted after the answer);
- ``no_phone``: on the roster without a phone number;
- ``unknown``: valid ID numbers (check digit, birth date, region) not on the roster.

Every ID number is asked for once (fresh ID numbers, so the per-ID-number and per-phone
limits keep their defaults); the per-address limits (``[remote] codes_per_address``,
``[phone] per_client_per_hour``) and the remote terminal's request budget at central
(``[requests]``) are raised in this bench only, so that one client can ask 1000 times.
``--code-answer-ms`` sets the remote terminal's floor on the answer's time (its default,
250 ms; 0 shows central's own time).
Reported per kind: median, p95, mean; per pair: the difference of medians (with a
bootstrap 95% interval), Mann-Whitney U and Kolmogorov-Smirnov p-values; and whether the
answers (status, headers but ``date``, body) are byte-identical across kinds. Raw samples
(CSV) and an ECDF plot go to ``--out``. Not measured: the phone's network, a busy SMS
gateway (codes go out on central's worker thread after the answer).
"""

import argparse
import csv
import datetime as dt
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REMOTE = "remote-t01"
KINDS = ("phone", "no_phone", "unknown")
PAIRS = (("phone", "unknown"), ("no_phone", "unknown"), ("phone", "no_phone"))
ALPHA = 0.01


def gateway(port: int, ready: Any, stop: Any, out: Any) -> None:
    """A local HTTP SMS gateway (its own process): answers 200, counts what it is sent."""
    received = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received[0] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 0.2
    ready.set()
    while not stop.is_set():
        server.handle_request()
    server.server_close()
    out.put(received[0])


def id_numbers(n: int, seed: int) -> list[str]:
    """``n`` distinct valid ID numbers of people born 1940-1960, in a random order."""
    from common import idnumber

    rng = random.Random(seed)
    regions = ("110105", "310104", "440305", "510107", "330106")
    found: set[str] = set()
    while len(found) < n:
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(20 * 365))
        found.add(idnumber.make(rng.choice(regions), born, rng.randrange(1, 1000)))
    return rng.sample(sorted(found), n)


def build(
    root: Path, samples: int, warmup: int, seed: int, url: str | None, answer_ms: int
) -> dict[str, Any]:
    """The stack on disk: fleet, roster (with and without phones), configs; not started."""
    from bench.bench_models_pipeline import _key
    from central.people import roster
    from central.store import db
    from common import idnumber
    from models.bundle import read_manifest, write_manifest
    from provisioning.stack import Stack, free_port

    ids = id_numbers(3 * samples + warmup, seed)
    kinds = {k: ids[i * samples : (i + 1) * samples] for i, k in enumerate(KINDS)}
    spare = ids[3 * samples :]  # warm-up: unknown ID numbers, not counted
    stack = Stack.create(root / "stack", free_port(), [REMOTE], database_url=url)
    stack.central("db", "upgrade")
    people = root / "roster.csv"
    with people.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id_number", "name", "sex", "birth_date", "community", "phone", "language"])
        for i, n in enumerate(kinds["phone"] + kinds["no_phone"]):
            with_phone = i < samples
            w.writerow(
                [n, f"Retiree {i}", idnumber.sex(n), idnumber.birth_date(n), f"C{i % 7}"]
                + ([f"+86138{i:08d}", "zh"] if with_phone else ["", ""])
            )
    engine = db.create_engine(
        stack.database_url or f"sqlite:///{stack.fleet.paths.central}/central.sqlite"
    )
    try:
        report = roster.import_csv(engine, people, actor="bench")
        assert report.added == 2 * samples, report
    finally:
        engine.dispose()

    bundle = REPO / "var" / "models"
    manifest = read_manifest(bundle, _key(bundle))
    models = root / "models"
    models.mkdir()
    for spec in manifest.models.values():
        (models / spec.file).symlink_to(bundle / spec.file)
    write_manifest(models, manifest, stack.fleet.paths.root / "models" / "sign.key")

    sms_port, http_port = free_port(), free_port()
    central = stack.central_config
    central.write_text(
        central.read_text()
        + f'\n[phone]\nremote_devices = ["{REMOTE}"]\nper_client_per_hour = 10000\n'
        + "[requests]\nburst = 10000\nper_minute = 100000\n"  # the bench only
        + '[notify]\nchannels = {sms = "sms_http", email = "log"}\n'
        + f'[notify.sms]\nurl = "http://127.0.0.1:{sms_port}/sms"\n'
    )
    edge = stack.edge_config(REMOTE)
    edge.write_text(
        edge.read_text()
        + f'\n[models]\nbundle = "{models}"\n'
        + f"[remote]\nenabled = true\nport = {http_port}\ncodes_per_address = 10000\n"
        + f"code_answer_ms = {answer_ms}\n"
    )
    return {"stack": stack, "kinds": kinds, "spare": spare, "sms_port": sms_port, "port": http_port}


def measure(
    port: int, order: list[tuple[str, str]], gap_s: float, warm: list[str]
) -> list[dict[str, Any]]:
    """POST ``/api/code`` for each ``(kind, id_number)`` in turn: the round trip and answer."""
    import httpx
    from tqdm import tqdm

    base = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=20) as client:
        for n in warm:
            client.post("/api/code", json={"id_number": n}).raise_for_status()
            time.sleep(gap_s)
        for kind, n in tqdm(order, desc="code requests", unit="req", mininterval=2):
            t = time.perf_counter()
            r = client.post("/api/code", json={"id_number": n})
            took = time.perf_counter() - t
            headers = tuple((k, v) for k, v in r.headers.items() if k.lower() != "date")
            rows.append(
                {
                    "kind": kind,
                    "us": took * 1e6,
                    "status": r.status_code,
                    "answer": (headers, r.content),
                }
            )
            time.sleep(gap_s * random.uniform(0.5, 1.5))
    return rows


def up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def analyse(rows: list[dict[str, Any]], seed: int) -> tuple[str, bool]:
    """The tables (as text) and whether any pair differs detectably."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(seed)
    by = {k: np.array([r["us"] for r in rows if r["kind"] == k]) for k in KINDS}
    lines = ["kind        n   median µs   p95 µs   mean µs", "-" * 46]
    for k, v in by.items():
        lines.append(
            f"{k:9s} {len(v):4d}  {np.median(v):9.0f}  {np.percentile(v, 95):7.0f}  {v.mean():8.0f}"
        )
    lines += [
        "",
        "pair                 Δ median µs  (95% bootstrap)   Mann-Whitney p   KS p",
        "-" * 76,
    ]
    detected = False
    for a, b in PAIRS:
        x, y = by[a], by[b]
        diff = float(np.median(x) - np.median(y))
        boot = [
            np.median(rng.choice(x, len(x))) - np.median(rng.choice(y, len(y))) for _ in range(2000)
        ]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        mw = stats.mannwhitneyu(x, y, alternative="two-sided").pvalue
        ks = stats.ks_2samp(x, y).pvalue
        gap = lo > 0 or hi < 0  # the interval excludes 0: the gap is larger than the noise
        flag = min(mw, ks) < ALPHA and gap
        detected |= flag
        lines.append(
            f"{a + ' - ' + b:20s} {diff:+11.0f}  [{lo:+6.0f}, {hi:+6.0f}]   {mw:14.3g}  {ks:6.3g}"
            + ("  DETECTED" if flag else "")
        )
    return "\n".join(lines), detected


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """ECDFs of the round trips per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for k in KINDS:
        v = np.sort([r["us"] / 1000 for r in rows if r["kind"] == k])
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=f"{k} (n={len(v)})")
    ax.set_xlabel("POST /api/code round trip (ms)")
    ax.set_ylabel("share of requests")
    ax.set_xlim(right=float(np.percentile([r["us"] / 1000 for r in rows], 99)))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Example: python bench/bench_code_timing.py --samples 300 --out bench/out",
    )
    parser.add_argument("--samples", type=int, default=300, help="requests per kind (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="uncounted requests first")
    parser.add_argument(
        "--gap-ms", type=float, default=50.0, help="mean pause between requests (default 50)"
    )
    parser.add_argument(
        "--code-answer-ms",
        type=int,
        default=250,
        help="the remote terminal's [remote] code_answer_ms (default 250, its default; "
        "0: central's own time shows)",
    )
    parser.add_argument("--seed", type=int, default=1, help="ID numbers and order (default 1)")
    parser.add_argument(
        "--database-url", help="central's database (default: SQLite in the temporary folder)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="CSV and PNG")
    args = parser.parse_args()
    if args.samples < 20:
        parser.error("--samples: at least 20 per kind")
    if not (REPO / "var" / "models" / "manifest.jws").is_file():
        sys.exit("error: no model bundle in var/models: run `make models`")
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    from tests.fixtures.waiting import wait_until

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        setup = build(
            Path(tmp), args.samples, args.warmup, args.seed, args.database_url, args.code_answer_ms
        )
        stack = setup["stack"]
        ready, stop, got = ctx.Event(), ctx.Event(), ctx.Queue()
        sms = ctx.Process(target=gateway, args=(setup["sms_port"], ready, stop, got))
        sms.start()
        ready.wait(30)
        order = [(k, n) for k in KINDS for n in setup["kinds"][k]]
        random.Random(args.seed).shuffle(order)
        try:
            with stack:
                stack.broker.start()
                stack.start_central()
                stack.start_edges([REMOTE])
                url = f"http://127.0.0.1:{setup['port']}/"
                wait_until(lambda: up(url), 60, "the phone page")
                started = time.monotonic()
                rows = measure(setup["port"], order, args.gap_ms / 1000, setup["spare"])
                elapsed = time.monotonic() - started
                time.sleep(2)  # the last texts leave central's worker
        finally:
            stop.set()
            texts = got.get(timeout=30)
            sms.join(10)
    load = os.getloadavg()
    print(
        f"{len(rows)} requests in {elapsed:.0f} s; load after {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; texts at the gateway: {texts} (expected {args.samples})"
    )
    over = Counter(r["kind"] for r in rows if r["us"] > args.code_answer_ms * 1000 + 50_000)
    print(
        f"[remote] code_answer_ms = {args.code_answer_ms}; answers later than it + 50 ms: "
        f"{dict(over) or 'none'}"
    )
    statuses = Counter((r["kind"], r["status"]) for r in rows)
    answers = {k: {r["answer"] for r in rows if r["kind"] == k} for k in KINDS}
    identical = len(set().union(*answers.values())) == 1
    print(f"statuses: {dict(statuses)}")
    print(
        "answers (status, headers but date, body) byte-identical across kinds: "
        + ("yes" if identical else f"NO: {answers}")
    )
    table, detected = analyse(rows, args.seed)
    print()
    print(table)
    print(
        f"\n=> {'a difference is detectable' if detected else 'no detectable difference'} "
        f"(p < {ALPHA} and a 95% interval of Δ median excluding 0)"
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    with (args.out / f"code_timing_{stamp}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seq", "kind", "round_trip_us", "status"])
        w.writerows((i, r["kind"], f"{r['us']:.1f}", r["status"]) for i, r in enumerate(rows))
    plot(rows, args.out / f"code_timing_{stamp}.png")
    print(f"samples and plot: {args.out}/code_timing_{stamp}.{{csv,png}}")


if __name__ == "__main__":
    main()
