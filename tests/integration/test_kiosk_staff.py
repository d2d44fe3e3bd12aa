"""The desk staff screen in headless Chromium (Debian's, via Playwright) over a real uvicorn.

A staff member opens the log-in from the header, is refused a wrong PIN, logs
in, sends each command with big buttons (they reach the session's queue as
``Order``s), sees the session's desk screen, and leaves staff mode. Contrast,
text and target sizes are measured on every state. The session thread's
handling of the orders is tested in tests/unit/test_session_desk.py.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from edge.kiosk.app import KioskDisplay, create_app
from edge.session.desk import Desk, StaffBook, hash_pin
from edge.session.model import Screen
from tests.fixtures.ports import free_port
from tests.integration.test_kiosk_browser import CHROMIUM, FLAGS, check_accessible, shot

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Desk, KioskDisplay]]:
    (tmp_path / "staff").write_text(f"li-wei:{hash_pin('4711')}\n")
    desk, display = Desk(StaffBook(tmp_path / "staff")), KioskDisplay()
    port = free_port()
    app = create_app(display, lambda lang: None, desk)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", desk, display
    server.should_exit = True
    thread.join(10)


def test_staff_log_in_and_drive_the_session_from_the_page(
    served: tuple[str, Desk, KioskDisplay],
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    base, desk, display = served
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base + "/")
        page.wait_for_selector("#staff:not([hidden])")
        assert page.is_hidden("#desk")
        page.click("#staff")
        page.fill("#staff-id", "li-wei")
        page.fill("#pin", "0000")
        page.click("#desk-login button[type=submit]")
        page.wait_for_function("document.getElementById('login-error').textContent !== ''")
        assert "密码错误" in page.inner_text("#login-error") and desk.staff is None
        check_accessible(page)
        shot(page, "5-staff-login")
        page.fill("#pin", "4711")
        page.click("#desk-login button[type=submit]")
        page.wait_for_selector("#desk:not([hidden])")
        assert desk.staff == "li-wei" and page.inner_text("#desk-who") == "li-wei"
        assert page.is_hidden("#desk-login") and page.is_hidden("#staff")

        display.show(Screen(step="desk", prompt="desk_ready", retiree="1101**********002X"))
        page.wait_for_selector("body[data-step=desk]")
        assert "工作人员模式" in page.inner_text("#prompt")
        page.select_option("#document", "ss_card")
        page.fill("#note", "seen in person")
        for command in ("face", "assisted", "vein"):
            page.click(f"[data-command={command}]")
            order = desk.next(5)
            assert order is not None and order.command == command
            assert order.document == "ss_card" and order.note == "seen in person"
        # The page updates its "sent" line after the server has queued the order: wait for it.
        page.wait_for_function(
            "document.getElementById('desk-sent').textContent.includes('指静脉')"
        )
        assert "录入指静脉" in page.inner_text("#desk-sent")
        check_accessible(page)
        shot(page, "6-staff")
        page.click("#lang")
        display.show(Screen(step="desk", prompt="desk_ready", language="en"))
        page.wait_for_function("document.getElementById('prompt').textContent.includes('Staff')")
        assert page.inner_text("[data-command=assisted]").strip().endswith("Assisted certification")
        check_accessible(page)

        page.click("#desk-logout")
        page.wait_for_selector("#desk", state="hidden")
        assert desk.staff is None and page.is_visible("#staff")
        assert desk.next(1) is not None  # the "end" order that returns the kiosk to retirees
        browser.close()
