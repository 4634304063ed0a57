"""SSD anchors, box decoding and weighted non-maximum suppression for BlazePose's person detector.

The published detector (``pose_detection.tflite``, 224×224 input) predicts, for each of 2254
anchors, 12 numbers and one score logit. The numbers are ``(dx, dy, w, h)`` of a box (the face
region) followed by 4 keypoints ``(x, y)``: 0 the mid-hip centre, 1 a point whose distance from
it is half the full-body size and whose direction gives the body's rotation, 2 the mid-shoulder
centre, 3 the same kind of point for the upper body. All are in input pixels, relative to the
anchor centre. Anchors: feature maps of strides 8, 16, 32, 32, 32 (layers of equal stride share one
grid), two anchors per layer and cell, all of unit size ("fixed anchor size"), centred on the
cells: 28²·2 + 14²·2 + 7²·6 = 2254.
"""

from __future__ import annotations

import numpy as np

DETECTOR_INPUT = 224
STRIDES = (8, 16, 32, 32, 32)
ANCHORS_PER_LAYER = 2  # one aspect ratio (1.0) + one interpolated scale
NUM_KEYPOINTS = 4


def ssd_anchors(input_size: int = DETECTOR_INPUT, strides=STRIDES) -> np.ndarray:
    """Anchor centres ``(N, 2)`` (x, y) normalised to [0, 1], in the detector's output order.

    Layers with the same stride are merged into one grid with their anchors interleaved per cell,
    so the order is: per stride group, row-major over cells, then anchors of the cell.
    """
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n_per_cell = ANCHORS_PER_LAYER * (j - i)
        size = int(np.ceil(input_size / strides[i]))
        ys, xs = np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        centres.append(np.repeat(grid, n_per_cell, axis=0))
        i = j
    return np.concatenate(centres, axis=0)


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                      min_score: float = 0.5, input_size: int = DETECTOR_INPUT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the detector's raw outputs for one image.

    Args:
        raw_boxes: ``(N, 12)`` raw regressions.
        raw_scores: ``(N,)`` or ``(N, 1)`` score logits.
        anchors: ``(N, 2)`` from :func:`ssd_anchors`.
        min_score: keep anchors whose sigmoid score is at least this.

    Returns:
        ``boxes (M, 4)`` (x_min, y_min, x_max, y_max), ``keypoints (M, 4, 2)``, ``scores (M,)``, all
        normalised to the detector input ([0, 1]), for the ``M`` anchors above ``min_score``.
    """
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    raw = np.asarray(raw_boxes, dtype=np.float64)[keep] / input_size
    centre = anchors[keep]
    xy = raw[:, 0:2] + centre
    half = 0.5 * raw[:, 2:4]
    boxes = np.concatenate([xy - half, xy + half], axis=1)
    keypoints = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
    return boxes, keypoints, scores[keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union ``(N, M)`` of boxes ``(N, 4)`` and ``(M, 4)`` (x0, y0, x1, y1)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted non-maximum suppression (the "blending" variant of BlazeFace/BlazePose).

    Candidates are taken in descending score; each seeds a cluster of every remaining candidate
    overlapping it by more than ``iou_threshold``, and the cluster's boxes and keypoints are
    averaged with the scores as weights (averaging many overlapping anchors is steadier than
    keeping the single best). The cluster keeps its best score.

    Args:
        boxes: ``(M, 4)``; keypoints: ``(M, K, 2)``; scores: ``(M,)``.

    Returns:
        ``boxes (D, 4)``, ``keypoints (D, K, 2)``, ``scores (D,)`` for ``D`` people, best first.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    iou = box_iou(boxes, boxes)
    alive = np.ones(len(scores), dtype=bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):  # one iteration per person found, not per anchor
        if not alive[i]:
            continue
        cluster = alive & (iou[i] > iou_threshold)
        cluster[i] = True
        w = scores[cluster] / scores[cluster].sum()
        out_b.append(w @ boxes[cluster])
        out_k.append(np.einsum("m,mkd->kd", w, keypoints[cluster]))
        out_s.append(scores[i])
        alive &= ~cluster
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, keypoints.shape[1], 2)), np.zeros(0)
    return np.array(out_b), np.array(out_k), np.array(out_s)
