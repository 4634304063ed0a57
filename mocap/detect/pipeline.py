"""Running a detector over videos and sessions, and the per-camera output files.

On-disk format, one file per camera ``DIR/<cam>.npz`` (written atomically, so an existing file
is complete; :func:`mocap.detect.session.detect_session` skips cameras whose file exists with the
same video content, detector settings and model hashes, which makes it resumable per camera):

==================== ============================= ===========================================
key                  shape / type                  meaning
==================== ============================= ===========================================
keypoints            float32 (T, P, J, 3)          x px, y px, confidence [0, 1]; NaN missing
scores               float32 (T, P)                person score (pose presence); NaN missing
appearance           float32 (T, P, D)             colour descriptor (:mod:`.appearance`)
rois                 float32 (T, P, 4)             crop (cx, cy, size px, theta rad); NaN missing
frame_indices        int64 (T,)                    source frame numbers
joint_names          str (J,)                      canonical names (BlazePose-33 order)
camera               str ()                        camera name (the video's stem)
fps                  float64 ()                    NaN when unknown
image_size           int64 (2,)                    (width, height) px
detector             str ()                        ``blazepose`` or ``onnx:<file name>``
model_sha256         str (M,)                      ``name=sha256`` of each model file
heatmaps             float16 (T, P, J, 64, 64)     only with ``keep_heatmaps``: probabilities
image_from_heatmap   float32 (T, P, 2, 3)          heatmap pixel -> image pixel affine map
recovered            bool (T, P)                   found by the cross-view pass (:mod:`.cross_view`)
cross_view           str ()                        calibration the cross-view pass used (sha256)
video_fingerprint    str ()                        the source video's content fingerprint
settings             str ()                        fingerprint of the detector settings
==================== ============================= ===========================================

``P`` is the number of track slots used in that camera: slot ``p`` is one person for as long as
the tracker follows them (a person lost and found again may take another slot).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mocap.detect.appearance import DESCRIPTOR_SIZE, appearance_descriptors
from mocap.detect.blazepose import BlazePoseConfig
from mocap.detect.cross_view import CrossViewConfig
from mocap.detect.onnx_backend import OnnxConfig
from mocap.detect.roi_tracking import fix_left_right_flips
from mocap.detect.video import read_frames, video_fingerprint, video_info
from mocap.io.keypoints import Keypoints2D
from mocap.io.files import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectConfig:
    """Settings of the detect stage (the ``detect`` section of the config tree)."""

    detector: str = "blazepose"
    """2D detector: ``blazepose`` (default, CPU) or ``onnx:PATH`` (a top-down ONNX pose model whose
    people are found by BlazePose)."""
    workers: int = 0
    """Cameras detected in parallel processes (each loads its own model, ~250 MB); 0: one per CPU core."""
    cross_view: bool = True
    """With a calibration: look again for people a camera missed (or saw mixed with someone in
    front) where the other cameras place them (BlazePose only; :mod:`mocap.detect.cross_view`)."""
    allow_short: bool = False
    """A video that stops before the frame count its container declares (truncated copy): carry
    on with the frames that exist instead of stopping with an error."""
    blazepose: BlazePoseConfig = field(default_factory=BlazePoseConfig)
    """The BlazePose detector and its person tracking (also finds the people for ``onnx:``)."""
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    """The ONNX top-down backend (with ``detector: onnx:PATH``)."""
    look_again: CrossViewConfig = field(default_factory=CrossViewConfig)
    """The cross-view pass (with ``cross_view``)."""

    def __post_init__(self):
        if self.detector != "blazepose" and not self.detector.startswith("onnx:"):
            raise ValueError(f"detector: unknown value {self.detector!r}; expected 'blazepose' or 'onnx:PATH'")
        if self.workers < 0:
            raise ValueError(f"workers: expected >= 0 (0 = one per CPU core), got {self.workers}")

    @property
    def model_config(self):
        """The config the detector object takes (:func:`make_detector`)."""
        return self.blazepose if self.detector == "blazepose" else self.onnx


@dataclass(frozen=True, eq=False)
class CameraDetections:
    """Everything detected in one camera's video (see the module docstring for the shapes)."""

    camera: str
    keypoints: np.ndarray
    scores: np.ndarray
    appearance: np.ndarray
    rois: np.ndarray
    frame_indices: np.ndarray
    joint_names: tuple[str, ...]
    fps: float | None
    image_size: tuple[int, int]
    detector: str
    model_sha256: dict = field(default_factory=dict)
    heatmaps: np.ndarray | None = None
    image_from_heatmap: np.ndarray | None = None
    recovered: np.ndarray | None = None
    cross_view: str = ""
    video_fingerprint: str = ""
    """:func:`~mocap.detect.video.video_fingerprint` of the video it came from."""
    settings: str = ""
    """Fingerprint of the detector settings it was made with."""

    @property
    def found(self) -> np.ndarray:
        """``(T, P)`` bool: slot p holds a person in frame t."""
        return np.isfinite(self.scores)


