"""Terminal session speed: per-frame pipeline rate during a challenge, last frame -> durable.

    python bench/bench_session_frames.py [--bundle var/models] [--runs 60] [--sessions 5]

On one core (CPU affinity 0, one TFLite thread), in one run:
- a challenge frame (detect + landmarks + chip + quality + measures, what the session does
  per frame) on a real 640x480 camera frame, beside bare invokes of the two models;
- whole sessions of the real core with real adapters (bundle, encrypted cache, Recorder into
  a SQLite outbox with synchronous=FULL) on LFW stills of one person doing the challenges:
  the time from reading the last frame to the "done" screen, i.e. embed + compare + seal +
  sign + durable commit. Target <= 300 ms.
"""

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))
FRAME = DATA / "pad" / "minivision" / "image_T1.jpg"
LFW = DATA / "faces" / "lfw" / "images" / "Tony_Blair"
FRONT, ACTIONS = ["0093", "0046"], ["0100", "0001", "0003", "0044"]


def _ms(values: list[float]) -> str:
    p90 = sorted(values)[int(len(values) * 0.9)]
    return f"median {statistics.median(values):.1f} ms, p90 {p90:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=5)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})

    import numpy as np
    from cryptography.hazmat.primitives.asymmetric import ec
    from PIL import Image

    from bench.bench_models_pipeline import _key
    from common import idnumber
    from edge.adapters.cache import TemplateCache
    from edge.adapters.devices import PipelineFaces, SystemClock
    from edge.adapters.keys import Keys
    from edge.adapters.outbox import Outbox
    from edge.adapters.recorder import Recorder
    from edge.adapters.templates import References
    from edge.session.core import Session
    from edge.session.model import Challenge, Observation, Screen
    from edge.session.ports import Ports
    from edge.session.settings import SessionSettings
    from hal.camera import Frame
    from hal.card.identity import Identity
    from models.pipeline import FacePipeline
    from protocol import signing

    pipe = FacePipeline.open(args.bundle, _key(args.bundle), 1)
    faces = PipelineFaces(pipe)
    rgb = np.asarray(Image.open(FRAME).convert("RGB"))
    img = Image.fromarray(rgb)
    det = pipe.detect(img)[0]
    det_in, _ = pipe.detector.prepare(img)
    lm_in, _ = pipe.landmarker.prepare(img, det)
    bare, frame_ms = [], []
    for i in range(args.runs):  # interleaved: both see the same load
        t = time.perf_counter()
        pipe.detector.model.run(det_in)
        pipe.landmarker.model.run(lm_in)
        bare.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        obs = faces.observe(Frame(rgb, float(i)))
        frame_ms.append((time.perf_counter() - t) * 1000)
        assert obs.measures is not None
    print(
        f"challenge frame 640x480 (one core): {_ms(frame_ms)} "
        f"= {1000 / statistics.median(frame_ms):.1f} frames/s"
    )
    print(f"bare invokes detector + mesh:       {_ms(bare)}")

    stills = {
        n: np.asarray(Image.open(LFW / f"Tony_Blair_{n}.jpg").convert("RGB"))
        for n in FRONT + ACTIONS + ["0032"]
    }
    script = FRONT * 2 + [x for a in ACTIONS for x in (a, FRONT[0])] * 2 + FRONT * 2

    class Camera:
        def __init__(self) -> None:
            self.i, self.last = 0, 0.0

        def read(self) -> Frame:
            self.last = time.perf_counter()
            frame = Frame(stills[script[min(self.i, len(script) - 1)]], self.last)
            self.i += 1
            return frame

    class Display:
        def __init__(self) -> None:
            self.done_at = 0.0

        def show(self, screen: Screen) -> None:
            if screen.step == "done":
                self.done_at = time.perf_counter()

        def preview(self, frame: Frame, observation: Observation) -> None:
            pass

    class Voice:
        def say(self, text: str, lang: str = "zh") -> None:
            pass

    device, central = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    keys = Keys(
        signer=signing.Signer(device, "bench"),
        central_verifier=signing.Verifier(central.public_key()),
        central_sign_kid="bench",
        seal_pub=central.public_key(),
        seal_kid="bench",
    )
    retiree = idnumber.make("110105", dt.date(1950, 1, 1), 7)
    card = Identity(
        retiree,
        "Bench",
        idnumber.sex(retiree),
        "01",
        dt.date(1950, 1, 1),
        "resident-id",
        photo=stills["0032"],
    )
    durable, per_session = [], []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "edge.sqlite"
        with Outbox(db, "term-bench") as outbox, TemplateCache(db, os.urandom(32)) as cache:
            settings = SessionSettings(
                challenges=(
                    Challenge.TURN_LEFT,
                    Challenge.TURN_RIGHT,
                    Challenge.OPEN_MOUTH,
                    Challenge.NOD,
                )
            )
            for n in range(args.sessions):
                camera, display = Camera(), Display()
                ports = Ports(
                    cards=None,
                    camera=camera,
                    faces=faces,  # type: ignore[arg-type]
                    references=References(cache),
                    recorder=Recorder(outbox, keys),
                    voice=Voice(),
                    display=display,
                    clock=SystemClock(),
                )
                t = time.perf_counter()
                outcome = Session(ports, settings, "term-bench", random.Random(n)).certify(card)
                per_session.append(time.perf_counter() - t)
                assert outcome.decision == "pass", outcome
                durable.append((display.done_at - camera.last) * 1000)
                print(
                    f"session {n}: {camera.i} frames, {per_session[-1]:.2f} s, "
                    f"last frame -> durable {durable[-1]:.0f} ms"
                )
    print(f"last frame -> durable in the outbox: {_ms(durable)} (target <= 300 ms)")


if __name__ == "__main__":
    main()
