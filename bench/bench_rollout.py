"""Rollout of a model bundle (the built one, ~11.7 MB) to N terminal processes.

A fresh stack: Mosquitto (generated mTLS + dynamic-security config), ``lifecert-central
run`` with its bundle server, and ``--terminals`` ``lifecert-edge run`` processes, each
running the built bundle (installed as a release). Then one rollout of the same models in a
new signed release, in one wave to all (or ``--canary K`` first), and it measures:

- time from ``advance`` until every terminal answered (download, verify, stage, switch,
  self-test on two LFW pairs each, report) — all terminals share this machine's cores;
- bytes on the wire per terminal for the download: a counting TCP relay sits between the
  terminals and the bundle server (TLS records and handshake, both directions; the MQTT
  command, ack and report add about 3 KB, counted apart from the payload sizes);
- the broker's memory (VmRSS and VmHWM from /proc/<pid>/status) before and after: the
  bundle does not go through the broker.

Uses the helpers of ``tests/fixtures/rollout.py`` (bundle variants, self-test images).

Usage: python bench/bench_rollout.py [--terminals 20] [--canary 0]
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from central import config as central_config  # noqa: E402
from central.bootstrap import Central  # noqa: E402
from central.fleet import commands, rollouts  # noqa: E402
from central.fleet.commands_link import members  # noqa: E402
from edge.config import load as load_edge_config  # noqa: E402
from edge.fleet.updates import Updater  # noqa: E402
from provisioning.stack import Stack, free_port  # noqa: E402
from tests.fixtures.rollout import built_bundle, fleet_env, model_bundles, selftest_dir  # noqa: E402

DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))


class Relay:
    """A TCP relay that counts the bytes of each connection (both directions)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.bytes: Counter[int] = Counter()
        self._n = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._n += 1
                n = self._n
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, n), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, n: int) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                with self._lock:
                    self.bytes[n] += len(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=20)
    parser.add_argument("--canary", type=int, default=0, help="terminals in a first wave")
    args = parser.parse_args()
    built = built_bundle()
    if built is None:
        sys.exit("no built bundle in var/models with var/models-dev/sign.key: run `make models`")
    devices = [f"term-b{i:03d}" for i in range(args.terminals)]
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        root = Path(tmp)
        stack = Stack.create(root / "stack", free_port(), devices)
        bundle_port = free_port()
        relay = Relay(bundle_port)
        env = fleet_env(selftest_dir(DATA, root / "selftest"), bundle_port)
        env["LIFECERT_CENTRAL__ROLLOUT__BUNDLE_URL"] = f"https://127.0.0.1:{relay.port}"
        os.environ.update(env)
        bundles = model_bundles(stack.fleet, built, root / "bundles")
        with stack:
            stack.central("db", "upgrade")
            for device_id in devices:
                Updater(load_edge_config(stack.edge_config(device_id)), None).install(
                    bundles["good"]
                )
            stack.broker.start()
            stack.start_central()
            t0 = time.monotonic()
            stack.start_edges(devices, ready_timeout=300)
            started = time.monotonic() - t0
            broker_pid = stack.broker.pid
            assert broker_pid is not None
            before = memory(broker_pid)
            central = Central(central_config.load(stack.central_config))
            engine = central.engine
            s = central.cfg.rollout
            now = dt.datetime.now(dt.UTC)
            first = devices[: args.canary]
            rollout_id = rollouts.create(
                engine,
                members(central.trust),
                bundles["good2"],
                s.model_sign_pub,
                s.store_dir,
                canary=first,
                percents=[],
                max_failure_rate=0.5,
                max_bytes=s.max_bundle_bytes,
                now=now,
            )
            (row,) = rollouts.status(engine, rollout_id)
            ttl = dt.timedelta(hours=1)
            url = s.bundle_url or ""
            peak = before["VmRSS"]
            t0 = time.monotonic()
            waves = []
            for _ in row["waves"]:
                w0 = time.monotonic()
                rollouts.advance(
                    engine, central.signer, rollout_id, url, ttl, dt.datetime.now(dt.UTC)
                )
                while any(d["state"] == "offered" for d in rollouts.devices(engine, rollout_id)):
                    peak = max(peak, memory(broker_pid)["VmRSS"])
                    time.sleep(0.2)
                waves.append(round(time.monotonic() - w0, 2))
            total = time.monotonic() - t0
            after = memory(broker_pid)
            states = Counter(d["state"] for d in rollouts.devices(engine, rollout_id))
            acks = [c for c in commands.listing(engine, None, 1000) if c["rollout_id"]]
            engine.dispose()
        per = sorted(relay.bytes.values())
    result = {
        "terminals": args.terminals,
        "canary": args.canary,
        "archive_bytes": row["size"],
        "states": dict(states),
        "answered": len([a for a in acks if a["status"] != "sent"]),
        "terminals_started_s": round(started, 1),
        "rollout_s": round(total, 2),
        "waves_s": waves,
        "wire_bytes_per_terminal": {"min": per[0], "max": per[-1], "n": len(per)} if per else {},
        "wire_overhead_pct": round(100 * (per[-1] / row["size"] - 1), 2) if per else None,
        "broker_kib_before": before,
        "broker_kib_after": after,
        "broker_rss_peak_kib": peak,
        "load_avg_1m": os.getloadavg()[0],
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
