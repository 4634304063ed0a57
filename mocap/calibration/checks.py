"""Is a calibration plausible? Coverage of each camera's board views and sanity limits per camera.

A least-squares fit always returns numbers; these checks decide whether the numbers may be called
a calibration. Each check returns reasons (one line each, naming the camera, the measured value
and what to do); an empty list means the camera passed.

* **Coverage** (:func:`view_coverage`): the share of the image the board corners reached (their
  convex hull over the image area) and the spread of board tilts (angle between the
  board normal and the optical axis, per view). A lens fit from views all in one spot or all
  facing the camera cannot separate focal length from distance and distortion from position.
* **Intrinsics** (:func:`intrinsic_problems`): RMS, focal length against the image size, coverage.
* **Rig** (:func:`rig_problems`): per camera RMS, inlier share, board views agreeing with the
  other cameras' (frames not simultaneous), and the board's square length measured in 3D.
"""

from __future__ import annotations

import numpy as np

from mocap.calibration.boards import Board

MAX_RMS_PX = 2.0  # a board fit worse than this is a wrong board, a wrong corner order or unsynchronised views;
#                   good fits measure 0.18-0.6 px on the real data (OpenCV, Pose2Sim, caliscope)
FOCAL_RANGE = (0.15, 6.0)  # fx / image width: fields of view from about 150 deg down to 10 deg
MIN_COVERAGE = 0.2  # convex hull of the corners over the image area; the caliscope extrinsic videos
#                     reach 0.04-0.13 (their lens fits: fx 2-21 % off), the Pose2Sim and OpenCV image sets 0.3-0.8
MIN_TILT_SPREAD_DEG = 10.0  # largest minus smallest board tilt; a board always facing the camera
#                             leaves focal length and distance coupled (Zhang 2000, sec. 3.3)
MIN_INLIER_SHARE = 0.8  # of a camera's corner observations kept by the bundle adjustment
MIN_AGREE_SHARE = 0.5  # of a camera pair's shared frames agreeing with the pair's consensus pose
MAX_SQUARE_ERROR = 0.02  # |mean error| of the 3D square length, as a share of the printed square


def view_coverage(xy: np.ndarray, image_size: tuple[int, int], cam_from_board: np.ndarray) -> dict:
    """Coverage of one camera's board views.

    Args:
        xy: ``(F, N, 2)`` pixel corners, NaN-missing.
        image_size: ``(width, height)`` pixels.
        cam_from_board: ``(F, 4, 4)`` board pose per view (NaN where not solved).

    Returns:
        ``{"image_share": float in [0, 1], "tilt_min_deg", "tilt_max_deg", "tilt_spread_deg",
        "views": int}``.
    """
    import cv2

    w, h = image_size
    pts = xy.reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(-1)].astype(np.float32)
    # the convex hull of every corner seen: a board kept in one band or one spot covers little of it
    share = cv2.contourArea(cv2.convexHull(pts)) / (w * h) if len(pts) >= 3 else 0.0
    ok = np.isfinite(cam_from_board[:, 0, 0])
    # board normal in the camera frame is the third column of R; tilt = angle to the optical axis
    tilt = np.degrees(np.arccos(np.clip(np.abs(cam_from_board[ok, 2, 2]), 0, 1))) if ok.any() else np.array([np.nan])
    return {"image_share": float(share), "tilt_min_deg": float(np.min(tilt)), "tilt_max_deg": float(np.max(tilt)),
            "tilt_spread_deg": float(np.max(tilt) - np.min(tilt)), "views": int(ok.sum())}


def coverage_problem(camera: str, cov: dict) -> list[str]:
    """Reasons (``[]`` or one line) why ``cov`` (:func:`view_coverage`) is too little for a lens fit."""
    low_share = cov["image_share"] < MIN_COVERAGE
    low_tilt = not cov["tilt_spread_deg"] >= MIN_TILT_SPREAD_DEG
    if not (low_share or low_tilt):
        return []
    what = []
    if low_share:
        what.append(f"the board reached only {cov['image_share']:.0%} of the image (need {MIN_COVERAGE:.0%})")
    if low_tilt:
        what.append(f"its tilts spread only {cov['tilt_spread_deg']:.0f}° (need {MIN_TILT_SPREAD_DEG:.0f}°)")
    return [f"camera {camera}: too little board coverage for its lens: {' and '.join(what)}; record the board "
            "near every edge and corner of the image and tilted 30-45° each way (see its coverage picture), "
            "or give intrinsics calibrated on their own (--intrinsics)"]


