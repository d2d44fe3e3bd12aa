"""The face step of ``lifecert demo``: one retiree certifies at a kiosk, card + face + liveness.

Everything goes through the shipped commands: ``lifecert-models sign`` puts the
built bundle under the fleet's model key, ``lifecert-emulator ga467`` is the
card reader on a pty (the card photo is a real LFW photo), and the terminal's
``lifecert-edge run`` runs the session with ``[kiosk]`` on and a replay camera
playing real LFW stills of the same man (LFW has no video: the "challenges" are
photos of him with the head turned, mouth open, chin down).
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from common import idnumber
from provisioning.stack import Stack

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))
BUNDLE = REPO / "var" / "models"
BUNDLE_KEY = REPO / "var" / "models-dev" / "sign.pub.pem"
CHALLENGES = ["turn_left", "turn_right", "open_mouth", "nod"]
# Real LFW stills of one man, picked by their measured landmarks (yaw/pitch, mouth gap).
FRONT = "Tony_Blair_0093"
ACTIONS = ["Tony_Blair_0100", "Tony_Blair_0001", "Tony_Blair_0003", "Tony_Blair_0044"]
CARD_PHOTO = "Tony_Blair_0032"


def _lfw(data: Path, name: str) -> Path:
    return data / "faces" / "lfw" / "images" / name.rsplit("_", 1)[0] / f"{name}.jpg"


def missing(data: Path = DATA, bundle: Path = BUNDLE, key: Path = BUNDLE_KEY) -> str | None:
    """Why the face step cannot run on this machine, or ``None`` when it can."""
    if not (bundle / "manifest.jws").is_file():
        return f"no model bundle at {bundle} (run `make models`)"
    if not key.is_file():
        return f"no public key {key} for the model bundle"
    if not all(_lfw(data, n).is_file() for n in (FRONT, CARD_PHOTO, *ACTIONS)):
        return f"no LFW faces under {data} (set LIFECERT_TEST_DATA to the data folder)"
    return None


def _tool(name: str, module: str) -> list[str]:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", module]


def _frames(data: Path, folder: Path) -> Path:
    """A steady face, each action twice with the face in between, steady again."""
    moves = [m for action in ACTIONS for m in (action, FRONT)]
    names = [FRONT] * 2 + moves * 2 + [FRONT] * 2
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / f"{i:04d}.jpg").symlink_to(_lfw(data, name))
    return folder


def face_step(
    stack: Stack, root: Path, device_id: str, retiree: str, port: int, say: Callable[[str], None]
) -> dict[str, object]:
    """Certify ``retiree`` by face at ``device_id`` (kiosk page on ``port``); its outbox row."""
    models = root / "models"
    subprocess.run(
        [*_tool("lifecert-models", "models"), "sign", str(BUNDLE), "--public-key",
         str(BUNDLE_KEY), "--signing-key", str(stack.fleet.paths.models / "sign.key"),
         "--out", str(models)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    frames = _frames(DATA, root / "frames")
    shutil.copy(_lfw(DATA, CARD_PHOTO), root / "photo.jpg")
    (root / "card.toml").write_text(
        f'id_number = "{retiree}"\nname = "Demo Retiree"\nsex = "{idnumber.sex(retiree)}"\n'
        f'birth_date = {idnumber.birth_date(retiree)}\nphoto = "photo.jpg"\n'
    )
    argv = [*_tool("lifecert-emulator", "hal.emulators"), "ga467", "--card", "card.toml"]
    emu = subprocess.Popen(
        [*argv, "--no-card"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert emu.stdout is not None and emu.stdin is not None
        pty = emu.stdout.readline().strip().rsplit(" ", 1)[-1]
        config = stack.edge_config(device_id)
        config.write_text(
            config.read_text() + f'\n[models]\nbundle = "{models}"\n'
            f"[session]\nchallenges = {json.dumps(CHALLENGES)}\nresult_screen_s = 2\n"
            f'[hal.camera]\ntype = "replay"\nsource = "{frames}"\nfps = 8\nloop = true\n'
            f'[hal.id_card]\ntype = "ga467"\nport = "{pty}"\n[hal.speaker]\ntype = "silent"\n'
            f"[kiosk]\nenabled = true\nport = {port}\n"
        )
        stack.stop(device_id)
        stack.start_edge(device_id, ready_timeout=180)
        say(f"   {device_id} restarted with its kiosk session (fleet-signed bundle, replay "
            f"camera on real LFW photos, card reader emulated on {pty})")  # fmt: skip
        emu.stdin.write("insert\n")
        emu.stdin.flush()

        def newest() -> dict[str, object]:
            rows = json.loads(stack.edge(device_id, "outbox", "--json", "--limit", "1"))["rows"]
            return rows[0] if rows else {}

        stack.wait_until(lambda: newest().get("method") == "face", 180, "the face result")
        stack.wait_delivered([device_id], timeout=60)
        emu.stdin.write("remove\n")
        emu.stdin.flush()
        return newest()
    finally:
        emu.kill()
        emu.wait(10)