def make_detector(detector: str = "blazepose", config=None, person: BlazePoseConfig | None = None):
    """A detector object from its spec: ``blazepose`` or ``onnx:PATH`` (a top-down ONNX pose model).

    ``config``: :class:`~mocap.detect.blazepose.BlazePoseConfig` for BlazePose, or
    :class:`~mocap.detect.onnx_backend.OnnxConfig` for ONNX (the person boxes then come from
    BlazePose's detector, set by ``person``).
    """
    if detector == "blazepose":
        from mocap.detect.blazepose import BlazePose

        return BlazePose(config)
    if detector.startswith("onnx:"):
        from mocap.detect.onnx_backend import OnnxPose

        return OnnxPose(detector[len("onnx:"):], config, person)
    raise ValueError(f"detector: unknown value {detector!r}; expected 'blazepose' or 'onnx:PATH'")


def _detector_name(spec: str) -> str:
    return spec if spec == "blazepose" else "onnx:" + Path(spec[len("onnx:"):]).name


def _stack(rows: list[np.ndarray], fill_shape: tuple[int, ...], P: int, dtype=np.float32, fill=np.nan) -> np.ndarray:
    out = np.full((len(rows), P) + fill_shape, fill, dtype=dtype)
    for t, r in enumerate(rows):
        if r is not None and len(r):
            out[t, : len(r)] = r
    return out


def detect_video(path: str | os.PathLike, detector=None, camera: str | None = None, progress: bool = False,
                 detector_spec: str = "blazepose", allow_short: bool = False) -> CameraDetections:
    """Detect and track people through one video.

    Args:
        path: a video file.
        detector: from :func:`make_detector` (default: BlazePose with its default config).
        camera: name to record (default: the file's stem).
        progress: show a progress bar.
        detector_spec: ``blazepose`` or ``onnx:PATH``: builds the detector when ``detector`` is
            None, and is recorded in the output either way.
        allow_short: a truncated video gives the frames that exist (a warning), not an error.

    Returns:
        :class:`CameraDetections` with ``keypoints (T, P, 33, 3)``. A video without people gives
        ``P = 0``. Raises :class:`~mocap.errors.VideoError` for unreadable or truncated videos.
    """
    path = Path(path)
    detector = detector if detector is not None else make_detector(detector_spec)
    info = video_info(path)
    tracker = detector.new_tracker(fps=info.fps)
    keep_hm = bool(getattr(detector.config, "keep_heatmaps", False))
    kps, scores, apps, rois, hms, tfs, frames = [], [], [], [], [], [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=info.frame_count or None, desc=camera or path.stem, unit="frame", leave=False)
    try:
        for index, frame in read_frames(path, allow_short=allow_short):
            res = tracker.step(frame)
            frames.append(index)
            kps.append(res.keypoints)
            scores.append(res.scores)
            rois.append(res.rois)
            apps.append(appearance_descriptors(frame, res.keypoints, detector.joint_names))
            if keep_hm:
                hms.append(res.heatmaps)
                tfs.append(res.image_from_heatmap)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    J = len(detector.joint_names)
    P = max((len(s) for s in scores), default=0)
    keypoints = _stack(kps, (J, 3), P)
    hm = tf = None
    if keep_hm:
        side = hms[0].shape[-1] if any(h is not None and len(h) for h in hms) else 64
        hm = _stack(hms, (J, side, side), P, np.float16, 0)
        tf = _stack(tfs, (2, 3), P)
    perm = getattr(detector, "left_right_perm", None)
    if perm is not None and getattr(detector.config, "fix_left_right_flips", False) and P:
        flip = fix_left_right_flips(keypoints, perm)
        keypoints[flip] = keypoints[flip][:, perm]
        if hm is not None:
            hm[flip] = hm[flip][:, perm]
        log.debug("%s: %d of %d detections mirrored for left/right consistency", path.name, flip.sum(), np.isfinite(keypoints[..., 0, 0]).sum())
    return CameraDetections(
        camera=camera or path.stem,
        keypoints=keypoints,
        scores=_stack(scores, (), P),
        appearance=_stack(apps, (DESCRIPTOR_SIZE,), P),
        rois=_stack(rois, (4,), P),
        frame_indices=np.asarray(frames, dtype=np.int64),
        joint_names=tuple(detector.joint_names),
        fps=info.fps,
        image_size=info.size,
        detector=_detector_name(detector_spec),
        model_sha256=dict(detector.model_sha256),
        heatmaps=hm,
        image_from_heatmap=tf,
        video_fingerprint=video_fingerprint(path),
    )


