"""Whole certification sessions on real LFW faces reaching central over the real stack.

The session runs in this process on real adapters (the verified TFLite bundle,
``ReplayCamera`` on LFW JPEGs, the HAL's ``MockCardReader`` driven like a
person inserting a card, the encrypted cache, the edge ``Recorder``); the
terminal's own ``lifecert-edge run`` process delivers the outbox to a real
``lifecert-central`` through Mosquitto with mutual TLS. That process holds the
terminal's one broker link, so the session here asks central for no template
(test_templates_service does): each retiree is new to central, the card photo is
the reference either way.

LFW holds stills only: a "person doing the challenges" is a sequence of real
photos of the same man with his head turned, mouth open or chin down (chosen
by their measured landmarks); no video of real motion was available here.
"""

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from edge.bootstrap import open_outbox, open_session
from edge.config import load as load_config
from edge.session.model import Observation, Outcome, Screen
from hal.camera import Frame
from hal.card.identity import Identity
from hal.card.mock import MockCardReader
from models.bundle import read_manifest, write_manifest
from provisioning.stack import Stack
from tests.fixtures.stack import central_url, make_stack
from tests.integration.test_models_pipeline import bundle_and_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICE = "term-s01"
CHALLENGES = '["turn_left", "turn_right", "open_mouth", "nod"]'
# Real LFW photos picked by their measured landmarks (yaw/pitch in degrees, mouth gap ratio).
TONY = {
    "front": ["Tony_Blair_0093", "Tony_Blair_0046"],
    "left": "Tony_Blair_0100",  # yaw +27
    "right": "Tony_Blair_0001",  # yaw -30
    "mouth": "Tony_Blair_0003",  # mouth 0.72
    "nod": "Tony_Blair_0044",  # pitch -30
    "card": "Tony_Blair_0032",
}
COLIN = {
    "front": ["Colin_Powell_0097", "Colin_Powell_0097"],
    "left": "Colin_Powell_0069",
    "right": "Colin_Powell_0018",
    "mouth": "Colin_Powell_0080",
    "nod": "Colin_Powell_0050",
}


def lfw(data: Path, name: str) -> Path:
    return data / "faces" / "lfw" / "images" / name.rsplit("_", 1)[0] / f"{name}.jpg"


def performance(person: dict[str, object], attempts: int = 1) -> list[str]:
    """Frames of someone doing every action twice per attempt, whatever is asked."""
    front = person["front"]
    assert isinstance(front, list)
    actions = []
    for key in ("left", "right", "mouth", "nod"):
        actions += [str(person[key]), front[0]]
    return (front * 2 + actions * 2 + front * 2) * attempts


def frames_dir(data: Path, names: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        (folder / f"{i:04d}.jpg").symlink_to(lfw(data, name))
    return folder


def card(data: Path, id_number: str, photo: str | None) -> Identity:
    return Identity(
        id_number=id_number,
        name="Test Retiree",
        sex="M",
        nation="01",
        birth_date=dt.date(1950, 1, 1),
        source="resident-id",
        valid_until=dt.date(2040, 1, 1),
        photo=np.asarray(Image.open(lfw(data, photo)).convert("RGB")) if photo else None,
        photo_reason=None if photo else "no photo",
    )


def fleet_bundle(stack: Stack, folder: Path) -> Path:
    """The built bundle re-signed with this fleet's model key (as operators ship it)."""
    bundle, pub = bundle_and_key()
    manifest = read_manifest(bundle, pub)
    folder.mkdir()
    for spec in manifest.models.values():
        (folder / spec.file).symlink_to(bundle / spec.file)
    write_manifest(folder, manifest, stack.fleet.paths.root / "models" / "sign.key")
    return folder


def configure(stack: Stack, device: str, extra: str) -> None:
    """Append session tables to a terminal's edge.toml."""
    path = stack.edge_config(device)
    path.write_text(path.read_text() + "\n" + extra)


class Screens:
    """A display that keeps every screen (and counts previews)."""

    def __init__(self) -> None:
        self.shown: list[Screen] = []
        self.previews = 0

    def show(self, screen: Screen) -> None:
        self.shown.append(screen)

    def preview(self, frame: Frame, observation: Observation) -> None:
        self.previews += 1


def run_session(
    stack: Stack, tmp: Path, frames: list[str], identity: Identity, data: Path, **session: str
) -> tuple[Outcome, Screens]:
    folder = frames_dir(data, frames, tmp / f"frames-{len(list(tmp.glob('frames-*')))}")
    cfg = load_config(stack.edge_config(DEVICE))
    cfg = cfg.model_copy(
        update={
            "hal": cfg.hal.model_validate(
                {
                    "camera": {"type": "replay", "source": folder, "fps": 30, "loop": True},
                    "id_card": {"type": "mock"},
                },
                context={"base_dir": None},
            ),
            "session": cfg.session.model_validate(
                {"challenges": json.loads(CHALLENGES), **session}
            ),
        }
    )
    screens = Screens()
    with open_outbox(cfg) as outbox, open_session(cfg, outbox, screens) as sess:
        reader = sess.ports.cards.readers[0]  # type: ignore[attr-defined]
        assert isinstance(reader, MockCardReader)
        reader.insert(identity)
        got = sess.wait_card(threading.Event())
        assert got is not None
        return sess.certify(got), screens


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[str], Path]]:
    root = tmp_path_factory.mktemp("session")
    built, ids = make_stack(root, [DEVICE], retirees=5)
    bundle = fleet_bundle(built, root / "models")
    configure(built, DEVICE, f'[models]\nbundle = "{bundle}"\n')
    with built:
        built.broker.start()
        built.start_central()
        built.start_edge(DEVICE)
        yield built, ids, root


