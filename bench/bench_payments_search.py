"""1:N face search: latency per query over N stored templates, and the cost of loading them.

Builds a ``central.fraud.duplicates.FaceIndex`` of ``--templates`` 128-d float32 vectors
(random, scaled like dlib embeddings: norm ~ 1), then times ``--queries`` searches
(each a full scan: one matrix-vector product, threshold, exclusion of the prober's
own templates). Loading cost: AES-256-GCM decryption of templates as stored at
rest, per template, measured on ``--decrypt`` of them.

Usage: python bench/bench_payments_search.py [--templates 1000000] [--queries 200]
"""

import argparse
import os
import platform
import statistics
import time
import uuid

import numpy as np

from central.fraud.cipher import TemplateCipher
from central.fraud.duplicates import FaceIndex

MODEL = "dlib_face_recognition_resnet_v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--decrypt", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((args.templates, 128), dtype=np.float32) / np.float32(
        np.sqrt(128)
    )
    index = FaceIndex()
    start = time.perf_counter()
    for i, vec in enumerate(vectors):
        index.add(MODEL, vec, f"R{i:07d}", uuid.UUID(int=i))
    t_build = time.perf_counter() - start

    probes = rng.integers(0, args.templates, args.queries)
    times, hits = [], 0
    for i in probes:
        probe = vectors[i] + rng.standard_normal(128).astype(np.float32) * 0.02
        start = time.perf_counter()
        found = index.search(MODEL, probe, 0.5, exclude="nobody")
        times.append(time.perf_counter() - start)
        hits += any(h.retiree_id == f"R{i:07d}" for h in found)

    cipher = TemplateCipher(os.urandom(32))
    ids = [uuid.uuid4() for _ in range(args.decrypt)]
    blobs = [cipher.encrypt(vectors[i], ids[i]) for i in range(args.decrypt)]
    start = time.perf_counter()
    for blob, rid in zip(blobs, ids, strict=True):
        cipher.decrypt(blob, rid)
    per_decrypt = (time.perf_counter() - start) / args.decrypt

    times.sort()
    cpu = platform.processor() or platform.machine()
    print(f"{args.templates:,} templates x 128 float32, {cpu}, {os.cpu_count()} CPUs")
    mib = index.models[(MODEL, 128)].rows.nbytes / 2**20
    print(f"  matrix {mib:,.0f} MiB (capacity), built in {t_build:.1f} s")
    print(
        f"  query latency: median {statistics.median(times) * 1e3:.1f} ms, "
        f"p95 {times[int(0.95 * len(times))] * 1e3:.1f} ms, max {times[-1] * 1e3:.1f} ms "
        f"({args.queries} queries; {hits}/{args.queries} planted matches found)"
    )
    print(
        f"  load: AES-GCM decrypt {per_decrypt * 1e6:.1f} us/template "
        f"(~{per_decrypt * args.templates:.1f} s for all)"
    )


if __name__ == "__main__":
    main()