def intrinsic_problems(camera: str, K: np.ndarray, image_size: tuple[int, int], rms_px: float,
                       cov: dict | None = None) -> list[str]:
    """Reasons a camera's intrinsics ``K (3, 3)`` with fit ``rms_px`` are implausible (``[]``: plausible)."""
    out = []
    w = image_size[0]
    if not np.isfinite(K).all():
        return [f"camera {camera}: no intrinsics could be fitted"]
    if not rms_px <= MAX_RMS_PX:
        out.append(f"camera {camera}: board reprojection RMS {rms_px:.2f} px is above {MAX_RMS_PX:g} px: a wrong board "
                   "definition (corner count, square size) or corners found on something else; check --board")
    lo, hi = FOCAL_RANGE[0] * w, FOCAL_RANGE[1] * w
    for axis, f in (("fx", K[0, 0]), ("fy", K[1, 1])):
        if not lo <= f <= hi:
            out.append(f"camera {camera}: {axis} {f:.1f} px is implausible for an image {w} px wide "
                       f"(expected {lo:.0f}-{hi:.0f} px); the views do not constrain the lens")
            break
    if cov is not None:
        out += coverage_problem(camera, cov)
    return out


def pair_problems(names: list[str], shared: np.ndarray, agree: np.ndarray, min_shared: int = 3) -> dict[str, list[str]]:
    """Cameras whose board views disagree with another camera's in most shared frames.

    ``shared``, ``agree`` ``(C, C)`` int (see :class:`~mocap.calibration.extrinsics.ExtrinsicInit`). The
    camera of a bad pair that is in more bad pairs is named (the later one on a tie).
    """
    C = len(names)
    bad = np.zeros((C, C), bool)
    for a in range(C):
        for b in range(a + 1, C):
            if shared[a, b] >= min_shared and agree[a, b] < MIN_AGREE_SHARE * shared[a, b]:
                bad[a, b] = bad[b, a] = True
    out: dict[str, list[str]] = {}
    for a, b in zip(*np.nonzero(np.triu(bad))):
        c, other = (a, b) if bad[a].sum() > bad[b].sum() else (b, a)
        out.setdefault(names[c], []).append(
            f"camera {names[c]}: its board views agree with camera {names[other]}'s in only {agree[a, b]} of "
            f"{shared[a, b]} shared frames: these images look not simultaneous with {names[other]}; run "
            "`mocap calibrate intrinsics` per camera first, then `mocap calibrate extrinsics` on views taken at "
            "the same instant")
    return out


def rig_problems(names: list[str], cam_rms: dict[str, float], inlier_share: dict[str, float],
                 square_mean_error_m: float, board: Board) -> dict[str, list[str]]:
    """Per-camera reasons a solved rig is implausible (RMS, inlier share), plus the rig-wide square
    length check under the key ``"rig"``."""
    out: dict[str, list[str]] = {}
    for n in names:
        r = []
        if not cam_rms.get(n, np.nan) <= MAX_RMS_PX:
            r.append(f"camera {n}: reprojection RMS {cam_rms.get(n, np.nan):.2f} px after the bundle adjustment is "
                     f"above {MAX_RMS_PX:g} px; check --board and that its frames are simultaneous with the others'")
        if not inlier_share.get(n, 0.0) >= MIN_INLIER_SHARE:
            r.append(f"camera {n}: only {inlier_share.get(n, 0.0):.0%} of its board corners fit the solved rig "
                     f"(need {MIN_INLIER_SHARE:.0%}); its views disagree with the other cameras'")
        if r:
            out[n] = r
    if np.isfinite(square_mean_error_m) and abs(square_mean_error_m) > MAX_SQUARE_ERROR * board.square_size:
        out["rig"] = [f"square length check: the board's squares measure {square_mean_error_m * 1000:+.1f} mm off "
                      f"the printed {board.square_size * 1000:g} mm in 3D; the cameras do not agree on the board "
                      "(views not simultaneous, or wrong intrinsics)"]
    return out
