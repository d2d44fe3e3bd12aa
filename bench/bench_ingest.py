"""End-to-end ingest: results/s from terminal outboxes to applied-and-acked, beside bare Mosquitto.

In one run, on one broker (the fleet's generated mutual-TLS config):

1. bare: one paho publisher process → Mosquitto → one paho subscriber process,
   QoS 1, payloads the size of a signed result; messages/s at the subscriber;
2. lifecert with 1 and with 2 central consumers: ``--devices`` terminal services
   deliver ``--results`` pre-recorded signed results; results/s from the start of
   the terminals until every result is applied in central's database and every
   outbox row is marked delivered by a verified ack.

Usage: python bench/bench_ingest.py [--results 6000] [--devices 4] [--database-url URL]
"""

import argparse
import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa

from common import idnumber
from edge.adapters.keys import load as load_keys
from edge.adapters.recorder import Recorder
from edge.bootstrap import open_outbox
from edge.config import load as load_edge_config
from edge.session.model import assisted
from protocol import topics
from protocol.settings import TlsFiles
from provisioning.stack import Stack, free_port


def _client(tls: TlsFiles, client_id: str, login: tuple[str, str]) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(str(tls.ca_file), str(tls.cert_file), str(tls.key_file))
    client.username_pw_set(*login)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    return client


def _subscriber(
    tls: TlsFiles, login: tuple[str, str], port: int, n: int, ready: Any, out: Any
) -> None:
    got = 0
    first = last = 0.0
    client = _client(tls, "bench-bare-sub", login)

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        if got == 1:
            first = last

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe(topics.shared_results(), qos=1)
    deadline = time.monotonic() + 300
    while got < n and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    out.put((got, first, last))


def _publisher(
    tls: TlsFiles, password: str, device_id: str, port: int, n: int, size: int, out: Any
) -> None:
    client = _client(tls, device_id, (device_id, password))
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = b"x" * size
    topic = topics.device_topic(device_id, "result")
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    out.put(time.perf_counter() - start)
    client.loop_stop()
    client.disconnect()


def bare_rate(stack: Stack, device_id: str, n: int, size: int) -> float:
    """Messages/s through the broker, paho publisher → paho subscriber, QoS 1."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    central = (stack.fleet.central_tls(), ("lifecert-central", stack.fleet.central_password()))
    sub = ctx.Process(target=_subscriber, args=(*central, stack.broker.port, n, ready, out))
    sub.start()
    ready.wait(30)
    bundle = stack.fleet.paths.bundle(device_id)
    tls = TlsFiles(
        ca_file=bundle / "ca.pem", cert_file=bundle / "device.pem", key_file=bundle / "device.key"
    )
    password = (bundle / "mqtt.password").read_text().strip()
    pub = ctx.Process(
        target=_publisher, args=(tls, password, device_id, stack.broker.port, n, size, out)
    )
    pub.start()
    pub.join()
    sub.join()
    values = [out.get(), out.get()]
    got, first, last = next(v for v in values if isinstance(v, tuple))
    if got < n:
        raise RuntimeError(f"bare run: subscriber got {got} of {n}")
    return n / (last - first)


def prefill(stack: Stack, devices: list[str], retirees: list[str], per_device: int) -> int:
    """Record ``per_device`` signed results in each terminal's outbox; their mean JWS size."""
    people = itertools.cycle(retirees)
    sizes = []
    for device_id in devices:
        cfg = load_edge_config(stack.edge_config(device_id))
        with open_outbox(cfg) as outbox:
            recorder = Recorder(outbox, load_keys(cfg))
            drafts = [assisted(next(people), "desk-1") for _ in range(per_device)]
            recorder.record_many(drafts)
            sizes += [len(r.jws) for r in outbox.due(50)]
    return int(statistics.mean(sizes))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_received(url: str) -> float:
    """When central received its first result (epoch seconds)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(sa.text("SELECT min(received_at) FROM results")).scalar_one()
    finally:
        engine.dispose()
    if isinstance(first, str):
        first = dt.datetime.fromisoformat(first)
    if first.tzinfo is None:
        first = first.replace(tzinfo=dt.UTC)
    return float(first.timestamp())


def applied(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM results")).scalar_one())
    finally:
        engine.dispose()


def lifecert_rate(
    root: Path, consumers: int, devices: int, n: int, database_url: str | None
) -> dict[str, Any]:
    ids = [f"term-b{i:03d}" for i in range(devices)]
    stack = Stack.create(root, free_port(), ids, database_url=database_url)
    retirees = [idnumber.make("110105", dt.date(1950, 1, 1), i) for i in range(500)]
    roster = root / "roster.csv"
    roster.write_text(
        "id_number,name,sex,birth_date\n"
        + "".join(f"{r},R {i},{idnumber.sex(r)},1950-01-01\n" for i, r in enumerate(retirees))
    )
    with stack:
        stack.central("db", "upgrade")
        stack.central("roster", "import", str(roster))
        size = prefill(stack, ids, retirees, n // devices)
        total = (n // devices) * devices
        stack.broker.start()
        bare = bare_rate(stack, ids[0], total, size)
        for c in range(consumers):
            stack.start_central(f"central-{c + 1}")
        url = database_url or f"sqlite:///{stack.fleet.paths.central / 'central.sqlite'}"
        stack.start_edges(ids)
        pids = {name: proc.pid for name, proc in stack._procs.items()}
        pids["mosquitto"] = stack.broker.pid or 0
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        stack.wait_until(lambda: applied(url) >= total, 600, "all results applied", poll=0.02)
        t_applied = time.time() - first_received(url)
        outboxes = [open_outbox(load_edge_config(stack.edge_config(d))) for d in ids]
        stack.wait_until(
            lambda: all(o.counts()["pending"] == 0 for o in outboxes), 300, "acks", poll=0.02
        )
        t_acked = time.time() - first_received(url)
        for outbox in outboxes:
            outbox.close()
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    per_1000 = {
        "central_cpu_s": sum(v for k, v in cpu.items() if k.startswith("central")),
        "edges_cpu_s": sum(v for k, v in cpu.items() if k.startswith("term")),
        "broker_cpu_s": cpu["mosquitto"],
    }
    return {
        "consumers": consumers,
        "devices": devices,
        "results": total,
        "jws_bytes": size,
        "bare_msgs_per_s": round(bare),
        "applied_per_s": round(total / t_applied),
        "applied_and_acked_per_s": round(total / t_acked),
        "ratio_to_bare": round((total / t_applied) / bare, 3),
        "cpu_s_per_1000_results": {k: round(v * 1000 / total, 3) for k, v in per_1000.items()},
        "load_avg_1m": os.getloadavg()[0],
    }


def fresh_database(url: str | None, suffix: str) -> str | None:
    """SQLite: None (a new file per run). PostgreSQL: a new database ``<name>_<suffix>``."""
    if url is None:
        return None
    engine_url = sa.engine.make_url(url)
    name = f"{engine_url.database}_{suffix}"
    admin = sa.create_engine(engine_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return engine_url.set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=6000)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL whose server gets a fresh database per run (default: SQLite)",
    )
    args = parser.parse_args()
    rows = []
    for consumers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="lifecert-bench-") as tmp:
            url = fresh_database(args.database_url, f"c{consumers}")
            row = lifecert_rate(Path(tmp), consumers, args.devices, args.results, url)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {mp.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
