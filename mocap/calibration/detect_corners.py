"""Board corner detection in images, image folders, globs and videos.

Every detection is the board's full corner array ``(N, 2)`` in pixels with NaN rows for corners
not seen (ChArUco boards are often seen in part), so frames, cameras and corners line up by index.
"""

from __future__ import annotations

import glob as globlib
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mocap.calibration.boards import Board, charuco_board
from mocap.errors import CalibrationError, VideoError

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
MIN_CORNERS = 6  # fewer cannot constrain a homography robustly (ChArUco partial views)
_FAST_MAX_SIDE = 1280  # first checkerboard search on a copy at most this large, refined at full size
_DETECT_MAX_SIDE = 1920  # second search (images larger than 1280 px) at up to this size


@dataclass(frozen=True, eq=False)
class Detections:
    """Board corners found in one camera's frames.

    Attributes:
        camera: camera name.
        xy: ``(T, N, 2)`` pixel corners per frame, NaN where a corner (or the board) was not found.
        frame_ids: ``(T,)`` frame index in the source; frames of different cameras with the same id
            are simultaneous.
        image_size: ``(width, height)`` pixels.
        source: where the frames came from (for messages).
        frame_names: ``(T,)`` file name or ``frame <i>`` (for messages).
    """

    camera: str
    xy: np.ndarray
    frame_ids: np.ndarray
    image_size: tuple[int, int]
    source: str = ""
    frame_names: tuple[str, ...] = ()

    @property
    def n_found(self) -> np.ndarray:
        """Corners found per frame ``(T,)``."""
        return np.isfinite(self.xy[..., 0]).sum(-1)

    @property
    def valid(self) -> np.ndarray:
        """Frames usable for calibration ``(T,)`` bool (at least :data:`MIN_CORNERS` corners)."""
        return self.n_found >= MIN_CORNERS

    def frame_label(self, t: int) -> str:
        return self.frame_names[t] if self.frame_names else f"frame {int(self.frame_ids[t])}"


# --------------------------------------------------------------------------------------------
# Single image
# --------------------------------------------------------------------------------------------

def to_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def detect_board(image: np.ndarray, board: Board, thorough: bool = True) -> np.ndarray:
    """Corners of ``board`` in one image.

    Args:
        image: ``(H, W)`` gray or ``(H, W, 3)`` BGR uint8.
        board: the board definition.
        thorough: when the searches on a ≤1280 px and a ≤1920 px copy fail, also try OpenCV's
            sector-based detector (finds blurred and steeply tilted boards; ~0.15 s per 720p
            frame without a board). Worth it for a few still images, not for every frame of a
            long video.

    Returns:
        ``(N, 2)`` float64 pixel corners in board order, NaN rows where not found (all NaN when
        the board is not in the image).
    """
    gray = to_gray(np.asarray(image))
    if board.inverted:
        gray = 255 - gray
    if board.type == "charuco":
        return _detect_charuco(gray, board)
    return _detect_checkerboard(gray, board, thorough)


def _detect_checkerboard(gray: np.ndarray, board: Board, thorough: bool) -> np.ndarray:
    import cv2

    out = np.full((board.n_corners, 2), np.nan)
    pattern = board.corner_grid
    h, w = gray.shape
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    # search a copy of at most 1280 px first (10-20 ms at 720p), then up to 1920 px for larger
    # images (small boards); corners are refined at full resolution afterwards. Thorough mode adds
    # the sector-based detector.
    sides = (_FAST_MAX_SIDE, _DETECT_MAX_SIDE)
    found, scale = False, 1.0
    for i, side in enumerate(sides):
        scale = min(1.0, side / max(h, w))
        if i and scale <= min(1.0, sides[0] / max(h, w)):
            continue  # same size as the first try
        small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
        found, corners = cv2.findChessboardCorners(small, pattern, flags=flags)
        if found:
            break
    if not found and thorough:
        # the sector-based detector finds boards the classic one misses (blur, strong perspective)
        found, corners = cv2.findChessboardCornersSB(small, pattern, flags=cv2.CALIB_CB_EXHAUSTIVE)
    if not found:
        return out
    xy = corners.reshape(-1, 2).astype(np.float64) / scale
    xy = _refine(gray, xy, board)
    xy[_off_grid(xy, board)] = np.nan
    return _orient_checkerboard(gray, xy, board)


