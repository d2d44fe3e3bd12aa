"""The desk staff screen in headless Chromium (Debian's, via Playwright) over a real uvicorn.

A staff member opens the log-in from the header, is refused a wrong PIN, logs
in, sends each command with big buttons (they reach the session's queue as
``Order``s), sees the session's desk screen, and leaves staff mode. Contrast,
text and target sizes are measured on every state. Too many wrong PINs show the
lock-out. Pages on other origins (another port of the same address, a DNS-rebound
name) post to the kiosk and change nothing. The session thread's handling of the
orders is tested in tests/unit/test_session_desk.py.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edge.kiosk.app import KioskDisplay, create_app
from edge.kiosk.desk import Desk, StaffBook, hash_pin
from edge.kiosk.guard import authorities
from edge.kiosk.lockout import PinLockout
from edge.session.model import Screen
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_until
from tests.integration.test_kiosk_browser import CHROMIUM, FLAGS, check_accessible, shot

pytestmark = pytest.mark.integration
playwright = pytest.importorskip("playwright.sync_api")
sync_playwright = playwright.sync_playwright
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (apt install chromium)", allow_module_level=True)


@dataclass
class Served:
    base: str
    port: int
    desk: Desk
    display: KioskDisplay
    languages: list[str] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)
    """Paths of the POSTs that reached the kiosk's server (refused or not)."""


def start(app: Any, port: int) -> Iterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the kiosk server to start")
    yield
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "staff").write_text(f"li-wei:{hash_pin('4711')}\n")
    port = free_port()
    with PinLockout(tmp_path / "edge.sqlite", max_failures=3) as lockout:
        desk = Desk(StaffBook(tmp_path / "staff"), lockout)
        served = Served(f"http://127.0.0.1:{port}", port, desk, KioskDisplay())
        app = create_app(
            served.display, served.languages.append, desk, hosts=authorities("127.0.0.1", port)
        )

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                served.posts.append(scope["path"])
            await app(scope, receive, send)

        for _ in start(counted, port):
            yield served
            served.display.touch()  # a long-poll the closed page left returns now, not in 10 s


def test_staff_log_in_and_drive_the_session_from_the_page(served: Served) -> None:
    base, desk, display = served.base, served.desk, served.display
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(base + "/")
        page.wait_for_selector("#staff:not([hidden])")
        assert page.is_hidden("#desk")
        page.click("#staff")
        page.fill("#staff-id", "li-wei")
        page.fill("#pin", "0000")
        page.click("#desk-login button[type=submit]")
        page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
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
            "() => document.getElementById('desk-sent').textContent.includes('指静脉')"
        )
        assert "录入指静脉" in page.inner_text("#desk-sent")
        check_accessible(page)
        shot(page, "6-staff")
        page.click("#lang")
        display.show(Screen(step="desk", prompt="desk_ready", language="en"))
        page.wait_for_function(
            "() => document.getElementById('prompt').textContent.includes('Staff')"
        )
        assert page.inner_text("[data-command=assisted]").strip().endswith("Assisted certification")
        check_accessible(page)

        page.click("#desk-logout")
        page.wait_for_selector("#desk", state="hidden")
        assert desk.staff is None and page.is_visible("#staff")
        assert desk.next(1) is not None  # the "end" order that returns the kiosk to retirees
        browser.close()


def test_too_many_wrong_pins_show_the_lock_out(served: Served) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(served.base + "/")
        page.wait_for_selector("#staff:not([hidden])")
        page.click("#staff")
        for n, pin in enumerate(("0000", "1111", "2222", "4711")):
            page.fill("#staff-id", "li-wei")
            page.fill("#pin", pin)
            with page.expect_response("**/api/desk/login") as response:
                page.click("#desk-login button[type=submit]")
            assert response.value.status == (403 if n < 2 else 429)
        assert page.inner_text("#login-error") == "错误次数过多，请 5 分钟后再试"
        assert served.desk.staff is None
        check_accessible(page)
        browser.close()


EVIL = """<!doctype html><title>win a prize</title>
<iframe name="sink"></iframe>
<form id="form" method="post" action="{kiosk}/api/desk/login" enctype="text/plain" target="sink">
<input name='{{"staff_id":"li-wei","pin":"0000","x":"' value='"}}'></form>
<script>
(async () => {{
  const post = (path, type, body, mode) => fetch("{kiosk}" + path,
    {{method: "POST", mode, headers: {{"Content-Type": type}}, body}}).catch(() => null);
  await post("/api/language", "text/plain", '{{"language":"en"}}', "no-cors");
  await post("/api/desk/login", "text/plain", '{{"staff_id":"li-wei","pin":"0000"}}', "no-cors");
  await post("/api/language", "application/json", '{{"language":"en"}}', "cors");
  const sent = new Promise((ok) => document.querySelector("iframe").onload = ok);
  document.getElementById("form").submit();
  await sent;
  document.title = "done";
}})();
</script>"""


def test_pages_on_other_origins_post_to_the_kiosk_in_vain(served: Served) -> None:
    evil_port = free_port()
    evil = Starlette(
        routes=[Route("/", lambda request: HTMLResponse(EVIL.format(kiosk=served.base)))]
    )
    rebound = [*FLAGS, "--host-resolver-rules=MAP rebound.test 127.0.0.1"]
    with sync_playwright() as pw:
        for _ in start(evil, evil_port):
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=rebound)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{evil_port}/")  # same address, another port
            page.wait_for_function("() => document.title === 'done'", timeout=15_000)
            # DNS rebinding: a name the attacker controls now resolves to the kiosk.
            response = page.goto(f"http://rebound.test:{served.port}/")
            assert response is not None and response.status == 400
            status = page.evaluate(
                "fetch('/api/language', {method: 'POST', headers: "
                "{'Content-Type': 'application/json'}, body: '{\"language\": \"en\"}'})"
                ".then((r) => r.status)"
            )
            assert status == 400
            browser.close()
    assert served.posts.count("/api/desk/login") == 2  # the fetch and the form both arrived
    assert served.posts.count("/api/language") == 2  # the no-cors one and the rebound one
    assert served.languages == [] and served.desk.staff is None
    assert served.desk.lockout.events() == []  # not even a failed attempt: nobody locked out
