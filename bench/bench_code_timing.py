"""Do the phone page's code answers tell ID numbers apart by time (or by content)?

    python bench/bench_code_timing.py [--endpoint code|verify] [--samples 300]
                                      [--code-answer-ms 250] [--gap-ms 50]
                                      [--database-url URL] [--out bench/out]

An outside attacker's view: a real stack (Mosquitto with mutual TLS and per-device logins,
``lifecert-central run`` on SQLite or ``--database-url``, a remote terminal
``lifecert-edge run`` with ``[remote] enabled`` serving the phone page over HTTP, central
texting codes through reach's HTTP SMS adapter to a local gateway in another process),
and a client that POSTs one request at a time, timing each round trip, for kinds of ID
numbers interleaved in random order.

``--endpoint code`` (the default): "send me a code", ``/api/code`` ``{id_number}``:

- ``phone``: on the roster with a phone number (a code is texted after the answer);
- ``no_phone``: on the roster without a phone number;
- ``unknown``: valid ID numbers (check digit, birth date, region) not on the roster.

``--endpoint verify``: a guessed (wrong) code, ``/api/verify`` ``{id_number, code}``:

- ``active``: on the roster, with a code that has not expired;
- ``expired``: on the roster, with a code that expired 5 minutes ago;
- ``no_code``: on the roster, no code asked for;
- ``unknown``: not on the roster, no code asked for.

The codes are written into central's database before it starts (an HMAC of a code nobody
knows, as a code request leaves it): the attacker never has the code, so checking it is
the same work as for a texted one, without the texts.

Every ID number is asked about once (fresh ID numbers, so the per-ID-number and
per-phone limits and the tries per code keep their defaults); the per-address limits
(``[remote] codes_per_address``, ``[phone] per_client_per_hour``) and the remote terminal's
request budget at central (``[requests]``) are raised in this bench only, so that one
client can ask 1000 times. ``--code-answer-ms`` sets the remote terminal's floor on the
answer's time (its default, 250 ms; 0 shows central's own time).
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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REMOTE = "remote-t01"
ALPHA = 0.01


@dataclass(frozen=True)
class Endpoint:
    """What one ``--endpoint`` times: its path, its kinds of ID numbers and how each is set up."""

    path: str
    kinds: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    phones: tuple[str, ...]
    """kinds on the roster with a phone number"""
    no_phones: tuple[str, ...] = ()
    """kinds on the roster without one"""
    codes: tuple[tuple[str, dt.timedelta], ...] = ()
    """kinds with a code in central's database, and when it expires (from now)"""
    texted: tuple[str, ...] = ()
    """kinds that are texted a code"""

    def body(self, id_number: str, rng: random.Random) -> dict[str, str]:
        """The request's JSON: the ID number (and for a check, a guessed code)."""
        if self.path == "/api/verify":
            return {"id_number": id_number, "code": f"{rng.randrange(10**6):06d}"}
        return {"id_number": id_number}


ENDPOINTS = {
    "code": Endpoint(
        "/api/code",
        ("phone", "no_phone", "unknown"),
        (("phone", "unknown"), ("no_phone", "unknown"), ("phone", "no_phone")),
        phones=("phone",),
        no_phones=("no_phone",),
        texted=("phone",),
    ),
    "verify": Endpoint(
        "/api/verify",
        ("active", "expired", "no_code", "unknown"),
        (
            ("active", "unknown"),
            ("no_code", "unknown"),
            ("active", "no_code"),
            ("expired", "active"),
        ),
        phones=("active", "expired", "no_code"),
        codes=(("active", dt.timedelta(hours=2)), ("expired", dt.timedelta(minutes=-5))),
    ),
}


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
    root: Path,
    what: Endpoint,
    samples: int,
    warmup: int,
    seed: int,
    url: str | None,
    answer_ms: int,
) -> dict[str, Any]:
    """The stack on disk: fleet, roster (with and without phones), codes, configs; not
    started."""
    from bench.bench_models_pipeline import _key
    from central.channels.tables import phone_codes
    from central.people import roster
    from central.store import db
    from common import idnumber
    from models.bundle import read_manifest, write_manifest
    from provisioning.stack import Stack, free_port

    ids = id_numbers(len(what.kinds) * samples + warmup, seed)
    kinds = {k: ids[i * samples : (i + 1) * samples] for i, k in enumerate(what.kinds)}
    spare = ids[len(what.kinds) * samples :]  # warm-up: unknown ID numbers, not counted
    stack = Stack.create(root / "stack", free_port(), [REMOTE], database_url=url)
    stack.central("db", "upgrade")
    people = root / "roster.csv"
    listed = [(n, True) for k in what.phones for n in kinds[k]]
    listed += [(n, False) for k in what.no_phones for n in kinds[k]]
    with people.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id_number", "name", "sex", "birth_date", "community", "phone", "language"])
        for i, (n, with_phone) in enumerate(listed):
            w.writerow(
                [n, f"Retiree {i}", idnumber.sex(n), idnumber.birth_date(n), f"C{i % 7}"]
                + ([f"+86138{i:08d}", "zh"] if with_phone else ["", ""])
            )
    engine = db.create_engine(
        stack.database_url or f"sqlite:///{stack.fleet.paths.central}/central.sqlite"
    )
    now = dt.datetime.now(dt.UTC)
    try:
        report = roster.import_csv(engine, people, actor="bench")
        assert report.added == len(listed), report
        rows = [
            {
                "id_number": n,
                "code_mac": random.Random(n).randbytes(32).hex(),  # a code nobody knows
                "tries": 0,
                "created_at": now + expires - dt.timedelta(minutes=5),
                "expires_at": now + expires,
            }
            for k, expires in what.codes
            for n in kinds[k]
        ]
        if rows:
            with engine.begin() as conn:
                conn.execute(phone_codes.insert(), rows)
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
    what: Endpoint, port: int, order: list[tuple[str, str]], gap_s: float, warm: list[str]
) -> list[dict[str, Any]]:
    """POST ``what.path`` for each ``(kind, id_number)`` in turn: the round trip and answer."""
    import httpx
    from tqdm import tqdm

    base = f"http://127.0.0.1:{port}"
    rng = random.Random(port)
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=20) as client:
        for n in warm:
            r = client.post(what.path, json=what.body(n, rng))
            assert r.status_code in (200, 403), r.text
            time.sleep(gap_s)
        for kind, n in tqdm(order, desc=what.path, unit="req", mininterval=2):
            body = what.body(n, rng)
            t = time.perf_counter()
            r = client.post(what.path, json=body)
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


