"""Calibrate a whole rig from board images or videos: the ``mocap calibrate`` stage.

detect corners → intrinsics per camera → board pose per view → pairwise poses and spanning
tree → bundle adjustment (cameras, boards, optionally intrinsics) → world frame → report.
Every problem found on the way (a frame without the board, a camera that never sees it, one
connected to no other camera, a symmetric board seen turned) becomes a message naming cameras
and frames; whatever can still be solved is solved.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mocap._checks import check_choice
from mocap.calibration.boards import Board
from mocap.calibration.bundle import LOSSES, BundleResult, Observations, bundle_adjust
from mocap.calibration.detect_corners import Detections, detect_sources, match_by_timestamps
from mocap.calibration.extrinsics import (
    ExtrinsicInit,
    board_flip_transform,
    board_poses,
    initialize_extrinsics,
    invert_rigid,
    rvec_tvec_to_transforms,
    transforms_to_rvec_tvec,
)
from mocap.calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics
from mocap.calibration.report import build_report, coverage_image, square_length_errors_mm, triangulate_corners
from mocap.calibration.world import apply_world, ref_from_world_cameras_up, ref_from_world_floor_board
from mocap.errors import CalibrationError
from mocap.geometry.camera import Camera, Rig, normalize_camera_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RigCalibrationConfig:
    """Options of :func:`calibrate_rig`."""

    stride: int = 1
    """Read every ``stride``-th frame of videos."""
    max_intrinsic_frames: int = 40
    """Intrinsics use at most this many frames per camera, chosen for diversity."""
    optimize_intrinsics: bool = True
    """Refine intrinsics in the bundle adjustment (False: keep the per-camera fits)."""
    loss: str = "soft_l1"
    """Robust loss of the bundle adjustment (linear, huber, soft_l1, cauchy)."""
    f_scale_px: float = 1.0
    """Residual (pixels) where the robust loss starts to down-weight."""
    prune_rounds: int = 2
    """Outlier-pruning rounds of the bundle adjustment."""
    world_frame: str | None = None
    """``CAM:FRAME``: the board lies on the floor in this camera's frame (world origin, Z up)."""
    workers: int = 1
    """Processes for corner detection (cameras in parallel)."""
    max_bundle_frames: int = 120
    """The bundle adjustment uses at most this many frames (those seen by most cameras, balanced
    so every camera keeps its share); its cost grows with the number of board poses."""
    max_view_rms_px: float = 3.0
    """A board view whose own PnP fit is worse than this (and 5× the camera's median) is dropped."""

    def __post_init__(self):
        check_choice(self.loss, LOSSES, "loss")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")


@dataclass(frozen=True, eq=False)
class RigCalibrationResult:
    """Outcome of :func:`calibrate_rig` (falsy when no two cameras could be calibrated together).

    Attributes:
        rig: the calibrated cameras (world Z up, metres), only those solved; None if none.
        intrinsics: per-camera intrinsic fits.
        bundle: the bundle adjustment result (cameras and frames in ``solved`` / ``frame_ids``).
        world_from_board: ``(F, 4, 4)`` board pose per frame (NaN where unsolved).
        frame_ids: ``(F,)`` frame ids (simultaneous across cameras).
        solved, unsolved: camera names.
        messages: problems found, each naming cameras and frames.
        report: the report dict (see :mod:`mocap.calibration.report`).
        coverage: per-camera coverage images.
    """

    rig: Rig | None
    intrinsics: dict
    bundle: BundleResult | None
    world_from_board: np.ndarray
    frame_ids: np.ndarray
    solved: list
    unsolved: list
    messages: list
    report: dict
    coverage: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    """``{camera: [reason, ...]}`` for solved cameras whose result is not plausible (the key ``"rig"``
    for the rig-wide square length check); see :mod:`mocap.calibration.checks`."""

    def __bool__(self) -> bool:
        return self.rig is not None


def align_frames(detections: dict[str, Detections]) -> tuple[np.ndarray, np.ndarray]:
    """Stack detections on a common frame axis: ``xy (C, F, N, 2)`` and ``frame_ids (F,)``."""
    ids = np.unique(np.concatenate([d.frame_ids for d in detections.values()]))
    N = next(iter(detections.values())).xy.shape[1]
    xy = np.full((len(detections), len(ids), N, 2), np.nan)
    for c, d in enumerate(detections.values()):
        xy[c, np.searchsorted(ids, d.frame_ids)] = d.xy
    return xy, ids


