"""Per-camera intrinsics from board views: frame selection, OpenCV fit, bad-frame rejection.

The fit is ``cv2.calibrateCamera`` with the full model (fx, fy, cx, cy, k1, k2, p1, p2, k3), on a
subset of frames chosen for diversity (position, size and tilt of the board in the image) so that
a long video does not give hundreds of near-identical views. Frames whose own RMS is far above the
others (motion blur, a mis-detected corner) are dropped and the fit is redone.

A printed board is rarely flat to a tenth of a millimetre (paper on card curls at the edges). When
every view shows the whole board, the fit is redone with the board's corners released
(``cv2.calibrateCameraRO``, Strobl & Hirzinger 2011: the corners' 3D positions are estimated with
the lens, the scale held by two fixed corners) and kept when the Bayesian information criterion
says the warp is real, not noise fitted away. On OpenCV's 9×6 samples the left and right cameras,
from different images, recover the same warp (up to 0.5 mm out of plane) and the RMS drops from
0.18 to 0.11 px; on a flat rendered board, or a few views, the criterion keeps the flat board.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mocap.calibration.boards import Board
from mocap.calibration.detect_corners import Detections

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class IntrinsicsResult:
    """Outcome of one camera's intrinsic calibration.

    Attributes:
        camera: camera name.
        image_size: ``(width, height)``.
        K: ``(3, 3)`` intrinsic matrix (NaN when ``ok`` is False).
        dist: ``(5,)`` ``k1, k2, p1, p2, k3``.
        rms_px: RMS reprojection error over the frames used, pixels.
        used: ``(T,)`` bool, frames in the final fit.
        frame_rms: ``(T,)`` per-frame RMS in the final fit, NaN for frames not used.
        rejected: ``{frame index: reason}`` for frames dropped as outliers.
        ok: whether a calibration was obtained.
        message: why not, or a summary.
    """

    camera: str
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    rms_px: float
    used: np.ndarray
    frame_rms: np.ndarray
    rejected: dict = field(default_factory=dict)
    ok: bool = True
    message: str = ""
    sd: np.ndarray | None = None
    """``(4,)`` standard deviations of fx, fy, cx, cy (pixels) from the fit's covariance, or None."""
    board_warp_m: float = 0.0
    """How far the board's corners were found out of its plane (metres; 0: fitted as flat)."""

    def __bool__(self) -> bool:
        return self.ok


def usable_frames(det: Detections, board: Board) -> np.ndarray:
    """Frames ``(T,)`` whose corners constrain a homography: enough corners, not all on one line."""
    valid = det.valid.copy()
    obj = board.object_points[:, :2]
    for t in np.flatnonzero(valid):
        seen = np.isfinite(det.xy[t, :, 0])
        p = obj[seen] - obj[seen].mean(0)
        valid[t] = np.linalg.svd(p, compute_uv=False)[-1] > 1e-9  # both directions spanned
    return valid


def _view_features(det: Detections, board: Board, frames: np.ndarray) -> np.ndarray:
    """Per-frame descriptors ``(F, 5)``: board centre (x, y), log size, perspective tilt (2)."""
    import cv2

    w, h = det.image_size
    obj = board.object_points[:, :2]
    feats = []
    for t in frames:
        seen = np.isfinite(det.xy[t, :, 0])
        img = det.xy[t, seen]
        H, _ = cv2.findHomography(obj[seen], img, 0)
        c = img.mean(0)
        size = np.sqrt(np.prod(img.max(0) - img.min(0)) + 1.0) / np.hypot(w, h)
        if H is None:
            tilt = np.zeros(2)
        else:
            # the projective row of H (normalised by the board's image scale) encodes the tilt
            tilt = H[2, :2] / H[2, 2] * board.square_size * 20
        feats.append([c[0] / w, c[1] / h, np.log(size), *np.clip(tilt, -5, 5)])
    return np.asarray(feats)


