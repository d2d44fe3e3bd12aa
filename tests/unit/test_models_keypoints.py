"""YuNet's output decoding and the choice of the face the mesh found."""

import numpy as np

from models.face.keypoints import STRIDES, decode


def _outputs(width: int, height: int) -> list[np.ndarray]:
    """YuNet's twelve outputs, all cells scoring nothing."""
    out: list[np.ndarray] = []
    for channels in (1, 1, 4, 10):
        out += [np.zeros((1, (width // s) * (height // s) * channels), np.float32) for s in STRIDES]
    return out


def _plant(out: list[np.ndarray], stride_index: int, col: int, row: int, cols: int,
           score: float, kps: np.ndarray) -> None:  # fmt: skip
    cell = row * cols + col
    out[stride_index][0, cell] = score**2  # class x objectness = score^2
    out[3 + stride_index][0, cell] = 1.0
    out[9 + stride_index][0, cell * 10 : cell * 10 + 10] = kps.reshape(-1)


def test_a_cell_decodes_to_offsets_plus_its_grid_position_times_the_stride() -> None:
    width, height = 64, 32
    out = _outputs(width, height)
    offsets = np.array([[0.5, 1.0], [2.0, 1.0], [1.0, 2.0], [0.5, 3.0], [2.0, 3.0]])
    _plant(out, 1, col=2, row=1, cols=width // 16, score=0.9, kps=offsets)
    scores, points = decode(out, width, height)
    assert scores.shape == (8 * 4 + 4 * 2 + 2 * 1,) and points.shape == (42, 5, 2)
    best = int(np.argmax(scores))
    assert np.isclose(scores[best], 0.9)
    # (offset + (col, row)) * stride, + 0.5 into continuous pixel coordinates
    np.testing.assert_allclose(points[best], (offsets + np.array([2, 1])) * 16 + 0.5)


def test_scores_outside_zero_one_are_clipped_like_opencv() -> None:
    out = _outputs(32, 32)
    out[0][0, 0], out[3][0, 0] = 1.5, -0.2
    out[0][0, 1], out[3][0, 1] = 1.5, 0.25
    scores, _ = decode(out, 32, 32)
    assert scores[0] == 0.0 and np.isclose(scores[1], 0.5)
