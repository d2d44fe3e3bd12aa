"""Passive PAD speed: MiniFASNet (V2 + V1SE ensemble converted to one TFLite model).

    python bench/bench_pad.py [--runs 200]

On one core (CPU affinity 0, one TFLite thread): the ONNX -> TFLite conversion, a bare
invoke, and ``live_score`` (two crops, resize to 80x80, invoke) on the real 640x480
image_T1 from ../shared/data/pad/minivision with its BlazeFace detection. The session
scores one frame per face attempt, so this is paid at most 3 times per session.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("LIFECERT_TEST_DATA", REPO.parent / "shared" / "data"))


def _ms(values: list[float]) -> str:
    p90 = sorted(values)[int(len(values) * 0.9)]
    return f"median {statistics.median(values):.2f} ms, p90 {p90:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    parser.add_argument("--public-key", type=Path, default=REPO / "var/models-dev/sign.pub.pem")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    from PIL import Image

    from models.pad.bundle import pad_model
    from models.pad.minifasnet import MiniFASNet
    from models.pipeline import FacePipeline

    start = time.perf_counter()
    pad = pad_model(DATA / "models" / "reference" / "minifasnet")
    print(f"convert ONNX -> TFLite: {(time.perf_counter() - start) * 1000:.0f} ms")
    plugin = MiniFASNet(pad.data, pad.spec, threads=1)
    image = Image.open(DATA / "pad" / "minivision" / "image_T1.jpg").convert("RGB")
    with FacePipeline.open(args.bundle, args.public_key) as pipe:
        (detection,) = pipe.detect(image)
    tensor = plugin.crops(image, detection)
    plugin.model.run(tensor)
    bare, scored = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        plugin.model.invoke()
        bare.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        plugin.live_score(image, detection)
        scored.append((time.perf_counter() - t) * 1000)
    print(f"bare invoke:                {_ms(bare)}")
    print(f"live_score (crops + invoke): {_ms(scored)}")
    print(f"TFLite file: {len(pad.data) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
