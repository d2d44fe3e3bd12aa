"""The kiosk's desk endpoints over a real uvicorn server: login, cookie, commands queued."""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import uvicorn

from edge.kiosk.app import KioskDisplay, create_app
from edge.session.desk import Desk, StaffBook, hash_pin
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Desk]]:
    (tmp_path / "staff").write_text(f"li-wei:{hash_pin('4711')}\n")
    desk = Desk(StaffBook(tmp_path / "staff"))
    port = free_port()
    app = create_app(KioskDisplay(), lambda lang: None, desk)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", desk
    server.should_exit = True
    thread.join(10)


def post(opener: urllib.request.OpenerDirector, url: str, body: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_staff_log_in_with_a_pin_and_only_then_send_commands(served: tuple[str, Desk]) -> None:
    base, desk = served
    staff = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    stranger = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    assert post(stranger, f"{base}/api/desk/order", {"command": "assisted"}) == 403
    assert post(staff, f"{base}/api/desk/login", {"staff_id": "li-wei", "pin": "0000"}) == 403
    assert post(staff, f"{base}/api/desk/login", {"staff_id": "li-wei", "pin": "4711"}) == 200
    assert desk.staff == "li-wei"
    assert post(staff, f"{base}/api/desk/order", {"command": "format-disk"}) == 400
    assert post(staff, f"{base}/api/desk/order", {"command": "assisted", "note": "seen"}) == 200
    assert post(stranger, f"{base}/api/desk/order", {"command": "vein"}) == 403
    order = desk.next(1)
    assert order is not None and order.command == "assisted" and order.note == "seen"
    with staff.open(f"{base}/api/state?after=-1", timeout=15) as response:
        assert json.load(response)["desk"] == "li-wei"
    assert post(staff, f"{base}/api/desk/logout", {}) == 200
    assert desk.staff is None
