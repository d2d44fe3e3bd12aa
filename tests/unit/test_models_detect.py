"""BlazeFace anchors, decoding and weighted NMS."""

import numpy as np
import pytest

from models.face.detect import anchors, decode, iou, letterbox, weighted_nms


def test_anchor_grid_matches_the_models_896_outputs() -> None:
    a = anchors()
    assert a.shape == (896, 2)
    # stride 8: 16x16 cells, 2 anchors each, row-major, centred in the cell
    assert a[0] == pytest.approx([0.5 / 16, 0.5 / 16])
    assert a[1] == pytest.approx(a[0])
    assert a[2] == pytest.approx([1.5 / 16, 0.5 / 16])
    assert a[32] == pytest.approx([0.5 / 16, 1.5 / 16])
    # the three stride-16 layers share one 8x8 grid: 6 anchors per cell
    assert a[512] == pytest.approx([0.5 / 8, 0.5 / 8])
    assert np.allclose(a[512:518], a[512])
    assert a[518] == pytest.approx([1.5 / 8, 0.5 / 8])
    assert a[-1] == pytest.approx([7.5 / 8, 7.5 / 8])


def test_decode_offsets_are_relative_to_the_anchor_in_pixels_of_128() -> None:
    a = anchors()
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    i = 600
    reg[0, i, :4] = [12.8, -6.4, 32.0, 64.0]  # dx, dy, w, h in input pixels
    reg[0, i, 4:6] = [-8.0, 4.0]  # first key point
    logits[0, i, 0] = 2.0
    boxes, points, scores = decode(reg, logits, a, min_score=0.5)
    assert len(boxes) == 1
    cx, cy = a[i] + [0.1, -0.05]
    assert boxes[0] == pytest.approx([cx - 0.125, cy - 0.25, cx + 0.125, cy + 0.25])
    assert points[0, 0] == pytest.approx(a[i] + [-0.0625, 0.03125])
    assert points[0, 1] == pytest.approx(a[i])
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_decode_drops_low_scores_and_survives_extreme_logits() -> None:
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -1e30, np.float32)
    logits[0, 3, 0] = 1e30
    boxes, _, scores = decode(reg, logits, anchors(), min_score=0.5)
    assert len(boxes) == 1 and scores[0] == pytest.approx(1.0)


def test_iou() -> None:
    box = np.array([0.0, 0.0, 2.0, 2.0])
    others = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    assert iou(box, others) == pytest.approx([1.0, 1 / 3, 0.0])


def test_weighted_nms_averages_a_cluster_and_keeps_separate_faces() -> None:
    boxes = np.array(
        [[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]], dtype=np.float64
    )
    points = np.zeros((3, 6, 2))
    points[1] += 1.0
    scores = np.array([0.9, 0.6, 0.7])
    out = weighted_nms(boxes, points, scores, iou_threshold=0.3)
    assert len(out) == 2
    (box, pts, score), (box2, _, score2) = out
    assert score == pytest.approx(0.9) and score2 == pytest.approx(0.7)
    assert box == pytest.approx([0.04, 0.0, 1.04, 1.0])  # weights 0.6 / 0.4
    assert pts[0] == pytest.approx([0.4, 0.4])
    assert box2 == pytest.approx([3.0, 3.0, 4.0, 4.0])


def test_weighted_nms_keeps_boxes_below_the_overlap_threshold() -> None:
    boxes = np.array([[0.0, 0.0, 2.0, 2.0], [1.5, 0.0, 3.5, 2.0]])
    out = weighted_nms(boxes, np.zeros((2, 6, 2)), np.array([0.8, 0.9]), iou_threshold=0.3)
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.8]


def test_letterbox_centres_the_image() -> None:
    scale, px, py = letterbox(640, 480)
    assert scale == pytest.approx(0.2)
    assert (px, py) == pytest.approx((0.0, 16.0))
