"""Receipts: issued by central from a pass, verified offline by ``lifecert verify-receipt``
(text, stdin, PNG and JPEG of the QR code) and by the public page over real HTTP; forged,
altered and other-key tokens refused clearly; the parser fuzzed."""

import base64
import datetime as dt
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
import uvicorn
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from central.certification import receipts as central_receipts
from central.certification.settings import Policy
from central.people import roster
from central.store import schema
from common import idnumber
from protocol import messages, receipts, signing
from provisioning import pki
from provisioning.cli import main as lifecert
from tests.fixtures.ports import free_port
from tests.integration.test_kiosk_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.integration

BORN = dt.date(1950, 3, 7)
ID = idnumber.make("110105", BORN, 124)
NOW = dt.datetime(2026, 12, 20, 2, tzinfo=dt.UTC)
RID = uuid.UUID("5f0c1d2e-0000-4000-8000-000000000001")


def _signer() -> tuple[signing.Signer, Any]:
    key = pki.new_key()
    return signing.Signer(key, signing.key_fingerprint(key.public_key())), key.public_key()


SIGNER, PUBLIC = _signer()
OTHER, OTHER_PUBLIC = _signer()
KEYS = receipts.published_keys([PUBLIC])


def _token(signer: signing.Signer = SIGNER) -> str:
    return receipts.issue(signer, RID, ID, dt.date(2026, 12, 20), dt.date(2027, 12, 20), NOW)


def _tamper(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["until"] = "2099-12-31"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{sig}"


def test_issue_and_verify_and_refusals() -> None:
    token = _token()
    assert len(token) < 450  # a QR code of version 12 or so
    found = receipts.verify(token + "\n", KEYS)
    assert (found.result_id, found.masked_id) == (RID, "110***********1249")
    assert found.certified_until == dt.date(2027, 12, 20) and found.kid == SIGNER.kid
    with pytest.raises(receipts.ReceiptError, match="altered or forged"):
        receipts.verify(_tamper(token), KEYS)
    with pytest.raises(receipts.ReceiptError, match="another key"):
        receipts.verify(_token(OTHER), KEYS)
    reply = SIGNER.sign(messages.encode(messages.Reply(status="ok", data={})))
    with pytest.raises(receipts.ReceiptError, match="not a receipt"):
        receipts.verify(reply, KEYS)
    for junk in ("", "hello", "a.b", "x" * 5000, "é.é.é"):
        with pytest.raises(receipts.ReceiptError):
            receipts.verify(junk, KEYS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=1200),
        st.tuples(st.integers(0, 400), st.characters()).map(
            lambda t: (tok := _token())[: t[0]] + t[1] + tok[t[0] + 1 :]
        ),
        st.binary(max_size=600).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    )
)
def test_fuzz_the_receipt_parser(text: str) -> None:
    try:
        found = receipts.verify(text, KEYS)
    except receipts.ReceiptError as exc:
        assert str(exc)
        return
    assert found.result_id == RID  # only the genuine token (a no-op mutation) passes


# -- central: from a pass in the database ----------------------------------------------


def test_receipt_for_a_pass_only_to_its_own_device(central_engine: Any) -> None:
    person = {"id_number": ID, "name": "Wang Fang", "sex": "F", "birth_date": BORN}
    roster.upsert(central_engine, [person], "test", NOW)
    row = {
        "device_id": "term-r1",
        "kid": "k",
        "retiree_id": ID,
        "method": "face",
        "channel": "kiosk",
        "device_time": NOW,
        "received_at": NOW,
        "evidence": {},
    }
    failed = uuid.uuid4()
    with central_engine.begin() as conn:
        conn.execute(
            schema.results.insert(),
            [
                row | {"result_id": RID, "seq": 1, "decision": "pass", "applied": True},
                row | {"result_id": failed, "seq": 2, "decision": "fail", "applied": False},
            ],
        )
    policy = Policy(timezone="Asia/Shanghai")
    answers = central_receipts.ReceiptAnswers(central_engine, SIGNER, policy)

    def ask(device: str, result: uuid.UUID) -> messages.Reply:
        body = {"op": "receipt", "request_id": "b" * 32, "result_id": str(result)}
        return answers(device, json.dumps(body).encode())

    ok = ask("term-r1", RID)
    assert ok.status == "ok" and ok.data is not None
    found = receipts.verify(ok.data["receipt"], KEYS)
    assert found.certified_on == dt.date(2026, 12, 20)  # the pass's day in Shanghai
    assert found.certified_until == dt.date(2027, 12, 20)
    assert ask("term-other", RID).error == "not_found"  # another terminal's result
    assert ask("term-r1", failed).error == "not_found"
    bad = answers("term-r1", b'{"op": "receipt", "request_id": "x", "result_id": "y"}')
    assert bad.status == "error" and bad.error and bad.error.startswith("bad_request")


