"""Templates of a face set through our pipeline and through dlib's own, cached in .npz files.

A cache file is named by :func:`content_key`: the models that made the templates and the
content of the image list (each image's path under the set's root and the SHA-256 of its
bytes, in order), so a different, edited or re-ordered set never reads another set's
templates. The file also keeps the relative paths, checked again on load.
"""

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from models.bundle import face_version
from models.face.detect import Detection
from models.pipeline import FacePipeline
from models.tools.cardphoto import card_photo

log = logging.getLogger(__name__)
DIM = 128
#: bump when the pipeline's code changes its templates (the cache is keyed by it)
REVISION = 4


def content_key(root: Path, paths: list[Path], models: str) -> str:
    """Short SHA-256 of ``models`` (what computes the templates), :data:`REVISION` and every
    image's path relative to ``root`` with the SHA-256 of its bytes, in list order."""
    digest = hashlib.sha256(f"{models}\0r{REVISION}\0".encode())
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _cached(
    path: Path, names: list[str], compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays cached at ``path`` for the images ``names``, else computed and cached."""
    if path.is_file():
        with np.load(path) as data:
            cached = dict(data)
        if cached.pop("names", np.array([])).tolist() == names:
            log.info("using cached %s", path)
            return cached
        log.warning("%s holds another image list: computing again", path)
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array(names), **result)  # type: ignore[arg-type]
    return result


def nearest_centre(boxes: list[tuple[float, float, float, float]], size: tuple[int, int]) -> int:
    """Index of the box (x0, y0, x1, y1) whose centre is nearest the image's: the labelled
    person of a face-centred set like LFW (the largest face is someone else in 11 of
    LFW's 1,500 DevTest images; the terminal itself takes the largest, the nearest)."""
    centres = np.array([((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in boxes])
    return int(np.argmin(np.linalg.norm(centres - np.array(size) / 2, axis=1)))


def central_detection(image: Image.Image) -> Detection:
    """A stand-in box for a face the detector missed: the middle of a face-centred image."""
    w, h = image.size
    box = (0.3 * w, 0.28 * h, 0.7 * w, 0.72 * h)
    eyes = np.array([[0.41 * w, 0.45 * h], [0.59 * w, 0.45 * h]])
    return Detection(box, np.vstack([eyes, np.zeros((4, 2))]), 0.0)


def ours(
    pipe: FacePipeline, root: Path, paths: list[Path], cache_dir: Path
) -> dict[str, np.ndarray]:
    """Per image (its face nearest the centre): its template as a live probe (``live``)
    and as a kept reference (``reference``), the template of its degraded card photo
    (``card``, a reference), flags.

    ``found``: the detector found a face (else the central box was used);
    ``card_ok``: the degraded card photo yielded a template.
    """

    def compute() -> dict[str, np.ndarray]:
        n = len(paths)
        live = np.zeros((n, DIM), np.float32)
        reference = np.zeros((n, DIM), np.float32)
        card = np.zeros((n, DIM), np.float32)
        found = np.zeros(n, bool)
        card_ok = np.zeros(n, bool)
        for i, path in enumerate(tqdm(paths, desc="our pipeline", unit="img")):
            image = Image.open(path).convert("RGB")
            dets = pipe.detect(image)
            det = (
                dets[nearest_centre([d.box for d in dets], image.size)]
                if dets
                else central_detection(image)
            )
            found[i] = bool(dets)
            marks = pipe.landmarks(image, det) or pipe.landmarks(image, central_detection(image))
            if marks is None:
                continue
            chip = pipe.align(image, marks)
            live[i], reference[i] = pipe.embed(chip), pipe.reference(chip)
            card_face = pipe.card_photo(card_photo(image, det.box)) if dets else None
            if card_face is not None:
                card[i], card_ok[i] = card_face.template, True
        return {
            "live": live,
            "reference": reference,
            "card": card,
            "found": found,
            "card_ok": card_ok,
        }

    # a PAD model does not change templates: keyed by the face models alone
    key = content_key(root, paths, f"lifecert face models {face_version(pipe.manifest.models)}")
    names = [p.relative_to(root).as_posix() for p in paths]
    return _cached(cache_dir / f"ours-{key}.npz", names, compute)


def dlib_pipeline(
    pipe: FacePipeline, root: Path, paths: list[Path], cache_dir: Path
) -> dict[str, np.ndarray]:
    """dlib's own pipeline (HOG detector, 5-point predictor, ResNet; the face nearest the
    centre) per image, and, when the bundle's embedder is the converted ResNet, it on
    dlib's chip (conversion parity)."""
    import dlib
    import face_recognition_models as frm

    converted = pipe.manifest.models["embedder"].type == "dlib_resnet_v1"

    def compute() -> dict[str, np.ndarray]:
        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        resnet = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        n = len(paths)
        ref = np.zeros((n, DIM), np.float32)
        conv = np.zeros((n, DIM), np.float32)
        found = np.zeros(n, bool)
        for i, path in enumerate(tqdm(paths, desc="dlib pipeline", unit="img")):
            img = np.asarray(Image.open(path).convert("RGB"))
            rects = detector(img, 1)
            found[i] = len(rects) > 0
            h, w = img.shape[:2]
            boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
            rect = (
                rects[nearest_centre(boxes, (w, h))]
                if rects
                else dlib.rectangle(int(0.25 * w), int(0.25 * h), int(0.75 * w), int(0.75 * h))
            )
            chip = dlib.get_face_chip(img, predictor(img, rect), size=150, padding=0.25)
            ref[i] = np.array(resnet.compute_face_descriptor(chip))
            if converted:
                conv[i] = pipe.embedder.network(chip)
        result = {"dlib": ref, "found": found}
        return {**result, "converted": conv} if converted else result

    embedder = pipe.manifest.models["embedder"]
    models = f"dlib {dlib.__version__}" + (
        f" and {embedder.file}@{embedder.sha256}" if converted else ""
    )
    key = content_key(root, paths, models)
    names = [p.relative_to(root).as_posix() for p in paths]
    return _cached(cache_dir / f"dlib-{key}.npz", names, compute)