def _frame_list(det: Detections, idx: np.ndarray, n: int = 8, frame_ids: np.ndarray | None = None) -> str:
    """Names of frames ``idx`` of ``det`` (or, with ``frame_ids``, of the common frame axis)."""
    if frame_ids is not None:
        pos = np.searchsorted(det.frame_ids, frame_ids[idx])
        ok = (pos < len(det.frame_ids)) & (det.frame_ids[np.minimum(pos, len(det.frame_ids) - 1)] == frame_ids[idx])
        labels = [det.frame_label(int(p)) if k else f"frame {int(i)}" for p, k, i in zip(pos, ok, frame_ids[idx])][:n]
    else:
        labels = [det.frame_label(int(t)) for t in idx[:n]]
    return ", ".join(labels) + (f", … ({len(idx)} in all)" if len(idx) > n else "")


def calibrate_rig(sources: dict[str, str | Path], board: Board, config: RigCalibrationConfig | None = None,
                  initial_intrinsics: dict[str, Camera] | None = None,
                  timestamps_ns: dict[str, np.ndarray] | None = None,
                  lens_sources: dict[str, str | Path] | None = None) -> RigCalibrationResult:
    """Calibrate a rig from one image folder, glob or video per camera (``{name: path}``).

    Frames with the same index are simultaneous, unless ``timestamps_ns`` (``{name: (T_name,)}``
    capture times per source frame, e.g. from a session folder) is given: then frames are
    matched by capture time (:func:`~mocap.calibration.detect_corners.match_by_timestamps`).
    ``lens_sources`` (``{name: path}``, some cameras or all) are each camera's own lens views, not
    simultaneous with anything (:func:`~mocap.calibration.each_camera.detect_lens_views`).
    See :func:`calibrate_rig_from_detections` for the rest.
    """
    from mocap.calibration.each_camera import detect_lens_views

    config = config or RigCalibrationConfig()
    if not sources:
        raise CalibrationError("no cameras given; pass --camera NAME=PATH for each camera")
    unknown = [n for n in (lens_sources or {}) if n not in sources]
    if unknown:
        raise CalibrationError(f"--lens-views {unknown[0]}: no --camera {unknown[0]}=PATH (cameras: {', '.join(sources)})")
    detections = detect_sources(sources, board, stride=config.stride, workers=config.workers)
    if timestamps_ns is not None:
        detections = match_by_timestamps(detections, timestamps_ns)
    lens, notes = detect_lens_views(lens_sources, board, config.stride, config.workers) if lens_sources else (None, [])
    for m in notes:
        log.warning(m)
    return calibrate_rig_from_detections(detections, board, config, initial_intrinsics, lens)


