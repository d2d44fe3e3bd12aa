"""Vein extraction time per image and match time per comparison (single pair, as on a terminal).

Run: python bench/bench_vein_matcher.py [--data ../shared/data/vein/campus64] [--images 60]
"""

import argparse
import statistics
import time
from pathlib import Path

from models.vein import extract, match
from models.vein.evaluate import load_images


def timed(func, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/vein/campus64"))
    parser.add_argument("--images", type=int, default=60)
    args = parser.parse_args()
    images, _, _ = load_images(args.data)
    images = images[: args.images]
    extract(images[0])  # warm up
    ext = []
    templates = []
    for img in images:
        start = time.perf_counter()
        templates.append(extract(img))
        ext.append(time.perf_counter() - start)
    pairs = [(templates[i], templates[(i * 7 + 3) % len(templates)]) for i in range(len(templates))]
    mt = []
    for a, b in pairs:
        mt += timed(lambda a=a, b=b: match(a, b), 5)
    print(
        f"extraction per image: median {statistics.median(ext) * 1000:.1f} ms ({len(ext)} images)"
    )
    print(f"match per comparison: median {statistics.median(mt) * 1000:.2f} ms ({len(mt)} matches)")


if __name__ == "__main__":
    main()