def _off_grid(xy: np.ndarray, board: Board, tol: float = 0.2) -> np.ndarray:
    """Corners ``(N,)`` that do not continue the grid of their neighbours.

    Each corner is predicted from its row neighbours and from its column neighbours (midpoint
    inside the grid, linear extrapolation on the border); perspective and lens distortion bend a
    grid by a few percent of a square, a corner snapped to the board's outer edge (or to another
    corner) misses both predictions by a large part of one. Flagged when the better prediction is
    off by more than ``tol`` squares.
    """
    c, r = board.corner_grid
    g = xy.reshape(r, c, 2)

    def pred(a: np.ndarray) -> np.ndarray:  # predictions along axis 1 of (rows, cols, 2)
        p = np.empty_like(a)
        p[:, 1:-1] = 0.5 * (a[:, :-2] + a[:, 2:])
        p[:, 0] = 2 * a[:, 1] - a[:, 2] if a.shape[1] > 2 else a[:, 1]
        p[:, -1] = 2 * a[:, -2] - a[:, -3] if a.shape[1] > 2 else a[:, -2]
        return p

    err_row = np.linalg.norm(pred(g) - g, axis=-1)
    err_col = np.linalg.norm(np.swapaxes(pred(np.swapaxes(g, 0, 1)), 0, 1) - g, axis=-1)
    pairs = board.neighbour_pairs()
    spacing = np.nanmedian(np.linalg.norm(xy[pairs[:, 0]] - xy[pairs[:, 1]], axis=-1))
    return (np.minimum(err_row, err_col) > tol * spacing).ravel()


def _refine(gray: np.ndarray, xy: np.ndarray, board: Board) -> np.ndarray:
    """Sub-pixel corner refinement with a window a third of the smallest corner spacing."""
    import cv2

    pairs = board.neighbour_pairs()
    spacing = np.nanmin(np.linalg.norm(xy[pairs[:, 0]] - xy[pairs[:, 1]], axis=-1))
    win = int(np.clip(spacing / 3.0, 2, 15))
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    pts = xy.astype(np.float32).reshape(-1, 1, 2)
    cv2.cornerSubPix(gray, pts, (win, win), (-1, -1), crit)
    return pts.reshape(-1, 2).astype(np.float64)


def _patch_mean(gray: np.ndarray, xy: np.ndarray, r: int) -> float:
    x, y = int(round(xy[0])), int(round(xy[1]))
    h, w = gray.shape
    patch = gray[max(0, y - r):min(h, y + r + 1), max(0, x - r):min(w, x + r + 1)]
    return float(patch.mean()) if patch.size else np.nan


def _orient_checkerboard(gray: np.ndarray, xy: np.ndarray, board: Board) -> np.ndarray:
    """Put corners in a view-independent order.

    OpenCV may return the grid starting at either end (a 180° ambiguity). On an asymmetric board
    the square diagonal to corner 0 (centre of corners 0, 1, c, c+1) and the one at the far end
    have opposite colours; we order so that the first is the dark one. A symmetric board cannot be
    told apart from its 180° turn; we start at the corner nearest the image's top-left and let the
    extrinsic stage resolve views that disagree (see :func:`mocap.calibration.extrinsics`).
    """
    import cv2

    ok = np.isfinite(xy[:, 0])
    if ok.sum() < 4:
        return np.full_like(xy, np.nan)
    c, r = board.corner_grid
    s = board.square_size
    H, _ = cv2.findHomography(board.object_points[ok, :2], xy[ok], 0)
    if H is None:
        return np.full_like(xy, np.nan)

    def at(u: float, v: float) -> np.ndarray:  # image position of board point (u, v) in squares
        p = H @ np.array([u * s, v * s, 1.0])
        return p[:2] / p[2]

    if board.symmetric:
        if at(0, 0).sum() > at(c - 1, r - 1).sum():
            xy = xy[::-1].copy()
        return xy
    near, far = at(0.5, 0.5), at(c - 1.5, r - 1.5)
    spacing = np.linalg.norm(at(1, 0) - at(0, 0))
    rad = max(1, int(spacing / 6))
    if _patch_mean(gray, near, rad) > _patch_mean(gray, far, rad):
        xy = xy[::-1].copy()
    return xy