def central_row(stack: Stack, result_id: str) -> dict[str, object]:
    engine = sa.create_engine(central_url(stack))
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT decision, method, applied, template_sealed, evidence "
                    "FROM results WHERE result_id = :r"
                ),
                {"r": result_id.replace("-", "")},
            ).one_or_none()
    finally:
        engine.dispose()
    return {} if row is None else dict(row._mapping)


def wait_central(stack: Stack, result_id: str) -> dict[str, object]:
    stack.wait_until(lambda: bool(central_row(stack, result_id)), 60, "central to apply")
    return central_row(stack, result_id)


def test_genuine_retiree_is_certified_and_the_signed_result_reaches_central(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    identity = card(shared_data, ids[0], TONY["card"])  # type: ignore[arg-type]
    outcome, screens = run_session(built, root, performance(TONY), identity, shared_data)
    assert outcome.decision == "pass" and outcome.method == "face", outcome.attempts
    match = outcome.attempts[-1].comparison
    assert match is not None and match.matched and match.score <= match.threshold
    assert screens.shown[-1].step == "done" and screens.shown[-1].receipt == outcome.receipt
    assert outcome.result_id is not None
    row = wait_central(built, outcome.result_id)
    assert row["decision"] == "pass" and row["method"] == "face" and row["applied"]
    assert str(row["template_sealed"]).count(".") == 4  # JWE compact, never the template in clear
    evidence = (
        row["evidence"] if isinstance(row["evidence"], dict) else json.loads(str(row["evidence"]))
    )
    assert evidence["match"]["reference"] == "card_photo"


def test_impostor_face_on_a_genuine_card_is_not_certified(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    identity = card(shared_data, ids[1], TONY["card"])  # type: ignore[arg-type]
    outcome, screens = run_session(built, root, performance(COLIN, 3), identity, shared_data)
    assert outcome.decision == "refer" and len(outcome.attempts) == 3
    assert any(a.live for a in outcome.attempts)  # he did the actions, his face is not Tony's
    assert all(a.comparison is None or not a.comparison.matched for a in outcome.attempts)
    assert screens.shown[-1].prompt == "staff"
    assert outcome.result_id is not None
    row = wait_central(built, outcome.result_id)
    assert row["decision"] == "refer" and row["template_sealed"] is None


def test_a_still_photo_fails_liveness_and_goes_to_staff(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    identity = card(shared_data, ids[2], TONY["card"])  # type: ignore[arg-type]
    outcome, _ = run_session(
        built,
        root,
        [TONY["front"][0]],
        identity,
        shared_data,
        challenge_s="1.5",  # type: ignore[index]
    )
    assert outcome.decision == "refer"
    assert [a.live for a in outcome.attempts] == [False] * 3
    assert all(a.comparison is not None and a.comparison.matched for a in outcome.attempts)
    assert outcome.result_id is not None
    assert wait_central(built, outcome.result_id)["decision"] == "refer"
