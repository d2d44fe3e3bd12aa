"""The kiosk's endpoints over a real uvicorn server and a real HTTP client (http.client).

Staff log in, get a cookie and queue commands; every state-changing endpoint refuses what a
foreign page or a DNS-rebound name could send (Host, Origin/Referer, Sec-Fetch-Site, content
type, size) before it has any effect; bad bodies are 400s, not tracebacks; wrong PINs lock
out over HTTP with ``429`` and ``Retry-After``; an unknown staff id takes as long as a wrong
PIN.
"""

import http.client
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from edge.kiosk.app import KioskDisplay, create_app
from edge.kiosk.desk import Desk, StaffBook, hash_pin
from edge.kiosk.guard import authorities
from edge.kiosk.lockout import PinLockout
from tests.fixtures.ports import free_port
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

POSTS = ("/api/language", "/api/desk/login", "/api/desk/order", "/api/desk/logout")


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str | None] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], dict[str, object]]:
    """One request as the kiosk page sends it, ``headers`` changed (``None``: left out)."""
    sent: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Origin": f"http://127.0.0.1:{port}",
        "Content-Type": "application/json",
    }
    sent.update(headers or {})
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            if value is not None:
                conn.putheader(name, value)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        response = conn.getresponse()
        content = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
        parsed = json.loads(content) if answer.get("content-type") == "application/json" else {}
        return response.status, answer, parsed
    finally:
        conn.close()


