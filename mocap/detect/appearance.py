"""Appearance descriptors for cross-view re-identification.

A person's clothing colours look alike from every camera, while body shape and pose do not. The
descriptor is two hue-saturation histograms, of the torso (the shoulders-hips quadrilateral) and
of the legs (the hips-knees-ankles region), each L1-normalised; compare two descriptors with
:func:`appearance_similarity` (Bhattacharyya coefficient averaged over the regions, 1 = same).
"""

from __future__ import annotations

import cv2
import numpy as np

from mocap._checks import check_shape
from mocap.skeleton.joints import BLAZEPOSE_33

HUE_BINS = 8
SAT_BINS = 4
REGION_NAMES = ("torso", "legs")
DESCRIPTOR_SIZE = len(REGION_NAMES) * HUE_BINS * SAT_BINS
MIN_VISIBILITY = 0.5
MIN_REGION_PIXELS = 50

_J = {n: i for i, n in enumerate(BLAZEPOSE_33)}
#: Polygons (joint indices, in drawing order) of each region.
_REGIONS = (
    (_J["left_shoulder"], _J["right_shoulder"], _J["right_hip"], _J["left_hip"]),
    (_J["left_hip"], _J["right_hip"], _J["right_knee"], _J["right_ankle"], _J["left_ankle"], _J["left_knee"]),
)


def _shrink(poly: np.ndarray, factor: float) -> np.ndarray:
    """Pull a polygon towards its centroid so that background at the outline stays out."""
    c = poly.mean(axis=0)
    return c + factor * (poly - c)


def appearance_descriptors(frame_bgr: np.ndarray, keypoints: np.ndarray, joint_names=BLAZEPOSE_33) -> np.ndarray:
    """Colour descriptors of the people in one frame.

    Args:
        frame_bgr: ``(H, W, 3)`` uint8 image.
        keypoints: ``(P, J, 3)`` x px, y px, confidence (NaN for missing), ``joint_names`` order.

    Returns:
        ``(P, D)`` float32, ``D = 64`` (torso then legs, 8 hue × 4 saturation bins each, each
        region summing to 1); a region is NaN where its joints are missing or not visible, or it
        covers fewer than 50 pixels.
    """
    keypoints = check_shape(keypoints, "P J 3", "keypoints")
    if tuple(joint_names) != BLAZEPOSE_33:
        idx = {n: i for i, n in enumerate(joint_names)}
        keypoints = np.stack([keypoints[:, idx[n]] if n in idx else np.full((len(keypoints), 3), np.nan)
                              for n in BLAZEPOSE_33], axis=1)
    P = len(keypoints)
    out = np.full((P, DESCRIPTOR_SIZE), np.nan, np.float32)
    if P == 0:
        return out
    hsv = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2HSV)
    H, W = frame_bgr.shape[:2]
    per = HUE_BINS * SAT_BINS
    for p in range(P):  # one histogram per person and region; the pixel work is in OpenCV
        for r, joints in enumerate(_REGIONS):
            pts = keypoints[p, list(joints)]
            if not np.isfinite(pts).all() or (pts[:, 2] < MIN_VISIBILITY).any():
                continue
            poly = _shrink(pts[:, :2], 0.8)
            x0, y0 = np.clip(np.floor(poly.min(0)).astype(int), 0, [W, H])
            x1, y1 = np.clip(np.ceil(poly.max(0)).astype(int) + 1, 0, [W, H])
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 255)
            if int(np.count_nonzero(mask)) < MIN_REGION_PIXELS:
                continue
            hist = cv2.calcHist([hsv[y0:y1, x0:x1]], [0, 1], mask, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
            out[p, r * per:(r + 1) * per] = hist / hist.sum()
    return out


def appearance_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity in [0, 1] of descriptors ``a (..., D)`` and ``b (..., D)`` (broadcast).

    The Bhattacharyya coefficient per region, averaged over the regions both descriptors have;
    NaN when they share none.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    bc = np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None)).reshape(*shape, len(REGION_NAMES), -1).sum(-1)
    valid = np.isfinite(bc)
    n = valid.sum(axis=-1)
    total = np.where(valid, bc, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)