# -- lifecert verify-receipt ------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    pki.write_public_key(tmp_path / "central-sign.pub.pem", PUBLIC)
    return tmp_path / "central-sign.pub.pem"


def _verify(key_file: Path, source: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(
        lifecert, ["verify-receipt", source, "--key", str(key_file)], input=stdin
    )


def test_cli_verifies_text_stdin_png_and_jpeg(key_file: Path, tmp_path: Path) -> None:
    token = _token()
    (tmp_path / "r.txt").write_text(token + "\n")
    png = tmp_path / "r.png"
    segno.make_qr(token, error="m").save(str(png), scale=4, border=4)
    photo = Image.open(png).convert("RGB").resize((900, 900))  # a "screenshot", rescaled
    jpeg = tmp_path / "r.jpg"
    photo.save(jpeg, quality=85)
    sources: list[tuple[str, bytes | None]] = [
        (str(tmp_path / "r.txt"), None),
        ("-", token.encode()),
        (str(png), None),
        (str(jpeg), None),
        ("-", png.read_bytes()),
    ]
    for source, stdin in sources:
        done = _verify(key_file, source, stdin)
        assert done.exit_code == 0, (source, stdin and stdin[:8], done.output)
        assert "valid receipt: ID 110***********1249" in done.output
        assert "until 2027-12-20" in done.output


def test_cli_refuses_forged_altered_other_key_and_bad_input(key_file: Path, tmp_path: Path) -> None:
    cases = {
        _tamper(_token()).encode(): "altered or forged",
        _token(OTHER).encode(): "another key",
        b"\x89PNG\r\n\x1a\nnot really": "cannot read the image",
        "日本".encode("utf-16"): "neither receipt text nor a PNG/JPEG image",
        b"": "empty",
    }
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, "PNG")
    cases[blank.getvalue()] = "QR code not found"
    for stdin, problem in cases.items():
        done = _verify(key_file, "-", stdin)
        assert done.exit_code == 1, (problem, done.output)
        assert problem in done.output and "Traceback" not in done.output
    done = _verify(tmp_path / "missing.pem", "-", _token().encode())
    assert done.exit_code == 1 and "--key" in done.output


# -- the public verify page --------------------------------------------------------------


@pytest.fixture
def page() -> Iterator[str]:
    port = free_port()
    app = central_receipts.verify_app([PUBLIC])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def test_public_page_verifies_over_http(page: str) -> None:
    with httpx.Client(base_url=page, timeout=5) as http:
        ok = http.get("/", params={"token": _token()})
        assert ok.status_code == 200 and "Valid receipt" in ok.text and "2027-12-20" in ok.text
        forged = http.get("/", params={"token": _tamper(_token())})
        assert "Not valid" in forged.text and "altered or forged" in forged.text
        script = http.get("/", params={"token": "<script>alert(1)</script>"})
        assert "<script>alert" not in script.text  # escaped
        api = http.post("/api/verify", content=_token(OTHER))
        assert api.status_code == 422 and "another key" in api.json()["problem"]
        api = http.post("/api/verify", content=_token())
        assert api.json()["valid"] and api.json()["id_number"] == "110***********1249"
        assert http.post("/api/verify", content="x" * 5000).status_code == 413
        key = serialization.load_pem_public_key(http.get("/key.pem").content)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert signing.key_fingerprint(key) == SIGNER.kid


def test_public_page_in_a_real_browser(page: str) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        tab = browser.new_page()
        tab.goto(page + "/")
        tab.fill("#token", _token())
        tab.click("button[type=submit]")
        tab.wait_for_selector(".ok")
        assert "110***********1249" in tab.inner_text(".ok")
        tab.fill("#token", _tamper(_token()))
        tab.click("button[type=submit]")
        tab.wait_for_selector(".bad")
        assert "altered or forged" in tab.inner_text(".bad")
        browser.close()
