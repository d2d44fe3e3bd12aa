"""Vein extraction and matching on real campus64 crops, and their invariants."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.vein import VeinParams, extract, match, pack, unpack
from models.vein.curvature import maximum_curvature
from models.vein.evaluate import error_rates
from models.vein.region import finger_mask
from models.vein.scoring import score_matrix


def load(shared_data: Path, finger: int, capture: int) -> np.ndarray:
    with Image.open(shared_data / f"vein/campus64/F{finger:02d}{capture:02d}.bmp") as img:
        return np.asarray(img.convert("L"))


@pytest.fixture(scope="module")
def templates(shared_data: Path) -> dict[tuple[int, int], np.ndarray]:
    return {(f, c): extract(load(shared_data, f, c)) for f in (1, 2, 3) for c in (1, 5, 10)}


def test_template_shape_and_density(templates: dict[tuple[int, int], np.ndarray]) -> None:
    for template in templates.values():
        assert template.shape == (170, 96) and template.dtype == bool
        assert 0.02 < template.mean() < 0.2  # vein lines, not blobs or nothing


def test_same_finger_scores_above_other_fingers(
    templates: dict[tuple[int, int], np.ndarray],
) -> None:
    keys = sorted(templates)
    genuine, impostor = [], []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            score = match(templates[a], templates[b])
            (genuine if a[0] == b[0] else impostor).append(score)
    assert min(genuine) > max(impostor)


def test_identical_templates_score_near_half(templates: dict[tuple[int, int], np.ndarray]) -> None:
    t = templates[(1, 1)]
    assert match(t, t) == pytest.approx(0.5, abs=0.01)


def test_shift_within_the_search_is_tolerated(templates: dict[tuple[int, int], np.ndarray]) -> None:
    t = templates[(2, 1)]
    shifted = np.roll(t, (12, -7), axis=(0, 1))
    assert match(t, shifted) > 0.45
    far = np.roll(t, (40, 0), axis=(0, 1))
    assert match(t, far) < 0.3


def test_batched_scores_equal_pairwise(templates: dict[tuple[int, int], np.ndarray]) -> None:
    keys = sorted(templates)
    matrix = score_matrix([templates[k] for k in keys])
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            assert matrix[i, j] == pytest.approx(match(templates[keys[i]], templates[keys[j]]))


def test_empty_templates_score_zero() -> None:
    empty = np.zeros((170, 96), bool)
    assert match(empty, empty) == 0.0


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        match(np.zeros((170, 96), bool), np.zeros((170, 80), bool))


def test_other_image_heights_are_scaled(shared_data: Path) -> None:
    image = load(shared_data, 1, 1)
    big = np.asarray(Image.fromarray(image).resize((152, 340)))
    assert extract(big).shape == (170, 96)
    assert match(extract(image), extract(big)) > 0.2


def test_pack_round_trip(templates: dict[tuple[int, int], np.ndarray]) -> None:
    t = templates[(3, 5)]
    data = pack(t)
    assert len(data) == 6 + 170 * 96 // 8
    assert np.array_equal(unpack(data), t)
    with pytest.raises(ValueError):
        unpack(data[:-1])
    with pytest.raises(ValueError):
        unpack(b"XX" + data[2:])


def test_vein_is_a_valley_response() -> None:
    """A dark vertical line on a bright finger is found where it is, not elsewhere."""
    image = np.full((60, 40), 180.0)
    image[:, 18:21] = 120.0
    strength = maximum_curvature(image, np.ones(image.shape, bool), sigma=2.0)
    columns = strength.sum(axis=0)
    assert int(np.argmax(columns)) in (18, 19, 20)
    assert columns[:10].sum() == 0


def test_finger_mask_finds_the_edges() -> None:
    image = np.zeros((50, 80), np.uint8)
    image[:, 12:70] = 160
    mask = finger_mask(image)
    assert mask[:, 20:60].all()
    assert not mask[:, :8].any() and not mask[:, 74:].any()


def test_error_rates_on_known_scores() -> None:
    genuine = np.array([0.30, 0.35, 0.40, 0.12])
    impostor = np.linspace(0.0, 0.2, 1001)
    rates = error_rates(genuine, impostor)
    assert rates.fnmr_at_fmr == 0.25  # 0.12 falls below the FMR 1e-3 threshold
    assert rates.threshold_at_fmr == pytest.approx(0.2)
    assert rates.eer == pytest.approx(0.25, abs=0.2)


def test_params_change_the_template(shared_data: Path) -> None:
    image = load(shared_data, 1, 1)
    assert not np.array_equal(extract(image), extract(image, VeinParams(sigma=2.0)))