class CountingDisplay(KioskDisplay):
    """The real display that also counts the long-polls waiting in it for a new state."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self._count = threading.Lock()

    def wait(self, after: int, timeout: float) -> None:
        with self._count:
            self.waiting += 1
        try:
            super().wait(after, timeout)
        finally:
            with self._count:
                self.waiting -= 1


@dataclass
class Kiosk:
    port: int
    desk: Desk
    display: CountingDisplay
    languages: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str | None] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], dict[str, object]]:
        return call(self.port, method, path, body, headers, raw)

    def login(self, staff_id: str, pin: str) -> tuple[int, dict[str, str], dict[str, object]]:
        return self.call("POST", "/api/desk/login", {"staff_id": staff_id, "pin": pin})


def serve(tmp_path: Path, **limits: float) -> Iterator[Kiosk]:
    (tmp_path / "staff").write_text(f"li-wei:{hash_pin('4711')}\n")
    lockout = PinLockout(tmp_path / "edge.sqlite", **limits)  # type: ignore[arg-type]
    desk = Desk(StaffBook(tmp_path / "staff"), lockout)
    port = free_port()
    kiosk = Kiosk(port, desk, CountingDisplay())
    app = create_app(
        kiosk.display, kiosk.languages.append, desk, hosts=authorities("127.0.0.1", port)
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the kiosk server to start")
    yield kiosk
    server.should_exit = True
    thread.join(10)
    lockout.close()


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    yield from serve(tmp_path)


def cookie(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";")[0]


def test_staff_log_in_with_a_pin_and_only_then_send_commands(kiosk: Kiosk) -> None:
    desk = kiosk.desk
    assert kiosk.call("POST", "/api/desk/order", {"command": "assisted"})[0] == 403
    assert kiosk.login("li-wei", "0000")[0] == 403
    status, headers, body = kiosk.login("li-wei", "4711")
    assert status == 200 and body == {"staff_id": "li-wei"} and desk.staff == "li-wei"
    assert "httponly" in headers["set-cookie"].lower()
    assert "samesite=strict" in headers["set-cookie"].lower()
    staff = {"Cookie": cookie(headers)}
    bad = kiosk.call("POST", "/api/desk/order", {"command": "format-disk"}, staff)
    assert bad[0] == 400
    order = {"command": "assisted", "note": "seen", "document": "ss_card"}
    assert kiosk.call("POST", "/api/desk/order", order, staff)[0] == 200
    assert kiosk.call("POST", "/api/desk/order", {"command": "vein"})[0] == 403  # no cookie
    queued = desk.next(1)
    assert queued is not None and (queued.command, queued.note) == ("assisted", "seen")
    assert kiosk.call("GET", "/api/state?after=-1", headers=staff)[2]["desk"] == "li-wei"
    assert kiosk.call("POST", "/api/language", {"language": "en"})[0] == 200
    assert kiosk.languages == ["en"]
    assert kiosk.call("POST", "/api/desk/logout", {}, staff)[0] == 200
    assert desk.staff is None
    events = [(event, actor) for _, event, actor, _ in desk.lockout.events()]
    assert events == [
        ("staff_login_failed", "li-wei"),
        ("staff_login", "li-wei"),
        ("staff_logout", "li-wei"),
    ]


FOREIGN: dict[str, tuple[dict[str, str | None], int]] = {
    "DNS-rebound Host": ({"Host": "evil.example:{port}"}, 400),
    "Host on another port": ({"Host": "127.0.0.1:1"}, 400),
    "no Host": ({"Host": ""}, 400),
    "foreign Origin": ({"Origin": "http://evil.example"}, 403),
    "Origin on another port": ({"Origin": "http://127.0.0.1:1"}, 403),
    "Origin null": ({"Origin": "null"}, 403),
    "foreign Referer, no Origin": ({"Origin": None, "Referer": "http://evil.example/x"}, 403),
    "neither Origin nor Referer": ({"Origin": None}, 403),
    "cross-site fetch": ({"Sec-Fetch-Site": "cross-site"}, 403),
    "same-site fetch": ({"Sec-Fetch-Site": "same-site"}, 403),
    "text/plain body": ({"Content-Type": "text/plain"}, 415),
    "form body": ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    "multipart body": ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    "no content type": ({"Content-Type": None}, 415),
}


@pytest.mark.parametrize("case", FOREIGN, ids=list(FOREIGN))
def test_every_post_refuses_foreign_requests_before_any_effect(kiosk: Kiosk, case: str) -> None:
    change, expected = FOREIGN[case]
    headers = {k: None if v is None else v.format(port=kiosk.port) for k, v in change.items()}
    bodies = {
        "/api/language": {"language": "en"},
        "/api/desk/login": {"staff_id": "li-wei", "pin": "4711"},
        "/api/desk/order": {"command": "assisted"},
        "/api/desk/logout": {},
    }
    for path in POSTS:
        status, answer, body = kiosk.call("POST", path, bodies[path], headers)
        assert status == expected, (path, body)
        assert answer["x-frame-options"] == "DENY"
    assert kiosk.desk.staff is None and kiosk.languages == []
    assert kiosk.desk.lockout.events() == []  # refused before the PIN check: no lock-out either


def test_a_same_origin_referer_is_enough_without_origin(kiosk: Kiosk) -> None:
    headers = {"Origin": None, "Referer": kiosk.origin + "/"}
    body = {"staff_id": "li-wei", "pin": "4711"}
    assert kiosk.call("POST", "/api/desk/login", body, headers)[0] == 200


def test_reads_refuse_foreign_hosts_and_sites_and_carry_isolation_headers(kiosk: Kiosk) -> None:
    for path in ("/", "/api/state?after=-1", "/api/preview.jpg", "/static/kiosk.js"):
        assert kiosk.call("GET", path, headers={"Host": "evil.example"})[0] == 400
        assert kiosk.call("GET", path, headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    status, headers, _ = kiosk.call("GET", "/", headers={"Sec-Fetch-Site": "none"})
    assert status == 200
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "body: send a JSON object"),
        (b"[1, 2]", "body: send a JSON object"),
        (b'{"staff_id": 7, "pin": "4711"}', "staff_id: send a string of at most 64 characters"),
        (b'{"staff_id": "li-wei", "pin": ["4711"]}', "pin: send a string"),
        (json.dumps({"staff_id": "x" * 65, "pin": "1"}).encode(), "staff_id: send a string"),
    ],
)
def test_bad_login_bodies_are_400_and_count_nothing(kiosk: Kiosk, raw: bytes, error: str) -> None:
    status, _, body = kiosk.call("POST", "/api/desk/login", raw=raw)
    assert status == 400 and str(body["error"]).startswith(error)
    assert kiosk.desk.lockout.events() == []


def test_bodies_over_4_kib_and_bad_queries_are_refused(kiosk: Kiosk) -> None:
    big = json.dumps({"staff_id": "li-wei", "pin": "4711", "pad": "x" * 5000}).encode()
    assert kiosk.call("POST", "/api/desk/login", raw=big)[0] == 413
    assert kiosk.call("GET", "/api/state?after=soon")[0] == 400
    assert kiosk.call("GET", "/api/state?after=" + "9" * 5000)[0] == 400
    assert kiosk.call("POST", "/api/language", {"language": {"$gt": ""}})[0] == 400
    assert kiosk.desk.staff is None and kiosk.languages == []


def test_wrong_pins_lock_out_over_http_for_known_and_unknown_ids(kiosk: Kiosk) -> None:
    for _ in range(4):
        assert kiosk.login("li-wei", "0000")[0] == 403
    status, headers, body = kiosk.login("li-wei", "1111")
    assert status == 429 and body["retry_after"] == 300 and headers["retry-after"] == "300"
    assert kiosk.login("li-wei", "4711")[0] == 429  # the right PIN, too late
    unknown = [kiosk.login("zhang-san", "0000")[0] for _ in range(6)]
    assert unknown == [403] * 4 + [429] * 2  # same answers: ids cannot be told apart
    # what the audit says, its times left out (a timestamp may hold any four digits)
    text = json.dumps([row[1:] for row in kiosk.desk.lockout.events()])
    assert "0000" not in text and "4711" not in text and "zhang-san" not in text


@pytest.fixture
def patient_kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    yield from serve(tmp_path, max_failures=100, max_failures_all=1000)


def test_an_unknown_id_takes_as_long_as_a_wrong_pin(patient_kiosk: Kiosk) -> None:
    def timed(staff_id: str) -> float:
        start = time.perf_counter()
        assert patient_kiosk.login(staff_id, "0000")[0] == 403
        return time.perf_counter() - start

    known, unknown = [], []
    for _ in range(12):
        known.append(timed("li-wei"))
        unknown.append(timed("zhang-san"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 < ratio < 1.6, (statistics.median(known), statistics.median(unknown))


def test_a_body_sent_slowly_is_refused_after_5_s(kiosk: Kiosk) -> None:
    head = (
        f"POST /api/language HTTP/1.1\r\nHost: 127.0.0.1:{kiosk.port}\r\n"
        f"Origin: {kiosk.origin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
    with socket.create_connection(("127.0.0.1", kiosk.port), timeout=15) as slow:
        start = time.monotonic()
        slow.sendall(head.encode())
        answer = slow.recv(200)
    assert answer.startswith(b"HTTP/1.1 408") and 4.5 < time.monotonic() - start < 8
    assert kiosk.languages == []


def test_many_long_polls_do_not_hold_up_a_log_in(kiosk: Kiosk) -> None:
    version = kiosk.call("GET", "/api/state?after=-1")[2]["version"]
    with ThreadPoolExecutor(24) as pool:
        polls = [pool.submit(kiosk.call, "GET", f"/api/state?after={version}") for _ in range(20)]
        # every long-poll thread of the app (8, edge.kiosk.app._POLLS) waits for a new state
        # (10 s); the 12 other polls wait for one of them
        wait_until(lambda: kiosk.display.waiting == 8, 10, "the long-polls to wait")
        start = time.monotonic()
        assert kiosk.login("li-wei", "4711")[0] == 200
        assert time.monotonic() - start < 3
        assert all(poll.result(timeout=15)[0] == 200 for poll in polls)