def select_diverse_frames(det: Detections, board: Board, frames: np.ndarray, max_frames: int) -> np.ndarray:
    """Greedy farthest-point choice of at most ``max_frames`` of ``frames`` (indices, sorted).

    Starts at the frame with the most corners; each next frame is the one farthest (in
    standardised view descriptors) from all chosen so far.
    """
    frames = np.asarray(frames)
    if len(frames) <= max_frames:
        return frames
    f = _view_features(det, board, frames)
    f = (f - f.mean(0)) / (f.std(0) + 1e-9)
    chosen = [int(np.argmax(det.n_found[frames]))]
    d = np.linalg.norm(f - f[chosen[0]], axis=1)
    while len(chosen) < max_frames:
        k = int(np.argmax(d))
        chosen.append(k)
        d = np.minimum(d, np.linalg.norm(f - f[k], axis=1))
    return np.sort(frames[chosen])


def _fit(det: Detections, board: Board, frames: np.ndarray, flags: int, K0=None, dist0=None):
    import cv2

    obj = board.object_points.astype(np.float32)
    objs, imgs = [], []
    for t in frames:
        seen = np.isfinite(det.xy[t, :, 0])
        objs.append(obj[seen])
        imgs.append(det.xy[t, seen].astype(np.float32))
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    K0 = None if K0 is None else np.array(K0, np.float64)
    dist0 = None if dist0 is None else np.array(dist0, np.float64)
    rms, K, dist, _, _, sd, _, per_view = cv2.calibrateCameraExtended(
        objs, imgs, det.image_size, K0, dist0, flags=flags, criteria=crit)
    return rms, K, dist.ravel()[:5], per_view.ravel(), sd.ravel()[:4]


SCREEN_VIEWS = 13  # the release is first tried on this many views (a flat board stops there, 4x faster)


def _release_wins(n: int, rms_flat: float, rms_released: float, board: Board) -> bool:
    """Bayesian information criterion over ``n`` residual components: are the board's freed corner
    coordinates (all but the 9 that fix the gauge) worth their cost?"""
    extra = 3 * board.n_corners - 9
    bic_released = n * np.log(rms_released ** 2) + extra * np.log(n)
    return bool(np.isfinite(rms_released) and bic_released < n * np.log(rms_flat ** 2))


def _released_fit(det: Detections, board: Board, frames: np.ndarray, flags: int, rms: float):
    """The fit with the board's corners released (:func:`cv2.calibrateCameraROExtended`), or None when
    a view misses a corner or the Bayesian information criterion prefers the flat board (RMS ``rms``).

    With more than :data:`SCREEN_VIEWS` views the criterion is first checked on that many, evenly
    spread; a flat board stops there.

    Returns:
        ``(rms, K, dist (5,), per-view RMS, sd (4,), out-of-plane warp in metres)`` or None.
    """
    import cv2

    xy = det.xy[frames]
    if not np.isfinite(xy).all() or len(frames) < 3:
        return None  # partial views (ChArUco): every view must show the same corners
    obj = board.object_points.astype(np.float32)
    fixed = board.corner_grid[0] - 1  # the far end of the first row: with corner 0 it holds the scale
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    try:
        if len(frames) > SCREEN_VIEWS:
            sub = list(xy[np.linspace(0, len(frames) - 1, SCREEN_VIEWS).round().astype(int)].astype(np.float32))
            flat = cv2.calibrateCamera([obj] * len(sub), sub, det.image_size, None, None, flags=flags, criteria=crit)[0]
            free = cv2.calibrateCameraRO([obj] * len(sub), sub, det.image_size, fixed, None, None, flags=flags,
                                         criteria=crit)[0]
            if not _release_wins(len(sub) * obj.shape[0] * 2, flat, free, board):
                return None
        out = cv2.calibrateCameraROExtended([obj] * len(frames), list(xy.astype(np.float32)), det.image_size, fixed,
                                            None, None, flags=flags, criteria=crit)
    except cv2.error as e:  # a degenerate set of views: keep the flat board's fit
        log.debug("camera %s: no fit with the board released (%s)", det.camera, e)
        return None
    rms_ro, K, dist, new_obj, sd, per_view = out[0], out[1], out[2], out[5], out[6], out[9]
    if not _release_wins(xy.size, rms, rms_ro, board):
        return None
    warp = float(np.abs(np.asarray(new_obj).reshape(-1, 3)[:, 2] - board.object_points[:, 2]).max())
    return rms_ro, K, dist.ravel()[:5], per_view.ravel(), sd.ravel()[:4], warp


