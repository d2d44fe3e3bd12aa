"""The phone channel end to end: Chromium's fake camera, the remote terminal, central.

A real stack (Mosquitto with mutual TLS, ``lifecert-central run``, two terminals as
processes): a desk terminal delivers each retiree's first, in-person certification (a
face template, recorded through the edge's own Recorder from a real LFW photo), then the
remote terminal (``lifecert-edge run`` with ``[remote] enabled``) serves the phone page.
Central texts the one-time codes through reach's HTTP SMS adapter to a local gateway
(this test's HTTP server), where the test reads them like a retiree reads their phone.

Headless Chromium (Playwright) plays a Y4M video built at test time from real LFW
photos as its camera (``--use-file-for-fake-video-capture``): Tony Blair doing the
actions certifies; a still photo of him, and a recording of Colin Powell doing every
action, against Tony's template, do not (both run at once on the one remote terminal).
Refusals go through the page's own API: unknown ID numbers, wrong codes, too many tries,
no template yet, huge uploads: a clear message each, and nothing changed.
"""

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from central.people import roster
from common import idnumber
from edge.adapters.devices import PipelineFaces
from edge.adapters.keys import load as load_keys
from edge.adapters.recorder import Recorder
from edge.bootstrap import open_outbox
from edge.config import load as load_config
from edge.session.core import sealed_form
from edge.session.model import Draft
from hal.camera import Frame
from models.pipeline import FacePipeline
from protocol import receipts
from protocol.messages import Channel, Decision, LivenessEvidence, MatchEvidence, Method
from provisioning.stack import Stack
from tests.fixtures.ports import free_port
from tests.fixtures.stack import central_url, count, make_stack
from tests.fixtures.waiting import wait_until
from tests.integration.test_kiosk_browser import CHROMIUM, FLAGS, MEASURE, contrast
from tests.integration.test_session_e2e import (
    CHALLENGES,
    COLIN,
    TONY,
    configure,
    fleet_bundle,
    lfw,
    performance,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DESK, REMOTE = "term-d01", "remote-p01"
W, H = 640, 480


class Gateway:
    """A local HTTP SMS gateway: keeps what it is sent, by phone number."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def code(self, phone: str, n: int = 1) -> str:
        """The ``n``-th code texted to ``phone`` (waits for it)."""
        sent = wait_until(
            lambda: len(got := [m for m in self.messages if m["to"] == phone]) >= n and got,
            15,
            f"a code for {phone}",
        )
        return str(sent[n - 1]["text"]).split("code is ")[1][:6]

    def close(self) -> None:
        self.server.shutdown()


def phone(i: int) -> str:
    return f"+861380013{i:04d}"


def y4m(data: Path, names: list[str], path: Path, fps: int = 4) -> Path:
    """A Y4M video (4:2:0) of LFW photos, each centred on grey for one frame at ``fps``."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{W} H{H} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for name in names:
            photo = Image.open(lfw(data, name)).convert("RGB")
            photo = photo.resize((H, H))  # 250x250 -> 480x480: a face about 190 px wide
            canvas = Image.new("RGB", (W, H), (128, 128, 128))
            canvas.paste(photo, ((W - H) // 2, 0))
            y, u, v = canvas.convert("YCbCr").split()
            out.write(b"FRAME\n" + y.tobytes())
            out.write(u.resize((W // 2, H // 2)).tobytes() + v.resize((W // 2, H // 2)).tobytes())
    return path


def first_certification(stack: Stack, bundle: Path, data: Path, retirees: list[str]) -> None:
    """Each retiree's in-person certification at the desk, with a template from a real
    photo, durable in the desk terminal's outbox."""
    cfg = load_config(stack.edge_config(DESK))
    assert cfg.central.model_sign_pub is not None
    with FacePipeline.open(bundle, cfg.central.model_sign_pub) as pipeline:
        faces = PipelineFaces(pipeline)
        rgb = np.asarray(Image.open(lfw(data, TONY["card"])).convert("RGB"))  # type: ignore[arg-type]
        frame = Frame(rgb, 1.0)
        probe = faces.probe(frame)
        assert probe is not None
        template = sealed_form(faces.keep(probe), faces.template_model)
        drafts = [
            Draft(
                retiree_id=r,
                method=Method.FACE,
                decision=Decision.PASS,
                channel=Channel.DESK,
                match=MatchEvidence(
                    modality="face",
                    reference="card_photo",
                    score=0.9,
                    threshold=1.13,
                    model=faces.model[:128],
                    attempts=1,
                ),
                liveness=LivenessEvidence(passed=True, challenges=("nod",)),
                template=template,
            )
            for r in retirees
        ]
    with open_outbox(cfg) as outbox:
        Recorder(outbox, load_keys(cfg)).record_many(drafts)


class Phone:
    """What the tests need of the running installation."""

    def __init__(self, stack: Stack, ids: list[str], port: int, gateway: Gateway) -> None:
        self.stack, self.ids, self.gateway = stack, ids, gateway
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, headers={"Origin": self.url}, timeout=20)

    def evidence(self, retiree: str) -> dict[str, Any]:
        """The evidence of the remote terminal's result for ``retiree``."""
        engine = sa.create_engine(central_url(self.stack))
        with engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT evidence FROM results WHERE device_id = :d AND retiree_id = :r"),
                {"d": REMOTE, "r": retiree},
            ).scalar_one()
        engine.dispose()
        return value if isinstance(value, dict) else json.loads(value)

    def results(self, where: str = "") -> int:
        return count(central_url(self.stack), "results", f"WHERE device_id = '{REMOTE}' {where}")


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[Phone]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    root = tmp_path_factory.mktemp("phone")
    stack, ids = make_stack(root / "stack", [DESK, REMOTE], retirees=6)
    engine = sa.create_engine(central_url(stack))
    contacts = root / "contacts.csv"
    contacts.write_text(
        "id_number,name,sex,birth_date,community,phone,language\n"
        + "".join(
            f"{n},Retiree {i},{(n[16] in '13579' and 'M') or 'F'},"
            f"{n[6:10]}-{n[10:12]}-{n[12:14]},Community {i % 3},{phone(i)},en\n"
            for i, n in enumerate(ids[:5])
        )
    )
    roster.import_csv(engine, contacts, actor="test")
    engine.dispose()
    gateway = Gateway()
    bundle = fleet_bundle(stack, root / "models")
    port = free_port()
    central = stack.central_config
    central.write_text(
        central.read_text()
        + f'\n[phone]\nremote_devices = ["{REMOTE}"]\n'
        + '[notify]\nchannels = {sms = "sms_http", email = "log"}\n'
        + f'[notify.sms]\nurl = "{gateway.url}"\n'
    )
    configure(stack, DESK, f'[models]\nbundle = "{bundle}"\n')
    configure(
        stack,
        REMOTE,
        f'[models]\nbundle = "{bundle}"\n'
        f"[session]\nchallenges = {CHALLENGES}\nchallenge_s = 4\ncapture_s = 8\n"
        f"[remote]\nenabled = true\nport = {port}\nmax_sessions = 3\nidle_s = 5\n"
        "frame_max_bytes = 200000\ncodes_per_address = 40\n",
    )
    first_certification(stack, bundle, shared_data, ids[:3])  # ids[3]: never certified
    try:
        with stack:
            stack.broker.start()
            stack.start_central()
            stack.start_edges([DESK, REMOTE])
            stack.wait_delivered([DESK], timeout=60)
            wait_until(lambda: _up(f"http://127.0.0.1:{port}/"), 60, "the phone page")
            yield Phone(stack, ids, port, gateway)
    finally:
        gateway.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


SPY = """window.__spoken = [];
if ('speechSynthesis' in window) {
  speechSynthesis.speak = (u) => window.__spoken.push([u.lang, u.text]);
}"""
"""Records what the page would say (headless Chromium has no voices to hear)."""


def check_readable(page: Any, smallest: float = 20) -> None:
    """Every visible text at least ``smallest`` px with contrast >= 4.5:1; targets >= 48 px."""
    found = page.evaluate(MEASURE)
    assert found["texts"], "no visible text"
    for t in found["texts"]:
        assert t["size"] >= smallest, t
        assert contrast(t["fg"], t["bg"]) >= 4.5, t
    for box in found["targets"]:
        assert box["w"] >= 48 and box["h"] >= 48, box


def browser_args(video: Path) -> list[str]:
    return [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


def start_on_phone(pw: Any, video: Path, app: Phone, who: int) -> tuple[Any, Any]:
    """A phone browser with ``video`` as its camera, through the code to the first prompt."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=browser_args(video))
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.add_init_script(SPY)
    page.goto(app.url + "/")
    assert "身份证号码" in page.inner_text("#identify")  # Mandarin first
    check_readable(page)
    page.click("#bigger")
    check_readable(page, 28)
    page.click("#lang")  # English
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    page.click("#voice")
    page.fill("#id-number", app.ids[who])
    page.click("#send")
    page.wait_for_function("() => document.getElementById('sent').textContent.length > 0")
    page.fill("#code", app.gateway.code(phone(who)))
    page.click("#start")
    page.wait_for_selector("#certify:not([hidden])", timeout=20_000)
    return browser, page


def test_a_retiree_certifies_from_their_phone_and_central_applies_it(
    installation: Phone, shared_data: Path, tmp_path: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    app = installation
    video = y4m(shared_data, performance(TONY), tmp_path / "tony.y4m")
    with playwright.sync_playwright() as pw:
        browser, page = start_on_phone(pw, video, app, 0)
        page.wait_for_selector("#result:not([hidden])", timeout=40_000)
        assert page.inner_text("#mark") == "✓", page.inner_text("#prompt")
        receipt = page.inner_text("#receipt")
        assert receipt.startswith(REMOTE.upper())
        assert "Certified" in page.inner_text("#prompt")
        page.wait_for_selector("#qr-box:not([hidden])", timeout=40_000)
        page.wait_for_function("() => document.getElementById('qr').naturalWidth > 0")
        token = page.evaluate(
            "fetch('/api/receipt', {credentials: 'same-origin'}).then((r) => r.json())"
        )["receipt"]
        keys = load_keys(load_config(app.stack.edge_config(REMOTE)))
        said = receipts.verify(token, {keys.central_sign_kid: keys.central_verifier})
        assert said.result_id is not None  # signed by central, for this pass
        spoken = page.evaluate("window.__spoken")
        assert ["en-GB", "Please look at the camera"] in spoken, spoken  # voice on
        assert any(text.startswith("Certified") for _, text in spoken), spoken
        # then, without certifying, the retiree looks up where they stand
        wait_until(lambda: app.results(f"AND retiree_id = '{app.ids[0]}'"), 30, "central")
        page.goto(app.url + "/")
        page.click("#lang")
        page.fill("#id-number", app.ids[0])
        page.click("#send")
        page.wait_for_function("() => document.getElementById('sent').textContent.length > 0")
        page.fill("#code", app.gateway.code(phone(0), 2))
        page.click("#lookup")
        page.wait_for_selector("#status:not([hidden])", timeout=20_000)
        assert "phone" in page.inner_text("#st-last")  # today's certification, channel mobile
        assert page.inner_text("#st-until")[:2] == "20"  # a date
        assert app.ids[0] not in page.inner_text("#status")  # masked
        check_readable(page)
        browser.close()
    wait_until(lambda: app.results(f"AND retiree_id = '{app.ids[0]}'"), 30, "central")
    engine = sa.create_engine(central_url(app.stack))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT decision, method, channel, applied, template_sealed FROM results "
                "WHERE device_id = :d AND retiree_id = :r"
            ),
            {"d": REMOTE, "r": app.ids[0]},
        ).one()
    engine.dispose()
    assert (row.decision, row.method, row.channel, bool(row.applied)) == (
        "pass",
        "face",
        "mobile",
        True,
    )
    assert str(row.template_sealed).count(".") == 4  # the new template, sealed to central


def test_a_still_photo_and_another_persons_recording_are_not_certified(
    installation: Phone, shared_data: Path, tmp_path: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    app = installation
    still = y4m(shared_data, [TONY["front"][0]] * 4, tmp_path / "still.y4m")  # type: ignore[index]
    colin = y4m(shared_data, performance(COLIN), tmp_path / "colin.y4m")
    with playwright.sync_playwright() as pw:
        sessions = [start_on_phone(pw, still, app, 2), start_on_phone(pw, colin, app, 1)]
        for browser, page in sessions:  # both at once on the one remote terminal
            page.wait_for_selector("#result:not([hidden])", timeout=50_000)
            assert page.inner_text("#mark") == "!"
            assert "community desk" in page.inner_text("#prompt")
            browser.close()
    for who in (1, 2):
        mine = f"AND retiree_id = '{app.ids[who]}'"
        wait_until(lambda mine=mine: app.results(mine), 30, "central")  # type: ignore[misc]
        assert app.results(f"{mine} AND decision = 'pass'") == 0
        assert app.results(f"{mine} AND decision = 'refer'") == 1
    still_said, colin_said = app.evidence(app.ids[2]), app.evidence(app.ids[1])
    assert not still_said["liveness"]["passed"]  # a photo does not turn its head
    assert still_said["match"]["attempts"] == colin_said["match"]["attempts"] == 3
    assert colin_said["match"]["score"] > colin_said["match"]["threshold"]  # not Tony


def answer(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers but ``date``, and body: what must not tell ID numbers apart."""
    return r.status_code, [(k, v) for k, v in r.headers.items() if k != "date"], r.content


def test_refusals_are_clear_and_change_nothing(installation: Phone) -> None:
    app, http = installation, installation.http
    before = app.results()
    texts = len(app.gateway.messages)
    unknown = "11010519491231002X" if "11010519491231002X" not in app.ids else app.ids[5]
    # an unknown ID number gets the same answer as a known one, and no text goes out
    known = http.post("/api/code", json={"id_number": app.ids[4]})
    nobody = http.post("/api/code", json={"id_number": unknown})
    assert known.status_code == nobody.status_code == 200
    assert known.json() == nobody.json()
    # ... no sooner than [remote] code_answer_ms (250) after it arrived, whatever central did
    assert min(known.elapsed, nobody.elapsed) >= dt.timedelta(milliseconds=250)
    app.gateway.code(phone(4))
    assert len(app.gateway.messages) == texts + 1
    wrong = http.post("/api/verify", json={"id_number": unknown, "code": "123456"})
    assert wrong.status_code == 403 and "wrong or has expired" in wrong.json()["message"]["en"]
    # ... the very answer of an ID number nobody asked a code for (and of a wrong code for a
    # known one, below), each no sooner than code_answer_ms either
    never = idnumber.make("510107", dt.date(1944, 8, 8), 5)
    assert never not in app.ids
    nocode = http.post("/api/verify", json={"id_number": never, "code": "123456"})
    assert answer(nocode) == answer(wrong)
    assert min(wrong.elapsed, nocode.elapsed) >= dt.timedelta(milliseconds=250)
    # a bad ID number or code names the field
    bad = http.post("/api/code", json={"id_number": "12345"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("id_number:")
    bad = http.post("/api/verify", json={"id_number": app.ids[4], "code": "12ab"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("code:")
    # wrong codes, then too many tries: even the right code is refused
    code = app.gateway.code(phone(4))
    other = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        r = http.post("/api/verify", json={"id_number": app.ids[4], "code": other})
        assert answer(r) == answer(wrong), r.text
        assert r.elapsed >= dt.timedelta(milliseconds=250)
    locked = http.post("/api/verify", json={"id_number": app.ids[4], "code": code})
    assert locked.status_code == 429 and "Too many tries" in locked.json()["message"]["en"]
    # the right code, but no certified template yet: the first one is in person
    http.post("/api/code", json={"id_number": app.ids[3]})
    first = http.post(
        "/api/verify", json={"id_number": app.ids[3], "code": app.gateway.code(phone(3))}
    )
    assert first.status_code == 409 and "in person" in first.json()["message"]["en"]
    # huge uploads: refused before they are read; no session, no frame
    huge = http.post(
        "/api/frame", content=b"\xff" * 300_000, headers={"Content-Type": "image/jpeg"}
    )
    assert huge.status_code == 413 and "200000 bytes" in huge.json()["error"]
    small = http.post("/api/frame", content=b"\xff\xd8", headers={"Content-Type": "image/jpeg"})
    assert small.status_code == 401 and "session" in small.json()["error"]
    big_json = http.post(
        "/api/code",
        content=b'{"id_number": "' + b"1" * 10_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert big_json.status_code == 413
    foreign = httpx.post(
        app.url + "/api/code",
        json={"id_number": app.ids[4]},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert app.results() == before  # nothing recorded


def test_only_remote_terminals_may_certify_by_phone_and_only_after_a_code(
    installation: Phone,
) -> None:
    """A desk terminal's key cannot pass a result off as a phone certification, and the
    remote terminal's own key certifies nobody whose code it did not check."""
    app = installation
    url = central_url(app.stack)
    forged = replace(
        first_certification_draft(app, app.ids[5]), channel=Channel.MOBILE, template=None
    )
    for device, reason in ((DESK, "wrong_channel"), (REMOTE, "no_phone_code")):
        cfg = load_config(app.stack.edge_config(device))
        with open_outbox(cfg) as outbox:
            Recorder(outbox, load_keys(cfg)).record(forged)
        where = f"WHERE reason = '{reason}' AND device_id = '{device}'"
        wait_until(lambda where=where: count(url, "quarantine", where), 30, reason)  # type: ignore[misc]
    assert count(url, "results", f"WHERE retiree_id = '{app.ids[5]}'") == 0


def first_certification_draft(app: Phone, retiree: str) -> Draft:
    """A face pass as a remote terminal would sign it (scores made up: no session ran)."""
    return Draft(
        retiree_id=retiree,
        method=Method.FACE,
        decision=Decision.PASS,
        match=MatchEvidence(
            modality="face",
            reference="template",
            score=0.5,
            threshold=1.08,
            model="forged",
            attempts=1,
        ),
        liveness=LivenessEvidence(passed=True, challenges=("nod", "turn_left")),
    )
