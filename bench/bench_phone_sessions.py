"""Phone sessions one remote-terminal process serves at once with frame latency p95 <= 200 ms.

    python bench/bench_phone_sessions.py [--bundle var/models] [--seconds 8] [--max 8]
                                         [--workers 1 2]

In one process, as ``lifecert-edge run`` with ``[remote] enabled`` runs them: N phone
sessions of the real session core (``edge.remote.sessions.Sessions``: the upload camera,
the pool of ``--workers`` verified pipelines, the serial recorder into a SQLite outbox),
each fed 10 JPEG frames a second (640x480, real LFW photos of one man doing the actions)
by its own thread, which decodes each frame as the web route does. Latency = a frame's
arrival at the session's camera to the end of its observation (detect + landmarks + chip +
quality); frames a busy session skipped as stale are counted apart. A level passes when
p95 <= 200 ms and at most 5% of frames are skipped. Beside it, in the same run, the bare
pipeline's cost of one frame (decode + observe, one thread, nothing else running). With
``--http`` the frames go through the real web app (``edge.remote.app`` under uvicorn, in
this process) as POSTs from a separate client process, and the client's round trip is
reported too. Not measured: the phone's network.
"""

import argparse
import datetime as dt
import io
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))
LFW = DATA / "faces" / "lfw" / "images" / "Tony_Blair"
FRONT, ACTIONS = ["0093", "0046"], ["0100", "0001", "0003", "0044"]
TARGET_MS, MAX_SKIPPED = 200.0, 0.05


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_frames(port: int, tokens: list[str], jpegs: list[bytes], seconds: float, out: Any) -> None:
    """The phones: one thread per session POSTing a frame every 100 ms (a client process)."""
    import httpx

    url = f"http://127.0.0.1:{port}"
    trips: list[float] = []

    def phone(token: str) -> None:
        headers = {"Origin": url, "Content-Type": "image/jpeg"}
        with httpx.Client(base_url=url, headers=headers, cookies={"lifecert_phone": token}) as c:
            i, tick = random.randrange(len(jpegs)), time.monotonic()
            end = tick + seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                c.post("/api/frame", content=jpegs[i % len(jpegs)]).raise_for_status()
                trips.append((time.perf_counter() - t) * 1000)
                i, tick = i + 1, tick + 0.1
                time.sleep(max(0.0, tick - time.monotonic()))

    threads = [threading.Thread(target=phone, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(trips[len(trips) // 5 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured per level")
    parser.add_argument("--max", type=int, default=8, help="most sessions tried")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--http",
        action="store_true",
        help="POST the frames to the phone app under uvicorn, from another process",
    )
    args = parser.parse_args()
    if not LFW.is_dir():
        sys.exit(f"error: LFW not found at {LFW}: set LIFECERT_TEST_DATA to the data folder")

    import numpy as np
    from cryptography.hazmat.primitives.asymmetric import ec
    from PIL import Image

    from bench.bench_models_pipeline import _key
    from common import idnumber
    from edge.adapters.devices import PipelineFaces
    from edge.adapters.keys import Keys
    from edge.adapters.outbox import Outbox
    from edge.adapters.recorder import Recorder
    from edge.remote.app import decode_frame
    from edge.remote.faces import FacePool
    from edge.remote.sessions import SerialRecorder, Sessions
    from edge.session.model import Challenge
    from edge.session.settings import SessionSettings
    from hal.camera import Frame
    from hal.errors import CameraError
    from models.pipeline import FacePipeline
    from protocol import signing

    script = FRONT * 2 + [x for a in ACTIONS for x in (a, FRONT[0])] * 2 + FRONT * 2
    jpegs = []
    for name in script:
        photo = Image.open(LFW / f"Tony_Blair_{name}.jpg").convert("RGB").resize((480, 480))
        canvas = Image.new("RGB", (640, 480), (128, 128, 128))
        canvas.paste(photo, (80, 0))
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=85)
        jpegs.append(out.getvalue())

    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"frames: 640x480 JPEG, {statistics.mean(map(len, jpegs)) / 1024:.0f} KiB"
    )
    pipelines = [
        FacePipeline.open(args.bundle, _key(args.bundle), 1) for _ in range(max(args.workers))
    ]
    bare = PipelineFaces(pipelines[0])
    bare_ms = []
    for i in range(60):
        t = time.perf_counter()
        bare.observe(Frame(decode_frame(jpegs[i % len(jpegs)], 1280), float(i)))
        bare_ms.append((time.perf_counter() - t) * 1000)
    bare_ms = bare_ms[10:]
    print(
        f"bare pipeline, one frame (decode + observe): median {statistics.median(bare_ms):.1f} ms, "
        f"p95 {_pct(bare_ms, 0.95):.1f} ms"
    )

    device, central = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    keys = Keys(
        signer=signing.Signer(device, "bench"),
        central_verifier=signing.Verifier(central.public_key()),
        central_sign_kid="bench",
        seal_pub=central.public_key(),
        seal_kid="bench",
    )
    settings = SessionSettings(
        challenges=(Challenge.BLINK,),  # stills never blink: sessions stay in the frame loop
        challenge_s=60,
        capture_s=60,
    )
    retirees = [idnumber.make("110105", dt.date(1950, 1, 1), i) for i in range(args.max)]
    rng = np.random.default_rng(1)

    def level(workers: int, n: int, folder: Path) -> tuple[float, float, float, int]:
        pool = FacePool([PipelineFaces(p) for p in pipelines[:workers]])
        recorder, stop = SerialRecorder(), threading.Event()

        def record() -> None:
            with Outbox(folder / f"edge-{workers}-{n}.sqlite", "remote-bench") as outbox:
                recorder.serve(Recorder(outbox, keys).record, stop)

        threading.Thread(target=record, daemon=True).start()
        sessions = Sessions(pool, recorder, settings, "remote-bench", n, idle_s=5)
        fed, skipped = [0], [0]

        def feed(k: int) -> None:
            template = rng.standard_normal(128).astype(np.float32)
            phone = sessions.start(retirees[k], template / np.linalg.norm(template), "zh")
            i, tick = random.randrange(len(jpegs)), time.monotonic()
            while not stop.is_set():
                try:
                    phone.camera.feed(decode_frame(jpegs[i % len(jpegs)], 1280))
                except CameraError:  # the session ended: the next phone takes its place
                    fed[0] += phone.camera.fed
                    skipped[0] += phone.camera.skipped
                    phone = sessions.start(retirees[k], template, "zh")
                i += 1
                tick += 0.1
                time.sleep(max(0.0, tick - time.monotonic()))
            fed[0] += phone.camera.fed
            skipped[0] += phone.camera.skipped

        if args.http:
            return over_http(sessions, pool, n, stop)
        feeders = [threading.Thread(target=feed, args=(k,), daemon=True) for k in range(n)]
        for t in feeders:
            t.start()
        time.sleep(2.0)  # warm-up: captures and first probes
        pool.latencies.take()
        time.sleep(args.seconds)
        latencies = [x * 1000 for x in pool.latencies.take()]
        stop.set()
        for t in feeders:
            t.join(5)
        sessions.close()
        share = skipped[0] / max(1, fed[0])
        return _pct(latencies, 0.5), _pct(latencies, 0.95), share, len(latencies)

    def over_http(
        sessions: Sessions, pool: FacePool, n: int, stop: threading.Event
    ) -> tuple[float, float, float, int]:
        import uvicorn

        from edge.remote.app import create_app
        from edge.remote.limits import AddressLimits

        port = free_port()
        app = create_app(
            sessions,
            None,  # type: ignore[arg-type]  # no codes: sessions are started here
            None,  # type: ignore[arg-type]
            AddressLimits(10**6),
            hosts=frozenset({f"127.0.0.1:{port}"}),
            frame_max_bytes=256 * 1024,
            frame_max_px=1280,
            code_answer_s=0,
        )
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        phones = []
        for k in range(n):
            template = rng.standard_normal(128).astype(np.float32)
            phones.append(sessions.start(retirees[k], template / np.linalg.norm(template), "zh"))
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        client = ctx.Process(
            target=post_frames,
            args=(port, [p.token for p in phones], jpegs, 2.0 + args.seconds, results),
        )
        client.start()
        time.sleep(2.0)
        pool.latencies.take()
        time.sleep(args.seconds)
        latencies = [x * 1000 for x in pool.latencies.take()]
        trips = results.get(timeout=60)
        client.join(10)
        fed = sum(p.camera.fed for p in phones)
        skipped = sum(p.camera.skipped for p in phones)
        stop.set()
        sessions.close()
        server.should_exit = True
        print(
            f"          HTTP round trip of a frame POST: median {statistics.median(trips):.1f} ms,"
            f" p95 {_pct(trips, 0.95):.1f} ms"
        )
        return _pct(latencies, 0.5), _pct(latencies, 0.95), skipped / max(1, fed), len(latencies)

    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            best = 0
            print(f"\nworkers (pipelines) = {workers}")
            print("sessions  frames/s  p50 ms  p95 ms  skipped  p95 / bare median")
            for n in range(1, args.max + 1):
                p50, p95, share, count = level(workers, n, Path(tmp))
                ok = p95 <= TARGET_MS and share <= MAX_SKIPPED
                best = n if ok else best
                print(
                    f"{n:8d}  {count / args.seconds:8.1f}  {p50:6.1f}  {p95:6.1f}  "
                    f"{share:6.1%}  {p95 / statistics.median(bare_ms):6.1f}x"
                    f"{'' if ok else '  over'}"
                )
                if not ok and n > best + 1:
                    break
            print(
                f"=> {best} sessions at once within p95 <= {TARGET_MS:.0f} ms ({workers} workers)"
            )


if __name__ == "__main__":
    main()
