"""The kiosk's "check my status" choice and receipt QR endpoints over a real uvicorn server
and a real HTTP client: bad bodies and foreign pages refused with nothing changed, the choice
only on the idle screen, the QR code only while a receipt is on screen."""

import threading
from collections.abc import Iterator

import pytest
import uvicorn

from edge.kiosk.app import KioskDisplay, create_app
from edge.kiosk.guard import authorities
from edge.kiosk.menu import Menu
from edge.session.model import Screen
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_until
from tests.integration.test_kiosk_desk import call

pytestmark = pytest.mark.integration


@pytest.fixture
def kiosk() -> Iterator[tuple[int, KioskDisplay, Menu]]:
    port, display = free_port(), KioskDisplay()
    menu = Menu(display.touch)
    app = create_app(display, lambda _: None, hosts=authorities("127.0.0.1", port), menu=menu)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the kiosk server to start")
    yield port, display, menu
    server.should_exit = True
    thread.join(10)


def test_the_choice_is_set_cancelled_and_refused_clearly(
    kiosk: tuple[int, KioskDisplay, Menu],
) -> None:
    port, display, menu = kiosk
    for body, error in [
        ({"choice": "certify"}, "choice must be one of ('status',) or null"),
        ({"choice": ["status"]}, "choice must be one of"),
        ([1], "body: send a JSON object"),
    ]:
        status, _, answer = call(port, "POST", "/api/choice", body)
        assert status == 400 and str(answer["error"]).startswith(error), answer
    foreign = {"Origin": "http://evil.example"}
    assert call(port, "POST", "/api/choice", {"choice": "status"}, foreign)[0] == 403
    assert menu.pending() is None  # nothing changed
    assert call(port, "POST", "/api/choice", {"choice": "status"})[0] == 200
    state = call(port, "GET", "/api/state")[2]
    assert state["choice"] == "status"
    assert state["choice_text"] == {
        "zh": "请插入或放上您的卡片，查询认证状态",
        "en": "Please insert or place your card to check your status",
    }
    assert call(port, "POST", "/api/choice", {"choice": None})[0] == 200
    assert menu.pending() is None
    display.show(Screen(step="challenge", prompt="look"))  # someone is certifying
    status, _, answer = call(port, "POST", "/api/choice", {"choice": "status"})
    assert status == 409 and "only before a card" in str(answer["error"])
    assert menu.pending() is None


def test_the_receipt_qr_is_served_only_while_one_is_on_screen(
    kiosk: tuple[int, KioskDisplay, Menu],
) -> None:
    port, display, _ = kiosk
    assert call(port, "GET", "/api/receipt.svg")[0] == 404
    display.show(Screen(step="done", prompt="done_pass", decision="pass", token_state="waiting"))
    state = call(port, "GET", "/api/state")[2]
    assert state["qr"] is None and "QR" in state["receipt_text"]["en"]  # type: ignore[index]
    display.show(Screen(step="done", prompt="done_pass", token="tok.en.x", token_state="ready"))
    state = call(port, "GET", "/api/state")[2]
    assert str(state["qr"]).startswith("/api/receipt.svg?r=")
    status, headers, _ = call(port, "GET", str(state["qr"]))
    assert status == 200 and headers["content-type"].startswith("image/svg+xml")
    assert headers["cache-control"] == "no-store"
    display.show(Screen(step="idle", prompt="idle"))
    assert call(port, "GET", "/api/receipt.svg")[0] == 404
