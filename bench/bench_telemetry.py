"""Telemetry ingest: central's CPU for terminals' health reports, beside a bare paho subscriber.

Target (issue 15): 10,000 terminals at one report a minute (≈ 167 msg/s) with < 5% of one
core. In one run, on one broker (the fleet's generated mutual-TLS + dynsec config):

- ``--devices`` enrolled terminals, each its own MQTT connection under its own login
  (one publisher process, one paho client per terminal), send real edge reports
  (``edge.telemetry.Health``, fresh ``device_time`` each) paced at ``--rate`` msg/s in
  total for ``--seconds``;
- ``lifecert-central run`` (results consumer, template service, fleet health with alerts
  every 30 s and metrics) keeps every terminal's state in its database;
- two bare paho subscriber processes (central's login, QoS 0) receive the same messages
  and only count them: one runs paho's loop on its main thread, one on a thread of its own
  (``loop_start``, as central's link does).

Reported: CPU seconds of each (central also net of its own idle CPU, measured for the same
time before the reports start), µs per message and % of one core at the paced rate, and
whether central kept every report (its ``lifecert_fleet_messages_total`` metric).

Usage: python bench/bench_telemetry.py [--devices 200] [--rate 167] [--seconds 60]
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.bootstrap import open_outbox
from edge.config import load as load_edge_config
from edge.telemetry import Health
from protocol import messages, topics
from protocol.messages import Telemetry
from provisioning.stack import Stack, free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(ca: Path, cert: Path, key: Path, client_id: str, login: tuple[str, str]) -> Any:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(str(ca), str(cert), str(key))
    client.username_pw_set(*login)
    return client


def _bare(tls: tuple[Path, Path, Path], login: tuple[str, str], port: int, threaded: bool,
          ready: Any, out: Any, stop: Any) -> None:  # fmt: skip
    """Count telemetry messages until ``stop``; put (count, own CPU seconds while counting).

    ``threaded``: paho's network loop on its own thread (``loop_start``, as central's link
    runs it) instead of ``loop()`` calls on the main thread.
    """
    got = 0
    first = threading.Event()

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal got
        got += 1
        first.set()

    client = _client(*tls, f"bench-bare-{os.getpid()}", login)
    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.connect("127.0.0.1", port)
    client.subscribe(topics.all_devices("telemetry"), qos=0)
    cpu0 = None
    if threaded:
        client.loop_start()
        first.wait()
        cpu0 = cpu_seconds(os.getpid())
        stop.wait()
        client.loop_stop()
    else:
        while not stop.is_set():
            client.loop(0.05)
            if cpu0 is None and got:
                cpu0 = cpu_seconds(os.getpid())
    client.disconnect()
    out.put((threaded, got, cpu_seconds(os.getpid()) - (cpu0 or 0.0)))


def reports(stack: Stack, devices: list[str]) -> dict[str, Telemetry]:
    """Each terminal's report as its edge service builds it (``edge.telemetry.Health``)."""
    out = {}
    for device_id in devices:
        cfg = load_edge_config(stack.edge_config(device_id))
        with open_outbox(cfg) as outbox:
            out[device_id] = Health(cfg).report(outbox, 0)
    return out


def publish(stack: Stack, devices: list[str], rate: float, seconds: float) -> int:
    """Connect every terminal, then send reports round-robin paced at ``rate``; how many."""
    base = reports(stack, devices)
    clients = {}
    for device_id in devices:
        bundle = stack.fleet.paths.bundle(device_id)
        password = (bundle / "mqtt.password").read_text().strip()
        files = (bundle / "ca.pem", bundle / "device.pem", bundle / "device.key")
        client = _client(*files, device_id, (device_id, password))
        client.connect("127.0.0.1", stack.broker.port, keepalive=60)
        client.loop_start()
        clients[device_id] = client
    time.sleep(2)
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        device_id = devices[i % len(devices)]
        report = base[device_id].model_copy(update={"device_time": _utcnow()})
        clients[device_id].publish(
            topics.device_topic(device_id, "telemetry"), messages.encode(report), qos=0
        )
        pause = start + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    time.sleep(1)
    for client in clients.values():
        client.disconnect()
        client.loop_stop()
    return n


