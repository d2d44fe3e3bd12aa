"""Run a Mosquitto broker as a child process (tests, ``lifecert demo``).

::

    with MosquittoProcess(fleet.write_broker_config(options), port=8883) as broker:
        ...                # broker.restart(), broker.reload(), broker.kill(), broker.log_path

The process's output goes to ``log_path``; its pid goes to ``pid_file`` (so
``lifecert fleet revoke`` can SIGHUP it). ``start`` returns once the listener
accepts TCP connections, and fails with the log's tail if Mosquitto exits.
"""

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from provisioning.brokerconf import BrokerOptions
from provisioning.errors import BrokerError
from provisioning.fleet import Fleet

log = logging.getLogger(__name__)

DEFAULT_EXECUTABLE = "/usr/sbin/mosquitto"


def find_mosquitto() -> str:
    """The mosquitto executable: on PATH, else Debian's ``/usr/sbin/mosquitto``."""
    found = shutil.which("mosquitto") or (
        DEFAULT_EXECUTABLE if os.access(DEFAULT_EXECUTABLE, os.X_OK) else None
    )
    if not found:
        raise BrokerError("mosquitto not found: install it (apt-get install mosquitto)")
    return found


class MosquittoProcess:
    """One ``mosquitto -c CONF`` child process listening on ``host:port``."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        pid_file: Path | None = None,
        executable: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.port = port
        self.host = host
        self.log_path = log_path or config.with_name("mosquitto.log")
        self.pid_file = pid_file
        self.executable = executable or find_mosquitto()
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's pid, or None."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Mosquitto and wait until its listener accepts connections."""
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [self.executable, "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self._proc.pid}\n")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._close_log()
                raise BrokerError(
                    f"mosquitto exited with {self._proc.returncode} at start:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    log.info("mosquitto pid %s listening on %s:%s", self.pid, self.host, self.port)
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise BrokerError(
            f"mosquitto did not listen on {self.host}:{self.port} within "
            f"{self.start_timeout}s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL if it lingers."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("mosquitto pid %s ignored SIGTERM; killing it", self._proc.pid)
                self._proc.kill()
                self._proc.wait()
        self._finish()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._finish()

    def restart(self) -> None:
        """Stop cleanly and start again on the same port."""
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its config and CRL (not the dynamic-security file)."""
        if not self.running or self._proc is None:
            raise BrokerError("mosquitto is not running: start it first")
        self._proc.send_signal(signal.SIGHUP)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _finish(self) -> None:
        self._close_log()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the broker."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def for_fleet(
    fleet: Fleet, *, bind: str = "127.0.0.1", persistence_dir: Path | None = None
) -> MosquittoProcess:
    """Write the fleet's broker config (its port, listening on ``bind``) and return its process.

    The process logs to ``broker/mosquitto.log`` and writes the fleet's
    ``broker.pid_file``, so ``Fleet.reload_broker()`` (and ``lifecert fleet
    revoke``) reach it. Not started yet: use it as a context manager.
    """
    port = fleet.settings.broker.port
    config = fleet.write_broker_config(
        BrokerOptions(port=port, bind=bind, persistence_dir=persistence_dir)
    )
    return MosquittoProcess(
        config,
        port,
        host=bind if bind not in ("0.0.0.0", "::") else "127.0.0.1",
        log_path=fleet.paths.broker / "mosquitto.log",
        pid_file=fleet.settings.broker.pid_file,
    )