def calibrate_rig_from_detections(detections: dict[str, Detections], board: Board,
                                  config: RigCalibrationConfig | None = None,
                                  initial_intrinsics: dict[str, Camera] | None = None,
                                  lens_detections: dict[str, Detections] | None = None) -> RigCalibrationResult:
    """Calibrate a rig from board detections per camera.

    Args:
        detections: ``{name: Detections}`` with ``xy (T, N, 2)`` each.
        board: the board seen.
        config: options.
        initial_intrinsics: cameras whose K and dist replace the per-camera intrinsic fit (e.g.
            from an earlier intrinsic calibration); matched by normalised name.
        lens_detections: ``{name: Detections}`` of some cameras' own lens views (not simultaneous
            with anything): such a camera's lens comes from them when they pass the checks, else
            from them pooled with its shared views
            (:func:`~mocap.calibration.each_camera.lens_from_own_or_pooled`). The lenses are then
            held in the bundle adjustment: on caliscope's rig, freeing them there (with or without
            the lens views) moved cam_1's fx +7.7 to +21.5 % and the orientations 3-8° from
            caliscope's, the shared views' 1.2-1.5 px misfit between cameras going into the lenses.

    Returns:
        :class:`RigCalibrationResult`.
    """
    config = config or RigCalibrationConfig()
    names = list(detections)
    dets = list(detections.values())
    xy, frame_ids = align_frames(detections)  # xy (C, F, N, 2); the steps below blank bad corners in it
    messages = _detection_messages(detections)
    if lens_detections and config.optimize_intrinsics:
        config = replace(config, optimize_intrinsics=False)
        messages.append("lens views given: every lens is held in the bundle adjustment")
    intr, K, dist, lens_views = _fit_intrinsics(dets, board, config, initial_intrinsics, messages, lens_detections)
    has_intr = np.isfinite(K[:, 0, 0])
    T = _board_pose_per_view(xy, K, dist, has_intr, board, config, detections, frame_ids, messages)
    init = _initial_extrinsics(xy, T, board, names, messages)
    solved_idx = np.flatnonzero(init.connected & has_intr)
    world_f = _check_world_frame(config.world_frame, names, solved_idx, frame_ids, np.isfinite(T[..., 0, 0]))
    unsolved = [names[c] for c in range(len(names)) if c not in solved_idx]
    if len(solved_idx) < 2:
        messages.append("no two cameras saw the board at the same time; nothing could be calibrated together")
        return RigCalibrationResult(None, intrinsics=intr, bundle=None,
                                    world_from_board=np.full((len(frame_ids), 4, 4), np.nan), frame_ids=frame_ids,
                                    solved=[], unsolved=names, messages=messages, report={})

    views = np.isfinite(T[solved_idx, :, 0, 0])  # (S, F)
    frames = _bundle_frame_choice(views, init, world_f, config)
    ba, obs = _adjust_rig(xy[solved_idx][:, frames], board, K[solved_idx], dist[solved_idx], init, solved_idx,
                          frames, config, messages)
    cam_from_ref = rvec_tvec_to_transforms(ba.cam_rvec, ba.cam_tvec)
    ref_from_board = np.full((len(frame_ids), 4, 4), np.nan)
    ref_from_board[frames] = rvec_tvec_to_transforms(ba.board_rvec, ba.board_tvec)

    ref_from_world, world_desc = _world(config.world_frame, world_f, cam_from_ref, ref_from_board, views, frames,
                                        frame_ids, messages)
    cam_from_world, world_from_board = apply_world(cam_from_ref, ref_from_board, ref_from_world)
    cam_rms = ba.camera_rms(obs, len(solved_idx))
    cameras = [Camera(names[c], dets[c].image_size, ba.K[s], ba.dist[s], cam_from_world[s, :3, :3],
                      cam_from_world[s, :3, 3], float(cam_rms[s])) for s, c in enumerate(solved_idx)]
    rig = Rig(tuple(cameras), {"board": board.to_dict(), "world": world_desc})

    # report: triangulate every corner seen by >= 2 solved cameras, inliers only
    sq = square_length_errors_mm(triangulate_corners(rig, _inlier_corners(xy[solved_idx], frames, obs, ba)), board)
    report = build_report(board, names, dets, intr, solved_idx, cam_rms, ba, obs, init, sq, messages, world_desc, K,
                          len(names))
    report["config"] = asdict(config)  # the resolved options, written with the report
    failed = _plausibility(detections, board, intr, initial_intrinsics, solved_idx, cam_rms, ba, obs, init, sq, report,
                           xy, T, lens_views)
    coverage = {names[c]: coverage_image(xy[c], dets[c].image_size, np.isfinite(T[c, :, 0, 0]))
                for c in range(len(names))}
    for n, (lens, _) in lens_views.items():  # the views its lens was solved from
        coverage[n] = coverage_image(lens.detections.xy, lens.detections.image_size, lens.fit.used)
    for m in messages:
        log.warning(m)
    return RigCalibrationResult(rig, intr, ba, world_from_board, frame_ids, [names[c] for c in solved_idx], unsolved,
                                messages, report, coverage, failed)


