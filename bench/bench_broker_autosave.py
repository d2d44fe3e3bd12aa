"""What saving QoS 1 messages sooner costs Mosquitto: throughput and broker CPU per setting.

For each persistence setting, a fresh fleet and broker (the generated config: mutual TLS,
dynamic-security logins), then:

1. live: one paho publisher process (a terminal's login) → one paho subscriber process on
   central's shared subscription, QoS 1, ``--size``-byte payloads; messages/s at the subscriber;
2. backlog: the subscriber's persistent session is offline, so every message stays queued in
   the broker (what a central outage looks like); PUBACKs/s at the publisher, and the size of
   the persistence file at the end.

Settings: ``autosave_interval 30`` (time-based, seconds) and ``autosave_on_changes true`` with
intervals 1 (a save after every change), 100 and 1000 (changes).

Usage: python bench/bench_broker_autosave.py [--messages 5000] [--size 900] [--repeat 2]
"""

import argparse
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import topics
from protocol.settings import TlsFiles
from provisioning.broker import MosquittoProcess
from provisioning.brokerconf import PERSISTENCE_FILE, BrokerOptions
from provisioning.fleet import Fleet
from provisioning.stack import free_port

DEVICE = "term-bench"
SUBSCRIBER = "lifecert-central-bench"
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("interval 30 s", {"autosave_interval": 30}),
    ("on changes 1000", {"autosave_interval": 1000, "autosave_on_changes": True}),
    ("on changes 100", {"autosave_interval": 100, "autosave_on_changes": True}),
    ("on changes 1", {"autosave_interval": 1, "autosave_on_changes": True}),
]
Login = tuple[TlsFiles, str, str, str]  # tls, username, password, client id


def _client(login: Login, port: int, *, persistent: bool) -> mqtt.Client:
    tls, username, password, client_id = login
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.tls_set(str(tls.ca_file), str(tls.cert_file), str(tls.key_file))
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if persistent else 0
    client.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
    return client


def _subscribe_and_leave(login: Login, port: int) -> None:
    """Make the subscriber's persistent session (in the share group), then go offline."""
    client = _client(login, port, persistent=True)
    done = mp.Event()
    client.on_subscribe = lambda *_: done.set()
    client.loop_start()
    client.subscribe(topics.shared_results(), qos=1)
    done.wait(10)
    client.disconnect()
    client.loop_stop()


def _subscriber(login: Login, port: int, n: int, ready: Any, out: Any) -> None:
    got, first, last = 0, 0.0, 0.0
    client = _client(login, port, persistent=True)

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        first = first or last

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.subscribe(topics.shared_results(), qos=1)
    deadline = time.monotonic() + 600
    while got < n and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    out.put(("sub", got, last - first))


def _publisher(login: Login, port: int, n: int, size: int, out: Any) -> None:
    client = _client(login, port, persistent=False)
    client.loop_start()
    payload = b"x" * size
    topic = topics.device_topic(DEVICE, "result")
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(600)
    out.put(("pub", n, time.perf_counter() - start))
    client.loop_stop()
    client.disconnect()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_setting(root: Path, options: dict[str, Any], n: int, size: int) -> dict[str, float]:
    """Both scenarios on a fresh fleet and broker with these persistence options."""
    port = free_port()
    fleet = Fleet.create(root / "fleet", "bench", broker_host="127.0.0.1", broker_port=port)
    fleet.write_broker_config(BrokerOptions(port=port, bind="127.0.0.1", **options))
    bundle = fleet.enrol(DEVICE).bundle
    device: Login = (
        TlsFiles(
            ca_file=bundle / "ca.pem",
            cert_file=bundle / "device.pem",
            key_file=bundle / "device.key",
        ),
        DEVICE,
        (bundle / "mqtt.password").read_text().strip(),
        DEVICE,
    )
    central: Login = (fleet.central_tls(), "lifecert-central", fleet.central_password(), SUBSCRIBER)
    ctx = mp.get_context("spawn")
    conf = fleet.paths.broker / "mosquitto.conf"
    with MosquittoProcess(conf, port, log_path=root / "mosquitto.log") as broker:
        assert broker.pid is not None
        # 1. live subscriber
        ready, out = ctx.Event(), ctx.Queue()
        sub = ctx.Process(target=_subscriber, args=(central, port, n, ready, out))
        sub.start()
        ready.wait(30)
        cpu0 = cpu_seconds(broker.pid)
        pub = ctx.Process(target=_publisher, args=(device, port, n, size, out))
        pub.start()
        pub.join()
        sub.join()
        live_cpu = cpu_seconds(broker.pid) - cpu0
        results = dict((kind, (count, seconds)) for kind, count, seconds in (out.get(), out.get()))
        got, seconds = results["sub"]
        if got < n:
            raise RuntimeError(f"live run: the subscriber got {got} of {n}")
        live = n / seconds
        # 2. backlog: the subscriber's session is offline, everything stays queued
        _subscribe_and_leave(central, port)
        cpu0 = cpu_seconds(broker.pid)
        pub = ctx.Process(target=_publisher, args=(device, port, n, size, out))
        pub.start()
        pub.join()
        backlog_cpu = cpu_seconds(broker.pid) - cpu0
        _, _, seconds = out.get()
        backlog = n / seconds
        db = root / "fleet" / "broker" / "data" / PERSISTENCE_FILE
        db_mib = db.stat().st_size / 2**20 if db.exists() else 0.0
    return {
        "live_msgs_per_s": live,
        "live_broker_us_per_msg": live_cpu / n * 1e6,
        "backlog_msgs_per_s": backlog,
        "backlog_broker_us_per_msg": backlog_cpu / n * 1e6,
        "db_mib": db_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=900, help="payload bytes (a signed result)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (median)")
    args = parser.parse_args()
    rows = []
    for name, options in SETTINGS:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-autosave-") as tmp:
                runs.append(one_setting(Path(tmp), options, args.messages, args.size))
        row = {"setting": name} | {
            k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "messages": args.messages,
                "size": args.size,
                "repeat": args.repeat,
            }
        )
    )


if __name__ == "__main__":
    main()
