"""Step one of the studio workflow: each camera's lens on its own, from its own board views.

The views of one camera need not be simultaneous with any other camera's, so each lens can be
calibrated from a board waved close in front of it (wide coverage, steep tilts), which is what a
lens fit needs and what shared views seen by several cameras at once rarely give. Every camera
is checked (:mod:`mocap.calibration.checks`): a fit that is not plausible is reported as failed
with the reason, never returned as a lens.

The one-go ``mocap calibrate --lens-views NAME=PATH`` uses :func:`lens_from_own_or_pooled`: a
camera's own lens views alone when they pass the checks, else pooled with its shared views.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.calibration.boards import Board
from mocap.calibration.checks import intrinsic_problems, view_coverage
from mocap.calibration.detect_corners import Detections, detect_source, detect_sources
from mocap.calibration.extrinsics import board_poses
from mocap.calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics
from mocap.errors import CalibrationError
from mocap.geometry.camera import Camera

log = logging.getLogger(__name__)

MIN_LENS_VIEWS = 3  # fewer board views than this: try the mirrored picture (calibrate_intrinsics needs 3)


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
        ``{name: CameraLens}``, falsy entries for cameras that failed (with their reasons); a source
        whose board is found only in the mirrored picture is used flipped back (logged).
    """
    dets, notes = detect_lens_views(sources, board, stride=stride, workers=workers)  # mirrored sources flipped back
    for m in notes:
        log.warning(m)
    out = {}
    for name, det in dets.items():
        out[name] = check_lens(det, calibrate_intrinsics(det, board, max_frames=max_frames), board, sources[name])
        log.debug(out[name].summary())
    return out


def detect_lens_views(sources: dict[str, str | Path], board: Board, stride: int = 1,
                      workers: int = 1) -> tuple[dict[str, Detections], list[str]]:
    """Detect the board in each camera's own lens views (``{name: path}``: the board waved before that
    camera alone). A source where the board is not found but is found in the left-right flipped
    picture (a camera that mirrors its picture) is used flipped back, and said so.

    Returns:
        ``({name: Detections}, messages)``.
    """
    dets = detect_sources(sources, board, stride=stride, workers=workers)
    messages = []
    for name, det in dets.items():
        if det.valid.sum() >= MIN_LENS_VIEWS:
            continue
        flipped = detect_source(name, sources[name], board, stride, mirror=True)
        if flipped.valid.sum() > det.valid.sum():
            dets[name] = flipped
            messages.append(f"camera {name}: its lens views show the board only mirrored ({int(flipped.valid.sum())} "
                            f"of {len(flipped.valid)} frames): the camera mirrored its picture when they were "
                            "recorded; used flipped back")
    return dets, messages


def pool_detections(own: Detections, shared: Detections) -> Detections:
    """One camera's own lens views followed by its shared views (frames renumbered 0..)."""
    if own.image_size != shared.image_size:
        raise CalibrationError(f"camera {own.camera}: its lens views are {own.image_size[0]}x{own.image_size[1]}, its "
                               f"shared views {shared.image_size[0]}x{shared.image_size[1]}; give views of one size")
    names = tuple(f"lens view {own.frame_label(t)}" for t in range(len(own.xy))) + tuple(
        shared.frame_label(t) for t in range(len(shared.xy)))
    return Detections(own.camera, np.concatenate([own.xy, shared.xy]), np.arange(len(names)), own.image_size,
                      f"{own.source} + {shared.source}", names)


def _coverage_words(lens: CameraLens) -> str:
    c = lens.coverage
    if not c:
        return "no fit"
    return f"the board reached {c['image_share']:.0%} of the image, tilts spread {c['tilt_spread_deg']:.0f}°"


def lens_from_own_or_pooled(own: Detections, shared: Detections, board: Board,
                            max_frames: int = 40) -> tuple[CameraLens, str]:
    """One camera's lens from its own lens views when they pass the checks (wide coverage of one
    camera is what a lens fit needs), else from those views pooled with its shared views.

    Returns:
        ``(CameraLens of the views used, how it was solved in words)``; the lens is falsy (with its
        reasons) when even the pooled views fail the checks.
    """
    alone = check_lens(own, calibrate_intrinsics(own, board, max_frames=max_frames), board)
    n_own = int(own.valid.sum())
    if alone:
        return alone, f"lens solved from its own {int(alone.fit.used.sum())} lens views ({_coverage_words(alone)})"
    pooled = pool_detections(own, shared)
    # up to max_frames from each of the two sets: on caliscope's rig the 40-view cap left fx 0.5-1.4 %
    # further from the 80-view fit and the rig's RMS at 1.52 px instead of 1.47 px
    lens = check_lens(pooled, calibrate_intrinsics(pooled, board, max_frames=2 * max_frames), board)
    return lens, (f"its {n_own} lens views alone fail the checks ({_coverage_words(alone)}); lens solved from "
                  f"them pooled with its {int(shared.valid.sum())} shared views: {int(lens.fit.used.sum())} views, "
                  f"{_coverage_words(lens)}")


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
