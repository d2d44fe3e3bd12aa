"""Status lookup and the receipt's QR code at the kiosk, in headless Chromium over the real
service: ``lifecert-edge run`` with the kiosk, a GA/T 467 reader emulated on a pty (HAL), a
``ReplayCamera`` of real LFW stills, Mosquitto and ``lifecert-central run``.

One visit after another on one stack: "check my status" for a known card (central's dates
shown, nothing certified), a certification whose receipt QR code is read back from a
screenshot with OpenCV and verified with central's public key (``lifecert verify-receipt``),
the status again (last certification and the QR code), then central down: a clear message.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from common import idnumber
from edge.config import load as load_edge
from protocol import receipts, signing
from provisioning.cli import main as lifecert
from provisioning.receipts import ReceiptInputError, token_of
from tests.fixtures.ports import free_port
from tests.fixtures.stack import central_url, make_stack
from tests.integration.test_kiosk_browser import CHROMIUM, FLAGS, check_accessible, shot
from tests.integration.test_session_e2e import (
    CHALLENGES,
    TONY,
    configure,
    fleet_bundle,
    frames_dir,
    lfw,
    performance,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE = "term-q01"
UNTIL = "2027-01-31"
QR_LOADED = (
    "() => { const i = document.getElementById('qr');"
    " return !document.getElementById('qr-box').hidden && !i.hidden && i.complete"
    " && i.naturalWidth > 0; }"
)


def _qr_token(page: Any, within_s: float = 15) -> str:
    """The text of the QR code on screen, read as ``verify-receipt`` reads a photo of it
    (``provisioning.receipts.token_of``) from screenshots of the code's box, within
    ``within_s`` (the page may still be swapping it in). On failure the message gives the
    kiosk's state and where the last screenshot was saved."""
    pytest.importorskip("cv2")
    deadline = time.monotonic() + within_s
    while True:
        image = page.locator("#qr-box").screenshot()
        try:
            return token_of(image)
        except ReceiptInputError as exc:
            if time.monotonic() > deadline:
                saved = Path(tempfile.mkdtemp(prefix="kiosk-qr-")) / "qr-box.png"
                saved.write_bytes(image)
                state = page.evaluate("fetch('/api/state').then((r) => r.text())")
                raise AssertionError(f"{exc} in {within_s} s ({saved}); state: {state}") from exc
        time.sleep(0.25)


def test_status_then_a_pass_with_its_receipt_then_central_down(
    tmp_path: Path, shared_data: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    stack, ids = make_stack(tmp_path / "stack", [DEVICE], retirees=3)
    retiree = ids[0]
    engine = sa.create_engine(central_url(stack))
    with engine.begin() as conn:  # a roster restored with a certification on record
        conn.execute(
            sa.text("UPDATE retirees SET certified_until = :u WHERE id_number = :i"),
            {"u": UNTIL, "i": retiree},
        )
    engine.dispose()
    shutil.copy(lfw(shared_data, TONY["card"]), tmp_path / "photo.jpg")  # type: ignore[arg-type]
    (tmp_path / "card.toml").write_text(
        f'id_number = "{retiree}"\nname = "王秀英"\nsex = "{idnumber.sex(retiree)}"\n'
        f'birth_date = {idnumber.birth_date(retiree)}\nphoto = "photo.jpg"\n'
    )
    exe = shutil.which("lifecert-emulator")
    emu = subprocess.Popen(
        [
            *([exe] if exe else [sys.executable, "-m", "hal.emulators"]),
            "ga467",
            "--card",
            str(tmp_path / "card.toml"),
            "--no-card",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def card(action: str) -> None:
        assert emu.stdin is not None
        emu.stdin.write(f"{action}\n")
        emu.stdin.flush()

    try:
        assert emu.stdout is not None
        pty = emu.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert pty.startswith("/dev/"), pty
        frames = frames_dir(shared_data, performance(TONY), tmp_path / "frames")
        port = free_port()
        configure(
            stack,
            DEVICE,
            f'[models]\nbundle = "{fleet_bundle(stack, tmp_path / "models")}"\n'
            f"[session]\nchallenges = {CHALLENGES}\nresult_screen_s = 60\n"
            f'[hal.camera]\ntype = "replay"\nsource = "{frames}"\nfps = 8\nloop = true\n'
            f'[hal.id_card]\ntype = "ga467"\nport = "{pty}"\n'
            f'[hal.speaker]\ntype = "silent"\n'
            f"[kiosk]\nenabled = true\nport = {port}\n",
        )
        key = load_edge(stack.edge_config(DEVICE)).central.sign_pub
        with stack, playwright.sync_playwright() as pw:
            stack.broker.start()
            stack.start_central()
            stack.start_edge(DEVICE)
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-step=idle]")

            def check_status(expect: str) -> None:
                page.click("#check-status")
                page.wait_for_selector("body[data-choice=status]")
                assert "查询认证状态" in page.inner_text("#prompt")
                card("insert")
                page.wait_for_function(
                    "(t) => document.getElementById('prompt').textContent.includes(t)",
                    arg=expect,
                    timeout=20_000,
                )
                assert page.get_attribute("body", "data-step") == "status"

            # 1. status for a known card, nothing certified
            check_status("这是您的认证状态")
            rows = page.inner_text("#status-rows")
            assert f"认证有效期至\n{UNTIL}" in rows and "上次认证\n无记录" in rows, rows
            assert page.inner_text("#status-who").endswith(retiree[-4:])
            check_accessible(page)
            shot(page, "7-status")
            page.click("#lang")
            page.wait_for_function(
                "() => document.getElementById('status-rows').textContent.includes('Certified')"
            )
            page.click("#lang")
            card("remove")
            page.wait_for_selector("body[data-step=idle]")
            assert sum(stack.outbox_counts(DEVICE).values()) == 0  # nothing recorded

            # 2. a certification; the receipt's QR code appears once central has applied it
            card("insert")
            page.wait_for_selector("body[data-step=done]", timeout=60_000)
            page.wait_for_function(QR_LOADED, timeout=30_000)
            check_accessible(page)
            shot(page, "8-receipt")
            token = _qr_token(page)
            keys = receipts.published_keys([signing.load_public_key(key)])
            found = receipts.verify(token, keys)
            assert found.masked_id.endswith(retiree[-4:]) and found.result_id
            assert str(found.result_id) in stack.edge(DEVICE, "outbox", "--json")
            screenshot = tmp_path / "receipt.png"
            screenshot.write_bytes(page.screenshot())
            done = CliRunner().invoke(
                lifecert, ["verify-receipt", str(screenshot), "--key", str(key)]
            )
            assert done.exit_code == 0 and "valid receipt" in done.output, done.output
            card("remove")
            page.wait_for_selector("body[data-step=idle]")

            # 3. status again: today's kiosk certification and the receipt of that pass
            check_status("这是您的认证状态")
            assert "自助终端" in page.inner_text("#status-rows")
            page.wait_for_function(QR_LOADED)
            again = receipts.verify(_qr_token(page), keys)
            assert again.result_id == found.result_id  # re-issued, same result
            card("remove")
            page.wait_for_selector("body[data-step=idle]")

            # 4. central down: a clear message, nothing else
            stack.stop("central-1")
            check_status("无法连接服务中心")
            assert page.is_hidden("#status-rows dt") and page.is_hidden("#qr")
            check_accessible(page)
            shot(page, "9-status-offline")
            browser.close()
    finally:
        emu.kill()
        emu.wait(10)