def lockout(what: Endpoint, port: int, kinds: dict[str, list[str]], n: int) -> dict[str, str]:
    """The statuses of ``n`` more guesses at one (already guessed) ID number of each kind:
    whether and when the tries run out."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    rng = random.Random(port + 1)
    seen: dict[str, str] = {}
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=20) as client:
        for kind in what.kinds:
            n_id = kinds[kind][0]
            codes = [client.post(what.path, json=what.body(n_id, rng)) for _ in range(n)]
            seen[kind] = " ".join(str(r.status_code) for r in codes)
    return seen


def up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def analyse(what: Endpoint, rows: list[dict[str, Any]], seed: int) -> tuple[str, bool]:
    """The tables (as text) and whether any pair differs detectably."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(seed)
    by = {k: np.array([r["us"] for r in rows if r["kind"] == k]) for k in what.kinds}
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
    for a, b in what.pairs:
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


def plot(what: Endpoint, rows: list[dict[str, Any]], path: Path) -> None:
    """ECDFs of the round trips per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for k in what.kinds:
        v = np.sort([r["us"] / 1000 for r in rows if r["kind"] == k])
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=f"{k} (n={len(v)})")
    ax.set_xlabel(f"POST {what.path} round trip (ms)")
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
        epilog="Example: python bench/bench_code_timing.py --endpoint verify --samples 200",
    )
    parser.add_argument(
        "--endpoint",
        choices=sorted(ENDPOINTS),
        default="code",
        help="code: time code requests (/api/code); verify: code checks (/api/verify)",
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
        help="the remote terminal's [remote] code_answer_ms, for code requests and checks "
        "(default 250, its default; 0: central's own time shows)",
    )
    parser.add_argument("--seed", type=int, default=1, help="ID numbers and order (default 1)")
    parser.add_argument(
        "--database-url", help="central's database (default: SQLite in the temporary folder)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="CSV and PNG")
    args = parser.parse_args()
    what = ENDPOINTS[args.endpoint]
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
            Path(tmp),
            what,
            args.samples,
            args.warmup,
            args.seed,
            args.database_url,
            args.code_answer_ms,
        )
        stack = setup["stack"]
        ready, stop, got = ctx.Event(), ctx.Event(), ctx.Queue()
        sms = ctx.Process(target=gateway, args=(setup["sms_port"], ready, stop, got))
        sms.start()
        ready.wait(30)
        order = [(k, n) for k in what.kinds for n in setup["kinds"][k]]
        random.Random(args.seed).shuffle(order)
        try:
            with stack:
                stack.broker.start()
                stack.start_central()
                stack.start_edges([REMOTE])
                url = f"http://127.0.0.1:{setup['port']}/"
                wait_until(lambda: up(url), 60, "the phone page")
                started = time.monotonic()
                rows = measure(what, setup["port"], order, args.gap_ms / 1000, setup["spare"])
                elapsed = time.monotonic() - started
                tries = (
                    lockout(what, setup["port"], setup["kinds"], 5)
                    if what.path == "/api/verify"
                    else {}
                )
                time.sleep(2)  # the last texts leave central's worker
        finally:
            stop.set()
            texts = got.get(timeout=30)
            sms.join(10)
    load = os.getloadavg()
    print(
        f"{len(rows)} requests in {elapsed:.0f} s; load after {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; texts at the gateway: {texts} "
        f"(expected {args.samples * len(what.texted)})"
    )
    over = Counter(r["kind"] for r in rows if r["us"] > args.code_answer_ms * 1000 + 50_000)
    print(
        f"[remote] code_answer_ms = {args.code_answer_ms}; answers later than it + 50 ms: "
        f"{dict(over) or 'none'}"
    )
    statuses = Counter((r["kind"], r["status"]) for r in rows)
    answers = {k: {r["answer"] for r in rows if r["kind"] == k} for k in what.kinds}
    identical = len(set().union(*answers.values())) == 1
    print(f"statuses: {dict(statuses)}")
    print(
        "answers (status, headers but date, body) byte-identical across kinds: "
        + ("yes" if identical else f"NO: {answers}")
    )
    if tries:
        print("5 more wrong codes for one ID number of each kind (5 tries a code):")
        print("\n".join(f"  {kind:9s} {statuses}" for kind, statuses in tries.items()))
    table, detected = analyse(what, rows, args.seed)
    print()
    print(table)
    print(
        f"\n=> {'a difference is detectable' if detected else 'no detectable difference'} "
        f"(p < {ALPHA} and a 95% interval of Δ median excluding 0)"
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{args.endpoint}_timing_{stamp}"
    with (args.out / f"{name}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seq", "kind", "round_trip_us", "status"])
        w.writerows((i, r["kind"], f"{r['us']:.1f}", r["status"]) for i, r in enumerate(rows))
    plot(what, rows, args.out / f"{name}.png")
    print(f"samples and plot: {args.out}/{name}.{{csv,png}}")


if __name__ == "__main__":
    main()
