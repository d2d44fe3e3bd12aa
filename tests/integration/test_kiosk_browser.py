"""The kiosk in headless Chromium (Debian's, driven by Playwright), over the real service.

``lifecert-edge run`` with ``[kiosk] enabled`` runs the session on a GA/T 467
reader emulated on a pty (card photo = a real LFW JPEG), a ``ReplayCamera``
of real LFW stills, and the signed bundle; the test inserts the card through
the emulator, watches every screen in the browser, checks contrast, text and
target sizes computed from the page, then pulls the plug (``kill -9``) right
after "done" (central is down then, so nothing was acked yet) and checks the
result still reaches central.

Screenshots of each screen go to docs/kiosk/ when LIFECERT_KIOSK_SCREENSHOTS=1
(the camera preview is blanked there: LFW images never enter the repository).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common import idnumber
from tests.fixtures.ports import free_port
from tests.fixtures.stack import make_stack
from tests.integration.test_session_e2e import (
    CHALLENGES,
    TONY,
    central_row,
    configure,
    fleet_bundle,
    frames_dir,
    lfw,
    performance,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE = "term-k01"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "kiosk"

# Every visible text element: size, colours (first opaque background up the tree), button boxes.
MEASURE = """() => {
  const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const texts = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const r = el.getBoundingClientRect();
    if (!own || r.width === 0 || r.height === 0 || el.closest('[hidden]')) continue;
    const cs = getComputedStyle(el);
    texts.push({text: el.textContent.trim().slice(0, 30), size: parseFloat(cs.fontSize),
                fg: rgba(cs.color).slice(0, 3), bg: bg(el)});
  }
  const targets = [...document.querySelectorAll('button, a, [role=button]')]
    .filter((b) => b.getBoundingClientRect().width > 0)
    .map((b) => ({w: b.getBoundingClientRect().width, h: b.getBoundingClientRect().height}));
  return {texts, targets};
}"""


def luminance(rgb: list[float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: list[float], b: list[float]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def check_accessible(page: object) -> None:
    found = page.evaluate(MEASURE)  # type: ignore[attr-defined]
    assert found["texts"], "no visible text"
    for t in found["texts"]:
        assert t["size"] >= 32, t
        assert contrast(t["fg"], t["bg"]) >= 4.5, t
    for box in found["targets"]:
        assert box["w"] >= 60 and box["h"] >= 60, box


def shot(page: object, name: str) -> None:
    if os.environ.get("LIFECERT_KIOSK_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.getElementById('preview').style.visibility = 'hidden'")  # type: ignore[attr-defined]
        page.screenshot(path=str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]
        page.evaluate("document.getElementById('preview').style.visibility = ''")  # type: ignore[attr-defined]


def test_a_whole_session_through_the_page_survives_a_power_cut(
    tmp_path: Path, shared_data: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    stack, ids = make_stack(tmp_path / "stack", [DEVICE], retirees=3)
    retiree = ids[0]
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
    try:
        assert emu.stdout is not None and emu.stdin is not None
        pty = emu.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert pty.startswith("/dev/"), pty
        frames = frames_dir(shared_data, performance(TONY), tmp_path / "frames")
        port = free_port()
        bundle = fleet_bundle(stack, tmp_path / "models")
        configure(
            stack,
            DEVICE,
            f'[models]\nbundle = "{bundle}"\n'
            f"[session]\nchallenges = {CHALLENGES}\nresult_screen_s = 5\n"
            f'[hal.camera]\ntype = "replay"\nsource = "{frames}"\nfps = 8\nloop = true\n'
            f'[hal.id_card]\ntype = "ga467"\nport = "{pty}"\n'
            f'[hal.speaker]\ntype = "silent"\n'
            f"[kiosk]\nenabled = true\nport = {port}\n",
        )
        with stack, playwright.sync_playwright() as pw:
            stack.broker.start()
            stack.start_central()
            stack.start_edge(DEVICE)
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-step=idle]")
            assert "身份证" in page.inner_text("#prompt")
            check_accessible(page)
            shot(page, "1-idle")
            page.click("#lang")
            page.wait_for_function(
                "() => document.getElementById('prompt').textContent.includes('ID card')"
            )
            check_accessible(page)
            shot(page, "2-idle-english")
            page.click("#lang")
            page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")

            stack.stop("central-1")  # nobody acks: the result stays pending through the cut
            emu.stdin.write("insert\n")
            emu.stdin.flush()
            page.wait_for_selector("body[data-step=challenge]", timeout=60_000)
            page.wait_for_selector("#countdown:not([hidden])")
            assert int(page.inner_text("#seconds")) >= 1
            check_accessible(page)
            shot(page, "3-challenge")
            page.wait_for_selector("body[data-step=done]", timeout=90_000)
            receipt = page.inner_text("#receipt")
            stack.kill(DEVICE)  # power cut right after "done"
            assert receipt.startswith(DEVICE.upper())
            assert "认证成功" in page.inner_text("#prompt") and page.inner_text("#mark") == "✓"
            check_accessible(page)
            shot(page, "4-done")
            browser.close()

            emu.stdin.write("remove\n")
            emu.stdin.flush()
            assert stack.outbox_counts(DEVICE)["pending"] == 1  # durable before "done"
            stack.start_central()
            stack.start_edge(DEVICE)
            stack.wait_delivered([DEVICE], timeout=60)
            rows = stack.edge(DEVICE, "outbox", "--json")
            assert '"decision": "pass"' in rows and '"method": "face"' in rows
            result_id = rows.split('"result_id": "')[1].split('"')[0]
            assert central_row(stack, result_id)["decision"] == "pass"
    finally:
        emu.kill()
        emu.wait(10)