def _plausibility(detections, board, intr, initial_intrinsics, solved_idx, cam_rms, ba, obs, init, sq,
                  report, xy, T, lens_views) -> dict[str, list[str]]:
    """Which solved cameras cannot be trusted, and why (:mod:`mocap.calibration.checks`); notes in
    ``report["cameras"][name]`` how each lens was obtained and whether the camera failed. ``xy``
    ``(C, F, N, 2)`` and ``T`` ``(C, F, 4, 4)`` are the views and their board poses (step 2);
    ``lens_views`` ``{name: (CameraLens, how)}`` the lenses solved from lens views (checked on those)."""
    from mocap.calibration.checks import intrinsic_problems, pair_problems, rig_problems, view_coverage

    names = list(detections)
    given = {normalize_camera_name(c) for c in (initial_intrinsics or {})}
    failed: dict[str, list[str]] = pair_problems(names, init.shared, init.agree)
    n_obs = np.bincount(obs.cam, minlength=len(solved_idx))
    n_in = np.bincount(obs.cam, weights=ba.inlier.astype(float), minlength=len(solved_idx))
    sub = [names[c] for c in solved_idx]
    rms = dict(zip(sub, cam_rms.tolist()))
    share = {n: float(n_in[s] / max(n_obs[s], 1)) for s, n in enumerate(sub)}
    sq_mean = float(np.mean(sq)) / 1000.0 if len(sq) else np.nan
    for n, r in rig_problems(sub, rms, share, sq_mean, board).items():
        failed.setdefault(n, []).extend(r)
    for s, c in enumerate(solved_idx):
        n = names[c]
        if normalize_camera_name(n) in given:
            report["cameras"][n]["lens"] = "lens given (--intrinsics), held" if not report["config"].get(
                "optimize_intrinsics") else "lens given (--intrinsics), refined by the bundle adjustment"
            continue
        size = detections[n].image_size
        if n in lens_views:
            lens, how = lens_views[n]
            report["cameras"][n].update(coverage=lens.coverage, lens=how + ", held")
            problems = lens.problems + intrinsic_problems(n, ba.K[s], size, 0.0)
            if problems:
                failed.setdefault(n, []).extend(p for p in problems if p not in failed.get(n, []))
            continue
        cov = view_coverage(xy[c], size, T[c])  # the board poses of step 2 (no new PnP)
        report["cameras"][n]["coverage"] = cov
        report["cameras"][n]["lens"] = (f"lens solved from its own {int(intr[n].used.sum())} views (the board reached "
                                        f"{cov.get('image_share', 0):.0%} of the image, tilts spread "
                                        f"{cov.get('tilt_spread_deg', 0):.0f}°), then refined with the shared views")
        problems = (intrinsic_problems(n, intr[n].K, size, intr[n].rms_px, cov)
                    + intrinsic_problems(n, ba.K[s], size, 0.0))
        if problems:
            failed.setdefault(n, []).extend(p for p in problems if p not in failed.get(n, []))
    for n in names:
        if n in report["cameras"]:
            report["cameras"][n]["failed"] = failed.get(n, [])
    report["failed"] = failed
    return failed


def _detection_messages(detections: dict[str, Detections]) -> list[str]:
    """Problems of the input itself: unequal frame counts, frames without the board."""
    messages = []
    lengths = {n: len(d.frame_ids) for n, d in detections.items()}
    if len(set(lengths.values())) > 1:
        messages.append("cameras have different frame counts (" + ", ".join(f"{n}: {k}" for n, k in lengths.items())
                        + "); frames are matched by index")
    for d in detections.values():
        empty = np.flatnonzero(~d.valid)
        if 0 < len(empty) < len(d.valid):
            messages.append(f"camera {d.camera}: no board in {len(empty)} of {len(d.valid)} frames ({_frame_list(d, empty)})")
    return messages