def calibrate_intrinsics(det: Detections, board: Board, max_frames: int = 40, reject_factor: float = 3.0,
                         reject_min_px: float = 1.0, max_rounds: int = 3, min_frames: int = 3) -> IntrinsicsResult:
    """Calibrate one camera's intrinsics from its board detections.

    Args:
        det: detections with ``xy (T, N, 2)``.
        board: the board seen.
        max_frames: at most this many frames, chosen by :func:`select_diverse_frames`.
        reject_factor, reject_min_px: a frame is rejected when its RMS exceeds
            ``max(reject_factor * median frame RMS, reject_min_px)``.
        max_rounds: reject-and-refit rounds.
        min_frames: fewer usable frames give ``ok=False`` with a message.

    Returns:
        :class:`IntrinsicsResult` (falsy when the camera could not be calibrated).
    """
    import cv2

    T = len(det.frame_ids)
    nan_result = dict(camera=det.camera, image_size=det.image_size, K=np.full((3, 3), np.nan), dist=np.full(5, np.nan),
                      rms_px=np.nan, used=np.zeros(T, bool), frame_rms=np.full(T, np.nan), ok=False)
    usable = np.flatnonzero(usable_frames(det, board))
    if len(usable) < min_frames:
        return IntrinsicsResult(**nan_result, message=(
            f"camera {det.camera}: board found in {len(usable)} of {T} frames of {det.source} (need {min_frames}); "
            "check the board definition (cols x rows of inner corners), lighting and focus"))
    frames = select_diverse_frames(det, board, usable, max_frames)
    rejected: dict[int, str] = {}
    flags = 0
    if board.n_corners * len(frames) < 60:  # too little data for k3 and tangential terms
        flags = cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST
    for round_ in range(max_rounds):
        rms, K, dist, per_view, sd = _fit(det, board, frames, flags)
        limit = max(reject_factor * float(np.median(per_view)), reject_min_px)
        bad = per_view > limit
        # the last round's fit is the result: frames rejected after it would not match per_view
        if not bad.any() or len(frames) - bad.sum() < min_frames or round_ == max_rounds - 1:
            break
        for t, e in zip(frames[bad], per_view[bad]):
            rejected[int(t)] = f"RMS {e:.2f} px > {limit:.2f} px"
        frames = frames[~bad]
    for t, reason in rejected.items():
        log.info("camera %s: rejected %s (%s)", det.camera, det.frame_label(t), reason)
    released = _released_fit(det, board, frames, flags, rms)
    note, warp = "", 0.0
    if released is not None:
        rms_flat = rms
        rms, K, dist, per_view, sd, warp = released
        note = f", board not flat: up to {warp * 1000:.2f} mm out of plane (RMS {rms_flat:.3f} px as flat)"
        log.info("camera %s: the board is not flat (up to %.2f mm out of plane): its corners are estimated "
                 "with the lens, RMS %.3f -> %.3f px", det.camera, warp * 1000, rms_flat, rms)
    used = np.zeros(T, bool)
    used[frames] = True
    frame_rms = np.full(T, np.nan)
    frame_rms[frames] = per_view
    return IntrinsicsResult(det.camera, det.image_size, K, dist, float(rms), used, frame_rms, rejected, True,
                            f"camera {det.camera}: {len(frames)} frames, RMS {rms:.3f} px, fx {K[0, 0]:.1f}{note}", sd,
                            warp)
