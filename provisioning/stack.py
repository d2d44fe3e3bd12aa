"""A whole lifecert installation on one machine: fleet, broker, central consumers, terminals.

Used by ``lifecert demo``, the end-to-end fault tests and the benchmarks. Every
part runs as its own process through its real entry point (``mosquitto``,
``lifecert-central``, ``lifecert-edge``), so what is exercised is what ships.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Self

from common.errors import LifecertError
from provisioning.broker import MosquittoProcess
from provisioning.brokerconf import BrokerOptions
from provisioning.cliutil import script_argv as _script
from provisioning.fleet import Fleet

log = logging.getLogger(__name__)


class StackError(LifecertError, RuntimeError):
    """A part of the stack failed to start, answer or finish in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """Fleet + Mosquitto + ``lifecert-central`` processes + ``lifecert-edge`` processes."""

    def __init__(self, root: Path, fleet: Fleet, database_url: str | None = None) -> None:
        self.root = root
        self.fleet = fleet
        self.database_url = database_url
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        port = fleet.settings.broker.port
        self.broker = MosquittoProcess(
            fleet.paths.broker / "mosquitto.conf", port, log_path=self.logs / "mosquitto.log"
        )
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._files: dict[str, IO[bytes]] = {}

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: Path,
        port: int,
        devices: Iterable[str] = (),
        *,
        name: str = "demo",
        database_url: str | None = None,
        broker_options: Mapping[str, Any] | None = None,
    ) -> Self:
        """A new fleet under ``root/fleet`` with a broker on ``port`` and ``devices`` enrolled."""
        fleet = Fleet.create(root / "fleet", name, broker_host="127.0.0.1", broker_port=port)
        if broker_options:
            fleet.write_broker_config(BrokerOptions(port=port, **broker_options))
        for device_id in devices:
            fleet.enrol(device_id)
        return cls(root, fleet, database_url)

    @property
    def central_config(self) -> Path:
        """The central config the fleet wrote."""
        return self.fleet.paths.central / "central.toml"

    def edge_config(self, device_id: str) -> Path:
        """A terminal's config inside its enrolment bundle."""
        return self.fleet.paths.bundle(device_id) / "edge.toml"

    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.database_url:
            env["LIFECERT_CENTRAL__DATABASE__URL"] = self.database_url
        env.update(extra or {})
        return env

    # -- commands ---------------------------------------------------------------------------

    def central(self, *args: str, timeout: float = 120) -> str:
        """Run ``lifecert-central --config … ARGS`` to completion; its stdout."""
        return self._run(
            [*_script("lifecert-central"), "--config", str(self.central_config), *args], timeout
        )

    def edge(self, device_id: str, *args: str, timeout: float = 60) -> str:
        """Run ``lifecert-edge --config <bundle> ARGS`` to completion; its stdout."""
        argv = [*_script("lifecert-edge"), "--config", str(self.edge_config(device_id)), *args]
        return self._run(argv, timeout)

    def _run(self, argv: list[str], timeout: float) -> str:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=self._env(), timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise StackError(
                f"{Path(argv[0]).name} {' '.join(argv[3:])} exited {done.returncode}: "
                f"{done.stderr.strip()[-2000:]}"
            )
        return done.stdout

    # -- long-running processes -------------------------------------------------------------------

    def start_central(
        self,
        name: str = "central-1",
        extra_env: Mapping[str, str] | None = None,
        ready_timeout: float = 60,
    ) -> None:
        """Start one consumer process (distinct MQTT client id per name); wait for READY."""
        argv = [*_script("lifecert-central"), "--config", str(self.central_config), "run"]
        argv += ["--client-id", f"lifecert-{name}"]
        self._start({name: argv}, extra_env, ready_timeout)

    def start_console(self, port: int, ready_timeout: float = 60) -> None:
        """Start the staff console (``lifecert-central console``) on ``port``; wait for READY."""
        argv = [*_script("lifecert-central"), "--config", str(self.central_config), "console"]
        self._start(
            {"console": argv}, {"LIFECERT_CENTRAL__CONSOLE__PORT": str(port)}, ready_timeout
        )

    def start_edge(
        self,
        device_id: str,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout: float = 60,
    ) -> None:
        """Start a terminal's service; wait for READY."""
        self.start_edges([device_id], extra_env, ready_timeout)

    def start_edges(
        self,
        device_ids: Iterable[str],
        extra_env: Mapping[str, str] | None = None,
        ready_timeout: float = 60,
    ) -> None:
        """Start several terminals at once; wait until every one reported READY."""
        argvs = {
            d: [*_script("lifecert-edge"), "--config", str(self.edge_config(d)), "run"]
            for d in device_ids
        }
        self._start(argvs, extra_env, ready_timeout)

    def _start(
        self,
        argvs: Mapping[str, list[str]],
        extra_env: Mapping[str, str] | None,
        ready_timeout: float,
    ) -> None:
        """Start processes, each with a systemd-style notify socket; wait for every READY=1."""
        sockets: dict[str, socket.socket] = {}
        try:
            for name, argv in argvs.items():
                if self.running(name):
                    continue
                address = f"lifecert-stack-{uuid.uuid4().hex}"
                sockets[name] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sockets[name].bind("\0" + address)
                sockets[name].settimeout(0.05)
                out = (self.logs / f"{name}.log").open("ab")
                self._files[name] = out
                env = {**(extra_env or {}), "NOTIFY_SOCKET": "@" + address}
                self._procs[name] = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env(env),
                )
            waiting = set(sockets)
            deadline = time.monotonic() + ready_timeout
            while waiting and time.monotonic() < deadline:
                for name in list(waiting):
                    try:
                        if b"READY=1" in sockets[name].recv(4096).split(b"\n"):
                            waiting.discard(name)
                    except TimeoutError:
                        if self._procs[name].poll() is not None:
                            deadline = 0
            if waiting:
                for name in waiting:
                    self.kill(name)
                name = sorted(waiting)[0]
                raise StackError(f"{name} did not report READY=1:\n{self.log_tail(name)}")
        finally:
            for sock in sockets.values():
                sock.close()

    def running(self, name: str) -> bool:
        """True while process ``name`` is alive."""
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to process ``name`` (SIGSTOP/SIGCONT to slow it, SIGKILL to crash it)."""
        proc = self._procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)

    def kill(self, name: str) -> None:
        """``kill -9``: a crash or power cut for that process."""
        proc = self._procs.get(name)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            self._close(name)

    def stop(self, name: str, timeout: float = 20) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``timeout``)."""
        proc = self._procs.get(name)
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %ss; killing it", name, timeout)
                proc.kill()
                proc.wait()
        self._close(name)
        return proc.returncode

    def _close(self, name: str) -> None:
        out = self._files.pop(name, None)
        if out is not None:
            out.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The end of a process's log, for error messages."""
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop every process, terminals first, then central, then the broker."""
        for name in sorted(self._procs, key=lambda n: n.startswith("central")):
            self.stop(name)
        self.broker.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observing ---------------------------------------------------------------------------

    def outbox_counts(self, device_id: str) -> dict[str, int]:
        """The terminal's outbox counts per status (through its CLI)."""
        counts = json.loads(self.edge(device_id, "outbox", "--json", "--limit", "0"))["counts"]
        return {str(k): int(v) for k, v in counts.items()}

    def wait_until(
        self, done: Callable[[], bool], timeout: float, what: str, poll: float = 0.25
    ) -> float:
        """Poll ``done`` until true; seconds waited. ``StackError`` naming ``what`` on time-out."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if done():
                return time.monotonic() - start
            for name, proc in self._procs.items():
                if proc.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    raise StackError(f"{name} exited {proc.returncode}:\n{self.log_tail(name)}")
            time.sleep(poll)
        raise StackError(f"timed out after {timeout}s waiting for {what}")

    def wait_delivered(self, device_ids: Iterable[str], timeout: float = 60) -> float:
        """Wait until no terminal has a pending result; seconds waited."""
        ids = list(device_ids)
        return self.wait_until(
            lambda: all(self.outbox_counts(d).get("pending", 0) == 0 for d in ids),
            timeout,
            f"the outboxes of {', '.join(ids)} to be delivered",
        )
