"""Similarity fits and dlib's face-chip geometry."""

import numpy as np
import pytest
from PIL import Image

from models.face.align import MEAN_FACE_5, align, chip_points, chip_transform
from models.face.geometry import apply_affine, fit_similarity


def _similarity(scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def test_fit_similarity_recovers_an_exact_transform() -> None:
    m = _similarity(1.7, 0.3, (12.0, -4.0))
    src = np.random.default_rng(1).uniform(0, 100, (7, 2))
    assert fit_similarity(src, apply_affine(m, src)) == pytest.approx(m)


def test_chip_points_follow_dlibs_padding_rule() -> None:
    pts = chip_points(150, 0.25)
    assert pts == pytest.approx((0.25 + MEAN_FACE_5) / 1.5 * 150)
    # without padding the mean face spans the chip
    assert chip_points(100, 0.0) == pytest.approx(MEAN_FACE_5 * 100)


def test_aligned_chip_puts_the_five_points_on_the_mean_face() -> None:
    """Paint dots at five transformed template points; alignment brings them back home."""
    m = _similarity(1.6, -0.4, (60.0, 40.0))
    points = apply_affine(m, chip_points())
    canvas = np.zeros((400, 400, 3), np.uint8)
    for k, (x, y) in enumerate(points):
        xi, yi = int(x), int(y)
        canvas[yi - 2 : yi + 3, xi - 2 : xi + 3] = (50 * (k + 1), 255, 0)
    chip = align(Image.fromarray(canvas), points)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    for k, (x, y) in enumerate(chip_points()):
        patch = chip[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3, 0]
        assert abs(float(patch.max()) - 50 * (k + 1)) < 40
    assert chip_transform(points) == pytest.approx(m, abs=1e-9)


def test_alignment_matches_dlib_get_face_chip() -> None:
    dlib = pytest.importorskip("dlib", reason="dlib-bin (dev extra) not installed")
    rng = np.random.default_rng(7)
    texture = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(texture).resize((300, 300), Image.Resampling.BILINEAR))
    jitter = np.array([3.0, -2.0])  # not an exact similarity image of the template
    pts = np.round(apply_affine(_similarity(1.3, 0.2, (50.0, 45.0)), chip_points()) + jitter)
    shape = dlib.full_object_detection(
        dlib.rectangle(0, 0, 299, 299), [dlib.point(int(x), int(y)) for x, y in pts]
    )
    ref = dlib.get_face_chip(img, shape, size=150, padding=0.25).astype(float)
    ours = align(Image.fromarray(img), pts + 0.5).astype(float)  # dlib: pixel indices
    assert np.abs(ref - ours)[4:-4, 4:-4].mean() < 2.0


def test_sample_averages_when_shrinking_and_interpolates_when_enlarging() -> None:
    from models.face.geometry import sample

    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    image = Image.fromarray(np.dstack([checker] * 3))
    shrunk = np.asarray(sample(image, _similarity(2.0, 0.0, (0.0, 0.0)), (32, 32)))
    assert np.abs(shrunk.astype(int) - 127).max() <= 1  # 2x2 cells averaged, no aliasing
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    grown = np.asarray(
        sample(Image.fromarray(np.dstack([ramp] * 3)), _similarity(0.5, 0.0, (0.0, 0.0)), (32, 32))
    )[8, 4:28, 0].astype(int)
    assert len(set(grown.tolist())) > 16  # bilinear: values between the 16 source grey levels
    assert (np.diff(grown) >= 0).all()


def test_sface_chip_puts_the_mesh_five_points_on_opencvs_template() -> None:
    """Mesh points whose eye contours, nose tip and mouth corners sit at a similarity image
    of the template: the SFace chip brings painted dots back onto the template."""
    from models.face.landmarks import FaceLandmarks
    from models.face.sface import SFACE5_FROM_MESH, TEMPLATE, chip, five_points

    m = _similarity(2.2, 0.3, (80.0, 30.0))
    targets = apply_affine(m, TEMPLATE)
    mesh = np.zeros((468, 3))
    canvas = np.zeros((400, 400, 3), np.uint8)
    for k, (ix, (x, y)) in enumerate(zip(SFACE5_FROM_MESH, targets, strict=True)):
        spread = np.linspace(-3, 3, len(ix)) if len(ix) > 1 else np.zeros(1)
        mesh[list(ix), 0], mesh[list(ix), 1] = x + spread, y - spread  # mean: the target
        canvas[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = (40 * (k + 1), 255, 0)
    marks = FaceLandmarks(mesh, 1.0)
    assert five_points(marks) == pytest.approx(targets)
    out = chip(Image.fromarray(canvas), marks)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    for k, (x, y) in enumerate(TEMPLATE):
        patch = out[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2, 0]
        assert abs(float(patch.max()) - 40 * (k + 1)) < 30