def _fit_intrinsics(dets: list[Detections], board: Board, config: RigCalibrationConfig,
                    initial_intrinsics: dict[str, Camera] | None, messages: list[str],
                    lens_detections: dict[str, Detections] | None = None):
    """Step 1: ``(fits, K (C, 3, 3) (NaN where the fit failed), dist (C, 5), lens_views)`` per camera,
    given, fitted from lens views (``lens_views``: ``{name: (CameraLens, how)}``) or from its views."""
    from mocap.calibration.each_camera import lens_from_own_or_pooled

    given = {normalize_camera_name(c.name): c for c in (initial_intrinsics or {}).values()}
    own = {normalize_camera_name(n): d for n, d in (lens_detections or {}).items()}
    intr: dict[str, IntrinsicsResult] = {}
    lens_views = {}
    K = np.full((len(dets), 3, 3), np.nan)
    dist = np.zeros((len(dets), 5))
    for c, d in enumerate(dets):
        key = normalize_camera_name(d.camera)
        if key in given:
            K[c], dist[c] = given[key].K, given[key].dist
            intr[d.camera] = IntrinsicsResult(d.camera, d.image_size, K[c], dist[c], np.nan, np.zeros(len(d.valid), bool),
                                              np.full(len(d.valid), np.nan), {}, True, f"camera {d.camera}: intrinsics given")
            continue
        if key in own:
            lens, how = lens_views[d.camera] = lens_from_own_or_pooled(own[key], d, board, config.max_intrinsic_frames)
            messages.append(f"camera {d.camera}: {how}")
            r = lens.fit
        else:
            r = calibrate_intrinsics(d, board, max_frames=config.max_intrinsic_frames)
        intr[d.camera] = r
        if not r.ok:
            messages.append(r.message)
            continue
        K[c], dist[c] = r.K, r.dist
        if r.rejected and d.camera not in lens_views:
            messages.append(f"camera {d.camera}: {len(r.rejected)} frame(s) rejected from the intrinsic fit "
                            f"({_frame_list(d, np.array(sorted(r.rejected)))}): reprojection far above the others")
    return intr, K, dist, lens_views


def _board_pose_per_view(xy: np.ndarray, K: np.ndarray, dist: np.ndarray, has_intr: np.ndarray, board: Board,
                         config: RigCalibrationConfig, detections: dict[str, Detections], frame_ids: np.ndarray,
                         messages: list[str]) -> np.ndarray:
    """Step 2: cam_from_board ``(C, F, 4, 4)`` per view (NaN where unsolved).

    Corners that do not fit the board, and whole views whose PnP fit is far worse than the
    camera's others, are set to NaN in ``xy (C, F, N, 2)`` in place.
    """
    names, dets = list(detections), list(detections.values())
    T = np.full((len(dets), len(frame_ids), 4, 4), np.nan)
    for c in np.flatnonzero(has_intr):
        T[c], view_rms, kept = board_poses(xy[c], K[c], dist[c], board)
        dropped = np.isfinite(xy[c, ..., 0]) & ~kept
        if dropped.any():
            fr = np.flatnonzero(dropped.any(-1))
            messages.append(f"camera {names[c]}: {int(dropped.sum())} corner(s) that do not fit the board were "
                            f"ignored ({_frame_list(dets[c], fr, frame_ids=frame_ids)})")
            xy[c][dropped] = np.nan
        med = np.nanmedian(view_rms) if np.isfinite(view_rms).any() else np.nan
        bad = view_rms > max(config.max_view_rms_px, 5 * med)
        if bad.any():
            T[c, bad] = np.nan
            xy[c, bad] = np.nan
            messages.append(f"camera {names[c]}: {int(bad.sum())} board view(s) dropped, the board does not "
                            f"fit them ({_frame_list(dets[c], np.flatnonzero(bad), frame_ids=frame_ids)})")
    return T


def _initial_extrinsics(xy: np.ndarray, T: np.ndarray, board: Board, names: list[str],
                        messages: list[str]) -> ExtrinsicInit:
    """Step 3: the spanning-tree initial rig; views seen turned (symmetric board) are flipped in
    ``xy (C, F, N, 2)`` and ``T (C, F, 4, 4)`` in place."""
    n_corners = np.isfinite(xy[..., 0]).sum(-1)
    init = initialize_extrinsics(T, board, names, n_corners)
    messages += init.messages
    if init.flipped.any():
        flip = board_flip_transform(board)
        c_idx, f_idx = np.nonzero(init.flipped)
        xy[c_idx, f_idx] = xy[c_idx, f_idx, ::-1]
        T[c_idx, f_idx] = T[c_idx, f_idx] @ flip
    return init