def _utcnow() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def kept(port: int) -> int:
    """Telemetry messages central kept, from its metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith('lifecert_fleet_messages_total{kind="telemetry"}'):
                return int(float(line.rsplit(" ", 1)[1]))
    return 0


def run(devices: int, rate: float, seconds: float) -> dict[str, Any]:
    """One measured run; the figures."""
    root = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
    ids = [f"term-{i:05d}" for i in range(devices)]
    t0 = time.monotonic()
    stack = Stack.create(root, free_port(), ids)
    enrol_s = time.monotonic() - t0
    metrics_port = free_port()
    with stack.central_config.open("a") as toml:
        toml.write(f"\n[metrics]\nport = {metrics_port}\n")
    ctx = mp.get_context("spawn")
    with stack:
        stack.central("db", "upgrade")
        stack.broker.start()
        stack.start_central()
        central_pid = stack._procs["central-1"].pid
        out, stop = ctx.Queue(), ctx.Event()
        fleet = stack.fleet
        tls = fleet.central_tls()
        login = ("lifecert-central", fleet.central_password())
        files = (tls.ca_file, tls.cert_file, tls.key_file)
        bares = []
        for threaded in (False, True):
            ready = ctx.Event()
            bare = ctx.Process(
                target=_bare, args=(files, login, stack.broker.port, threaded, ready, out, stop)
            )
            bare.start()
            ready.wait(30)
            bares.append(bare)
        time.sleep(3)
        idle0 = cpu_seconds(central_pid)
        time.sleep(seconds)
        idle = cpu_seconds(central_pid) - idle0
        cpu0 = cpu_seconds(central_pid)
        sent = publish(stack, ids, rate, seconds)
        time.sleep(2)  # the last flush
        central_cpu = cpu_seconds(central_pid) - cpu0
        stop.set()
        bare_runs = {
            threaded: (got, cpu)
            for threaded, got, cpu in (out.get(timeout=30), out.get(timeout=30))
        }
        for bare in bares:
            bare.join(10)
        central_kept = kept(metrics_port)
    got, bare_cpu = bare_runs[False]
    got_t, bare_t_cpu = bare_runs[True]
    per_s = sent / seconds
    net = max(central_cpu - idle, 0.0)
    return {
        "devices": devices,
        "rate_msg_s": round(per_s, 1),
        "seconds": seconds,
        "sent": sent,
        "central_kept": central_kept,
        "bare_received": got,
        "central_cpu_s": round(central_cpu, 2),
        "central_idle_cpu_s": round(idle, 2),
        "bare_cpu_s": round(bare_cpu, 2),
        "central_us_per_msg": round(central_cpu / sent * 1e6, 1),
        "central_net_us_per_msg": round(net / sent * 1e6, 1),
        "bare_us_per_msg": round(bare_cpu / max(got, 1) * 1e6, 1),
        "central_core_pct": round(100 * central_cpu / seconds, 2),
        "central_net_core_pct": round(100 * net / seconds, 2),
        "bare_core_pct": round(100 * bare_cpu / seconds, 2),
        "bare_threaded_received": got_t,
        "bare_threaded_cpu_s": round(bare_t_cpu, 2),
        "bare_threaded_us_per_msg": round(bare_t_cpu / max(got_t, 1) * 1e6, 1),
        "bare_threaded_core_pct": round(100 * bare_t_cpu / seconds, 2),
        "enrol_s": round(enrol_s, 1),
        "loadavg": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10_000 / 60)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{mp.cpu_count()} cores, load {os.getloadavg()}")  # fmt: skip
    print(json.dumps(run(args.devices, args.rate, args.seconds), indent=2))


if __name__ == "__main__":
    main()