def save_camera_detections(det: CameraDetections, path: str | os.PathLike) -> Path:
    """Write one camera's detections atomically in the format of the module docstring."""
    arrays = dict(
        keypoints=det.keypoints.astype(np.float32), scores=det.scores.astype(np.float32),
        appearance=det.appearance.astype(np.float32), rois=det.rois.astype(np.float32),
        frame_indices=det.frame_indices, joint_names=np.array(det.joint_names, dtype=str),
        camera=np.array(det.camera), fps=np.float64(np.nan if det.fps is None else det.fps),
        image_size=np.array(det.image_size, dtype=np.int64), detector=np.array(det.detector),
        model_sha256=np.array([f"{k}={v}" for k, v in det.model_sha256.items()], dtype=str),
    )
    if det.heatmaps is not None:
        arrays.update(heatmaps=det.heatmaps, image_from_heatmap=det.image_from_heatmap.astype(np.float32))
    if det.recovered is not None:
        arrays.update(recovered=det.recovered.astype(bool))
    if det.cross_view:
        arrays.update(cross_view=np.array(det.cross_view))
    arrays.update(video_fingerprint=np.array(det.video_fingerprint), settings=np.array(det.settings))
    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")


def load_camera_detections(path: str | os.PathLike) -> CameraDetections:
    """Read a file written by :func:`save_camera_detections`."""
    from mocap.errors import KeypointFormatError

    path = Path(path)
    try:
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise KeypointFormatError(f"detections {path}: not a readable .npz ({exc}); delete it and detect again") from None
    missing = {"keypoints", "scores", "frame_indices", "joint_names", "camera"} - set(d)
    if missing:
        raise KeypointFormatError(f"detections {path}: missing {', '.join(sorted(missing))}; delete it and detect again")
    fps = float(d.get("fps", np.nan))
    T, P = d["keypoints"].shape[:2]
    return CameraDetections(
        camera=str(d["camera"]), keypoints=d["keypoints"], scores=d["scores"],
        appearance=d.get("appearance", np.full((T, P, DESCRIPTOR_SIZE), np.nan, np.float32)),
        rois=d.get("rois", np.full((T, P, 4), np.nan, np.float32)), frame_indices=d["frame_indices"],
        joint_names=tuple(str(n) for n in d["joint_names"]), fps=None if np.isnan(fps) else fps,
        image_size=tuple(int(v) for v in d.get("image_size", (0, 0))), detector=str(d.get("detector", "")),
        model_sha256=dict(str(s).split("=", 1) for s in d.get("model_sha256", [])),
        heatmaps=d.get("heatmaps"), image_from_heatmap=d.get("image_from_heatmap"), recovered=d.get("recovered"),
        cross_view=str(d.get("cross_view", "")), video_fingerprint=str(d.get("video_fingerprint", "")),
        settings=str(d.get("settings", "")),
    )


def load_detection_header(path: str | os.PathLike) -> dict:
    """``{"camera", "joint_names", "fps"}`` of a :func:`save_camera_detections` file, without
    reading its per-frame arrays."""
    from mocap.errors import KeypointFormatError

    path = Path(path)
    try:
        with np.load(path) as z:
            missing = {"keypoints", "scores", "frame_indices", "joint_names", "camera"} - set(z.files)
            if missing:
                raise KeypointFormatError(f"detections {path}: missing {', '.join(sorted(missing))}; delete it and detect again")
            fps = float(z["fps"]) if "fps" in z.files else float("nan")
            return {"camera": str(z["camera"]), "joint_names": tuple(str(n) for n in z["joint_names"]),
                    "fps": None if np.isnan(fps) else fps}
    except (OSError, ValueError, EOFError) as exc:
        raise KeypointFormatError(f"detections {path}: not a readable .npz ({exc}); delete it and detect again") from None


def to_keypoints2d(dets: list[CameraDetections], frames: tuple[int, int] | None = None) -> Keypoints2D:
    """Stack cameras into a :class:`Keypoints2D` (frames aligned by frame index, NaN-padded);
    ``frames (lo, hi)``: only those frame indices (rows ``lo..hi-1``, a part of the take)."""
    if not dets:
        raise ValueError("detections: no camera")
    J = len(dets[0].joint_names)
    T = max((int(d.frame_indices.max()) + 1 if len(d.frame_indices) else 0) for d in dets)
    lo, hi = frames if frames is not None else (0, T)
    P = max(d.keypoints.shape[1] for d in dets)
    C = len(dets)
    data = np.full((hi - lo, C, P, J, 3), np.nan)
    app = np.full((hi - lo, C, P, DESCRIPTOR_SIZE), np.nan, np.float32)
    scores = np.full((hi - lo, C, P), np.nan)
    for c, d in enumerate(dets):
        p = d.keypoints.shape[1]
        a, b = np.searchsorted(d.frame_indices, lo), np.searchsorted(d.frame_indices, hi)
        rows = d.frame_indices[a:b] - lo
        data[rows, c, :p] = d.keypoints[a:b]
        app[rows, c, :p] = d.appearance[a:b]
        scores[rows, c, :p] = d.scores[a:b]
    fps = next((d.fps for d in dets if d.fps), None)
    return Keypoints2D(data, dets[0].joint_names, tuple(d.camera for d in dets), fps=fps,
                       frame_indices=np.arange(lo, hi), extras=dict(appearance=app, scores=scores, detections=dets))
