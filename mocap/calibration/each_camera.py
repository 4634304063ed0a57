"""Step one of the studio workflow: each camera's lens on its own, from its own board views.

The views of one camera need not be simultaneous with any other camera's, so each lens can be
calibrated from a board waved close in front of it (wide coverage, steep tilts), which is what a
lens fit needs and what shared views seen by several cameras at once rarely give. Every camera
is checked (:mod:`mocap.calibration.checks`): a fit that is not plausible is reported as failed
with the reason, never returned as a lens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.calibration.boards import Board
from mocap.calibration.checks import intrinsic_problems, view_coverage
from mocap.calibration.detect_corners import Detections, detect_sources
from mocap.calibration.extrinsics import board_poses
from mocap.calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics
from mocap.geometry.camera import Camera

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CameraLens:
    """One camera's intrinsic calibration and its checks (falsy when it failed).

    Attributes:
        camera: camera name.
        detections: its board corners, ``xy (T, N, 2)``.
        fit: the intrinsic fit (:class:`IntrinsicsResult`).
        coverage: :func:`~mocap.calibration.checks.view_coverage` of the views used (empty if none).
        problems: reasons the fit cannot be trusted, one line each (empty: trusted).
    """

    camera: str
    detections: Detections
    fit: IntrinsicsResult
    coverage: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fit) and not self.problems

    def to_camera(self) -> Camera:
        """The lens as a :class:`Camera` with no pose (``R = I``, ``t = 0``)."""
        return Camera(self.camera, self.fit.image_size, self.fit.K, self.fit.dist, np.eye(3), np.zeros(3),
                      float(self.fit.rms_px))

    def summary(self) -> str:
        """One line: the lens and its checks, or why it failed."""
        if not self:
            return f"{self.camera}: FAILED: " + "; ".join(p.removeprefix(f"camera {self.camera}: ") for p in
                                                         (self.problems or [self.fit.message]))
        f, K = self.fit, self.fit.K
        sd = f.sd if f.sd is not None else np.full(4, np.nan)
        c = self.coverage
        return (f"{self.camera}: fx {K[0, 0]:.1f} ± {sd[0]:.1f}, fy {K[1, 1]:.1f} ± {sd[1]:.1f}, "
                f"cx {K[0, 2]:.1f} ± {sd[2]:.1f}, cy {K[1, 2]:.1f} ± {sd[3]:.1f} px; "
                f"RMS {f.rms_px:.3f} px over {int(f.used.sum())} views; "
                f"board reached {c['image_share']:.0%} of the image, tilts {c['tilt_min_deg']:.0f}-{c['tilt_max_deg']:.0f}°"
                + (f"; board not flat (up to {f.board_warp_m * 1000:.2f} mm): its corners fitted with the lens"
                   if f.board_warp_m else ""))


def check_lens(det: Detections, fit: IntrinsicsResult, board: Board, source=None) -> CameraLens:
    """Coverage and plausibility of one camera's intrinsic ``fit`` (a board-not-found hint when it failed)."""
    if not fit:
        msg = fit.message
        if source is not None and det.valid.sum() < 3:
            from mocap.calibration.hints import board_not_found_hint

            msg = f"{msg.split('; check the board')[0]}: {board_not_found_hint(source, board)}"
        return CameraLens(det.camera, det, fit, {}, [msg])
    xy = det.xy[fit.used]
    T = board_poses(xy, fit.K, fit.dist, board)[0]
    cov = view_coverage(xy, det.image_size, T)
    return CameraLens(det.camera, det, fit, cov, intrinsic_problems(det.camera, fit.K, det.image_size, fit.rms_px, cov))


def calibrate_each_camera(sources: dict[str, str | Path], board: Board, stride: int = 1, workers: int = 1,
                          max_frames: int = 40) -> dict[str, CameraLens]:
    """Calibrate every camera's lens from its own board images or video (``{name: path}``).

    Args:
        sources: an image folder, a glob or a video per camera; frames need not be simultaneous.
        board: the board seen.
        stride: read every ``stride``-th video frame.
        workers: processes for corner detection (cameras in parallel).
        max_frames: at most this many views per camera, chosen for diversity.

    Returns:
        ``{name: CameraLens}``, falsy entries for cameras that failed (with their reasons).
    """
    dets = detect_sources(sources, board, stride=stride, workers=workers)
    out = {}
    for name, det in dets.items():
        out[name] = check_lens(det, calibrate_intrinsics(det, board, max_frames=max_frames), board, sources[name])
        log.debug(out[name].summary())
    return out


def write_intrinsics(lenses: dict[str, CameraLens], out: str | Path) -> list[Path]:
    """Write the trusted lenses to ``out`` (``intrinsics.yaml``) when every camera passed, else to
    ``<stem>.partial.yaml``; a coverage picture per camera beside it. Returns the paths written."""
    import cv2

    from mocap.calibration.io import save_intrinsics
    from mocap.calibration.report import coverage_image

    out = Path(out)
    good = [lens.to_camera() for lens in lenses.values() if lens]
    target = out if all(lenses.values()) else out.with_name(f"{out.stem}.partial{out.suffix}")
    paths = []
    if good:
        notes = {n: lens.summary() for n, lens in lenses.items() if lens}
        paths.append(save_intrinsics(good, target, notes))
    for name, lens in lenses.items():
        p = out.parent / f"{out.stem}_coverage_{name}.png"
        cv2.imwrite(str(p), coverage_image(lens.detections.xy, lens.detections.image_size, lens.fit.used))
        paths.append(p)
    return paths