def _detect_charuco(gray: np.ndarray, board: Board) -> np.ndarray:
    import cv2

    out = np.full((board.n_corners, 2), np.nan)
    detector = cv2.aruco.CharucoDetector(charuco_board(board))
    corners, ids, _, _ = detector.detectBoard(gray)
    if ids is None or len(ids) == 0:
        return out
    ids = ids.ravel()
    ok = (ids >= 0) & (ids < board.n_corners)
    out[ids[ok]] = corners.reshape(-1, 2)[ok]
    return out


# --------------------------------------------------------------------------------------------
# Frame sources
# --------------------------------------------------------------------------------------------

def _natural_key(p: str):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p)]


def list_source(path: str | Path) -> tuple[str, list[str]]:
    """Classify a camera source: ``("video", [file])`` or ``("images", sorted files)``.

    ``path`` is an image folder, a glob (``left*.jpg``) or a video file.
    """
    s = str(path)
    p = Path(s)
    if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
        return "video", [s]
    if p.is_dir():
        files = [str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS]
        if not files:
            vids = [str(f) for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTS]
            if len(vids) == 1:
                return "video", vids
            raise CalibrationError(f"{s}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
        return "images", sorted(files, key=_natural_key)
    if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
        return "images", [s]
    files = [f for f in globlib.glob(s) if Path(f).suffix.lower() in IMAGE_EXTS]
    if files:
        return "images", sorted(files, key=_natural_key)
    raise CalibrationError(f"{s}: not an image folder, an image glob or a video file")


def iter_frames(path: str | Path, stride: int = 1) -> Iterator[tuple[int, str, np.ndarray]]:
    """Yield ``(frame_id, label, gray (H, W) uint8)`` for every ``stride``-th frame of a source."""
    import cv2

    kind, files = list_source(path)
    if kind == "images":
        for i, f in enumerate(files[::stride]):
            img = cv2.imread(f, cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise CalibrationError(f"{f}: cannot read this image")
            yield i * stride, Path(f).name, img
        return
    cap = cv2.VideoCapture(files[0])
    if not cap.isOpened():
        raise VideoError(f"{files[0]}: cannot open video")
    try:
        i = 0
        while True:
            if i % stride:
                if not cap.grab():
                    break
            else:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, f"frame {i}", to_gray(frame)
            i += 1
    finally:
        cap.release()


def detect_source(camera: str, path: str | Path, board: Board, stride: int = 1, mirror: bool = False) -> Detections:
    """Detect ``board`` in every ``stride``-th frame of one camera's source (videos: fast search only).

    ``mirror`` flips every frame left to right first (a camera that mirrors its picture): the
    corners are then in the flipped, i.e. the true, image.

    Returns:
        :class:`Detections` with ``xy (T, N, 2)``.
    """
    xy, ids, names, size = [], [], [], None
    thorough = list_source(path)[0] == "images"  # still images are few: try harder on each
    for fid, label, gray in iter_frames(path, stride):
        h, w = gray.shape
        if size is None:
            size = (w, h)
        elif size != (w, h):
            raise CalibrationError(f"camera {camera}: {label} is {w}x{h}, earlier frames are {size[0]}x{size[1]}; "
                                   "all frames of a camera must have one size")
        xy.append(detect_board(np.ascontiguousarray(gray[:, ::-1]) if mirror else gray, board, thorough))
        ids.append(fid)
        names.append(f"{label} (mirrored)" if mirror else label)
    if size is None:
        raise CalibrationError(f"camera {camera}: no frames in {path}")
    det = Detections(camera, np.stack(xy), np.asarray(ids, np.int64), size, str(path), tuple(names))
    log.info("camera %s: board found in %d of %d frames", camera, int(det.valid.sum()), len(ids))
    return det


def detect_images(camera: str, images, board: Board, frame_ids=None, thorough: bool = True) -> Detections:
    """Detect ``board`` in in-memory images (an iterable of ``(H, W)`` or ``(H, W, 3)`` uint8).

    ``thorough`` as in :func:`detect_board`.

    Returns:
        :class:`Detections` with ``xy (T, N, 2)``; ``frame_ids`` default to 0..T-1.
    """
    images = list(images)
    if not images:
        raise CalibrationError(f"camera {camera}: no images")
    h, w = images[0].shape[:2]
    xy = np.stack([detect_board(im, board, thorough) for im in images])
    ids = np.arange(len(images)) if frame_ids is None else np.asarray(frame_ids, np.int64)
    return Detections(camera, xy, ids, (w, h), "images")


def _detect_job(job):
    return detect_source(*job)


def detect_sources(sources: dict[str, str | Path], board: Board, stride: int = 1,
                   workers: int = 1) -> dict[str, Detections]:
    """Detect the board for every camera (``{name: path}``), cameras in parallel over ``workers``."""
    jobs = [(name, path, board, stride) for name, path in sources.items()]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            results = list(pool.map(_detect_job, jobs))
    else:
        results = [_detect_job(j) for j in jobs]
    return {r.camera: r for r in results}


def match_by_timestamps(detections: dict[str, Detections], timestamps_ns: dict[str, np.ndarray]) -> dict[str, Detections]:
    """Re-key every camera's frames by the nearest frame of the first camera in capture time.

    ``timestamps_ns[name]`` is ``(T_name,)`` capture times indexed by source frame index. Frames
    further than half a frame period from any reference frame are dropped.
    """
    names = list(detections)
    ref = np.asarray(timestamps_ns[names[0]], np.float64)
    period = np.median(np.diff(ref)) if len(ref) > 1 else np.inf
    out = {}
    for n, d in detections.items():
        ts = np.asarray(timestamps_ns[n], np.float64)[d.frame_ids]
        k = np.clip(np.searchsorted(ref, ts), 1, len(ref) - 1) if len(ref) > 1 else np.zeros(len(ts), int)
        k = np.where(np.abs(ref[k - 1] - ts) < np.abs(ref[k] - ts), k - 1, k) if len(ref) > 1 else k
        keep = np.abs(ref[k] - ts) <= period / 2
        names_kept = tuple(np.asarray(d.frame_names, object)[keep]) if d.frame_names else ()
        out[n] = replace(d, xy=d.xy[keep], frame_ids=k[keep].astype(np.int64), frame_names=names_kept)
    return out


def session_settings(session: str | Path) -> dict:
    """Settings of a session: its rig file's keys (``rig:`` in ``session.yaml``), overridden by
    ``session.yaml``'s own (e.g. ``board``, ``world_frame``). Empty when neither file exists."""
    import yaml

    session = Path(session)
    manifest = {}
    if (session / "session.yaml").is_file():
        manifest = yaml.safe_load((session / "session.yaml").read_text()) or {}
    rig_file = manifest.get("rig")
    settings = {}
    if rig_file:
        rp = Path(rig_file) if Path(rig_file).is_absolute() else session / rig_file
        if not rp.is_file():
            raise CalibrationError(f"{session / 'session.yaml'}: rig file {rp} not found")
        settings = yaml.safe_load(rp.read_text()) or {}
    return {**settings, **manifest}


def session_sources(session: str | Path) -> tuple[dict[str, str], str | None, dict | None]:
    """Cameras of a calibration session folder: ``videos/<cam>.<ext>`` (or images per camera
    folder), the board named in ``session.yaml`` (``board:``) or its rig file (``rig:``), and the
    capture times from ``timestamps/<cam>.csv`` when present."""
    session = Path(session)
    if not session.is_dir():
        raise CalibrationError(f"{session}: not a session folder")
    board = session_settings(session).get("board")
    vids = session / "videos"
    sources = {p.stem: str(p) for p in sorted(vids.iterdir()) if p.suffix.lower() in VIDEO_EXTS} if vids.is_dir() else {}
    if not sources:
        raise CalibrationError(f"{session}: no videos/<camera>.mp4 files; or give --camera NAME=PATH per camera")
    stamps = None
    tdir = session / "timestamps"
    if tdir.is_dir() and all((tdir / f"{n}.csv").is_file() for n in sources):
        stamps = {n: np.loadtxt(tdir / f"{n}.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1] for n in sources}
    return sources, board, stamps
