"""The staff PIN lock-out survives ``kill -9`` and restarts of the kiosk's web server.

The server is the runner's own (``open_desk`` + ``web_server`` from an ``edge.toml``) in a
child process; wrong PINs go over HTTP, the process is killed with SIGKILL between them, and
the count, the lock and the audit lines are all there after each restart.
"""

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.adapters.outbox import Outbox
from edge.kiosk.desk import add_staff
from tests.fixtures.ports import free_port, wait_for_port
from tests.integration.test_kiosk_desk import call
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401

pytestmark = pytest.mark.integration

SERVE = """
import sys
from pathlib import Path
from edge import config
from edge.kiosk.app import KioskDisplay
from edge.bootstrap import open_desk
from edge.kiosk.runner import web_server
cfg = config.load(Path(sys.argv[1]))
web_server(cfg, KioskDisplay(), lambda language: None, open_desk(cfg)).run()
"""


@contextmanager
def kiosk(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", SERVE, str(config)], env=os.environ.copy())
    try:
        wait_for_port(port, timeout=30)
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(10)


def login(port: int, pin: str) -> int:
    return call(port, "POST", "/api/desk/login", {"staff_id": "li-wei", "pin": pin})[0]


def test_wrong_pins_and_the_lock_survive_kill_9(edge_bundle: Bundle) -> None:  # noqa: F811
    port = free_port()
    edge_bundle.write_config(
        kiosk={"staff_file": "staff", "port": port, "pin_max_failures": 5, "pin_lockout_s": 60}
    )
    add_staff(edge_bundle.dir / "staff", "li-wei", "4711")
    with kiosk(edge_bundle.config_path, port):
        assert [login(port, "0000") for _ in range(3)] == [403] * 3
    # killed with three wrong PINs counted
    with kiosk(edge_bundle.config_path, port):
        assert login(port, "1111") == 403
        status, headers, _ = call(
            port, "POST", "/api/desk/login", {"staff_id": "li-wei", "pin": "2222"}
        )
        assert status == 429 and 55 <= int(headers["retry-after"]) <= 60
    # killed while locked
    with kiosk(edge_bundle.config_path, port) as child:
        assert login(port, "4711") == 429  # the right PIN, still locked after the restart
        child.send_signal(signal.SIGTERM)
    db = edge_bundle.config().db_path
    events = [row[0] for row in sqlite3.connect(db).execute("SELECT event FROM audit ORDER BY id")]
    assert events == ["staff_login_failed"] * 5 + ["staff_locked", "staff_login_locked"]
    with Outbox(db, "term-0001") as outbox:  # the outbox shares the file undisturbed
        assert outbox.counts()["pending"] == 0