def _bundle_frame_choice(views: np.ndarray, init: ExtrinsicInit, world_f: int | None,
                         config: RigCalibrationConfig) -> np.ndarray:
    """Frames (indices on the common axis) the bundle adjustment uses; ``views`` ``(S, F)`` bool."""
    min_views = 1 if config.optimize_intrinsics else 2
    frames = np.flatnonzero((views.sum(0) >= min_views) & np.isfinite(init.ref_from_board[:, 0, 0]))
    frames = select_bundle_frames(views[:, frames], config.max_bundle_frames, frames)
    if world_f is not None and world_f not in frames:  # the floor board's frame must be in the adjustment
        frames = np.sort(np.append(frames, world_f))
    return frames


def _adjust_rig(sub: np.ndarray, board: Board, K: np.ndarray, dist: np.ndarray, init: ExtrinsicInit,
                solved_idx: np.ndarray, frames: np.ndarray, config: RigCalibrationConfig,
                messages: list[str]) -> tuple[BundleResult, Observations]:
    """Step 4: bundle adjustment of the solved cameras ``(S,)`` over ``sub`` ``(S, Fb, N, 2)``,
    starting from ``init`` with its root camera held fixed."""
    s_i, f_i, p_i = np.nonzero(np.isfinite(sub[..., 0]))
    obs = Observations(s_i, f_i, p_i, sub[s_i, f_i, p_i])
    cam_rv, cam_tv = transforms_to_rvec_tvec(init.cam_from_ref[solved_idx])
    brd_rv, brd_tv = transforms_to_rvec_tvec(init.ref_from_board[frames])
    fixed = int(np.flatnonzero(solved_idx == init.root)[0])
    ba = bundle_adjust(obs, board.object_points, K, dist, cam_rv, cam_tv, brd_rv, brd_tv,
                       fixed_camera=fixed, optimize_intrinsics=config.optimize_intrinsics, loss=config.loss,
                       f_scale_px=config.f_scale_px, prune_rounds=config.prune_rounds)
    if not ba.success:
        messages.append(f"bundle adjustment stopped before converging: {ba.message}")
    return ba, obs


def _inlier_corners(xy_solved: np.ndarray, frames: np.ndarray, obs: Observations, ba: BundleResult) -> np.ndarray:
    """A copy of ``xy_solved`` ``(S, F, N, 2)`` with the bundle adjustment's outliers set to NaN."""
    xy_solved = xy_solved.copy()
    out = ~ba.inlier
    xy_solved[obs.cam[out], frames[obs.frame[out]], obs.point[out]] = np.nan
    return xy_solved


def select_bundle_frames(views: np.ndarray, budget: int, frames: np.ndarray) -> np.ndarray:
    """At most ``budget`` of ``frames`` for the bundle adjustment, sorted.

    ``views`` is ``(S, F)`` bool (camera sees the board in frame). Cameras take turns picking
    their not-yet-chosen frame seen by the most cameras (ties: spread in time), so frames shared
    by many cameras come first and no camera is starved.
    """
    S, F = views.shape
    if F <= budget:
        return frames
    n_views = views.sum(0)
    # tie-break: interleave in time (bit-reversal-like order via a golden-ratio sequence)
    spread = (np.arange(F) * 0.6180339887) % 1.0
    order = np.lexsort((spread, -n_views))
    chosen = np.zeros(F, bool)
    queues = [order[views[s, order]] for s in range(S)]
    pos = [0] * S
    while chosen.sum() < budget and any(pos[s] < len(queues[s]) for s in range(S)):
        for s in range(S):
            while pos[s] < len(queues[s]) and chosen[queues[s][pos[s]]]:
                pos[s] += 1
            if pos[s] < len(queues[s]) and chosen.sum() < budget:
                chosen[queues[s][pos[s]]] = True
    return frames[np.flatnonzero(chosen)]


def _check_world_frame(world_frame, names, solved_idx, frame_ids, seen) -> int | None:
    """Index on the common frame axis of ``CAM:FRAME`` (checked before any solving), or None."""
    if not world_frame:
        return None
    cam, _, fr = str(world_frame).rpartition(":")
    keys = [normalize_camera_name(names[c]) for c in solved_idx]
    if not cam or normalize_camera_name(cam) not in keys or not fr.strip().lstrip("-").isdigit():
        raise CalibrationError(f"world frame {world_frame!r}: expected CAM:FRAME with CAM one of the calibrated "
                               f"cameras ({', '.join(names[c] for c in solved_idx)}) and FRAME a frame index")
    c = solved_idx[keys.index(normalize_camera_name(cam))]
    hit = np.flatnonzero(frame_ids == int(fr))
    if not len(hit) or not seen[c, hit[0]]:
        ok = frame_ids[seen[c]]
        raise CalibrationError(f"world frame {world_frame}: camera {names[c]} did not see the board in frame {fr.strip()}; "
                               f"choose one where it did (e.g. {', '.join(str(int(i)) for i in ok[:8])})")
    return int(hit[0])


def _world(world_frame, world_f, cam_from_ref, ref_from_board, views, frames, frame_ids, messages):
    centers = np.stack([-(T[:3, :3].T @ T[:3, 3]) for T in cam_from_ref])
    if world_f is not None:
        return (ref_from_world_floor_board(ref_from_board[world_f], centers),
                f"board on the floor in frame {world_frame}: origin at its first corner, Z up")
    best = frames[np.argmax(views[:, frames].sum(0))]
    messages.append(f"no world frame given: Z up from the cameras' mean up direction, origin at the board in frame "
                    f"{int(frame_ids[best])}; use --world-frame CAM:FRAME with the board on the floor for a metric floor")
    return (ref_from_world_cameras_up(cam_from_ref, ref_from_board[best, :3, 3]),
            f"Z up from the cameras' mean up direction; origin at the board's first corner in frame {int(frame_ids[best])}")


def evaluate_rig(rig: Rig, detections: dict[str, Detections], board: Board, prune_rounds: int = 2) -> dict:
    """Reprojection error of a given calibration on board detections (cameras held fixed).

    Only the board pose of each frame is fitted (robust loss and pruning as in
    :func:`calibrate_rig_from_detections`), so the number is comparable with a calibration's own
    bundle RMS on the same corners.

    Returns:
        ``{"rms_px": float, "camera_rms_px": {name: float}, "observations_used": int}``.
    """
    names = [n for n in detections if normalize_camera_name(n) in {normalize_camera_name(c) for c in rig.names}]
    cams = [rig[n] for n in names]
    xy, frame_ids = align_frames({n: detections[n] for n in names})
    T = np.stack([board_poses(xy[c], cam.K, cam.dist, board)[0] for c, cam in enumerate(cams)])  # (C, F, 4, 4)
    seen = np.isfinite(T[..., 0, 0])
    frames = np.flatnonzero(seen.any(0))
    n_corners = np.isfinite(xy[..., 0]).sum(-1)
    ref_from_board = np.stack([invert_rigid(cams[c].cam_from_world) @ T[c, f] for f, c in
                               zip(frames, np.argmax(np.where(seen[:, frames], n_corners[:, frames], -1), axis=0))])
    sub = xy[:, frames]
    c_i, f_i, p_i = np.nonzero(np.isfinite(sub[..., 0]))
    obs = Observations(c_i, f_i, p_i, sub[c_i, f_i, p_i])
    cam_rv, cam_tv = transforms_to_rvec_tvec(np.stack([c.cam_from_world for c in cams]))
    brd_rv, brd_tv = transforms_to_rvec_tvec(ref_from_board)
    ba = bundle_adjust(obs, board.object_points, np.stack([c.K for c in cams]), np.stack([c.dist for c in cams]),
                       cam_rv, cam_tv, brd_rv, brd_tv, optimize_cameras=False, optimize_intrinsics=False,
                       prune_rounds=prune_rounds)
    return {"rms_px": ba.rms_px, "camera_rms_px": dict(zip(names, ba.camera_rms(obs, len(cams)).tolist())),
            "observations_used": int(ba.inlier.sum())}


def write_calibration(result: RigCalibrationResult, out: str | Path) -> list[Path]:
    """Write ``calibration.yaml`` (or ``.toml``) and the report files beside it; returns the paths."""
    from mocap.calibration.io import save_calibration
    from mocap.calibration.report import write_report

    if not result:
        raise CalibrationError("calibration failed: " + "; ".join(result.messages[-3:]))
    out = Path(out)
    paths = [save_calibration(result.rig, out)]
    paths += write_report(result.report, out.parent, out.stem, result.coverage)
    return paths
