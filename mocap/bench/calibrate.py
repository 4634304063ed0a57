"""Rig calibration speed and accuracy: a synthetic 6-camera studio, 300 frames per camera.

Renders (once, cached under ``cache_dir()/bench_calibrate``) one video per camera of a 9×6
checkerboard with 80 mm squares waved through a ring of 1280×720 cameras (blur, noise, lighting
gradient; the board is only partly in view or absent in many frames), then times
``calibrate_rig`` on the videos — decoding, corner detection, intrinsics, extrinsic
initialisation, bundle adjustment, world frame from the floor board, report — and compares the
result with the true cameras. The target is under 60 s on 2 cores.

``--caliscope`` instead compares, on caliscope's real 4-camera ChArUco rig (``../shared``), where
each camera's lens comes from against caliscope's ``camera_array.toml``: (a) its own lens views
(the board waved before it), (b) its shared views, (c) both pooled (what ``mocap calibrate
--lens-views`` does), (d) a bundle adjustment over the shared and lens views with every lens
free, started from (c); each with the rig solved over the shared views, lenses held.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mocap.paths import cache_dir

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--cameras", type=int, default=6, help="cameras in the rendered studio (default 6)")
    parser.add_argument("--frames", type=int, default=300, help="frames per camera")
    parser.add_argument("--width", type=int, default=1280, help="image width, px (default 1280)")
    parser.add_argument("--height", type=int, default=720, help="image height, px (default 720)")
    parser.add_argument("--workers", type=int, default=2, help="processes for corner detection")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="also write calibration.yaml and the report here")
    parser.add_argument("--caliscope", action="store_true",
                        help="instead: lens sources compared on caliscope's real rig (needs ../shared)")


def _board():
    from mocap.calibration.boards import Board

    return Board("checkerboard", 9, 6, 0.08, name="bench_9x6_80mm")


def _render_camera(job) -> str:
    import cv2

    from mocap.calibration.render import render_board_view

    board, cam, world_from_board, path, seed = job
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.avi")
    w, h = cam.size
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h), False)
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for T in world_from_board:
        writer.write(render_board_view(board, cam, cam.cam_from_world @ T, rng))
    writer.release()
    tmp.rename(path)
    return str(path)


def render_bench_videos(n_cameras: int, n_frames: int, size: tuple[int, int], seed: int, workers: int = 2):
    """Render (or reuse) the benchmark videos; returns ``(studio, {name: path})``."""
    from mocap.calibration.render import synthetic_studio

    board = _board()
    studio = synthetic_studio(board, n_cameras, n_frames, np.random.default_rng(seed), size=size)
    folder = cache_dir() / "bench_calibrate" / f"v2_c{n_cameras}_f{n_frames}_{size[0]}x{size[1]}_s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {cam.name: folder / f"{cam.name}.avi" for cam in studio.rig}
    todo = [(board, cam, studio.world_from_board, paths[cam.name], seed * 100 + c)
            for c, cam in enumerate(studio.rig) if not paths[cam.name].is_file()]
    if todo:
        print(f"rendering {len(todo)} camera videos of {n_frames} frames into {folder} (once) ...")
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(_render_camera, todo))
    return studio, {n: str(p) for n, p in paths.items()}


def _angle_deg(Ra, Rb) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1))))


CALISCOPE = "calibration/caliscope_charuco_4cam"


def compare_rigs(rig, ref) -> dict:
    """Centre (mm) and orientation (deg) errors of ``rig`` against ``ref`` after a similarity
    alignment (Umeyama), fx error (%) and the scale."""
    A, B = rig.centers, ref.centers
    ma, mb = A.mean(0), B.mean(0)
    U, S, Vt = np.linalg.svd((B - mb).T @ (A - ma))
    D = np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = np.sum(S * np.diag(D)) / np.sum((A - ma) ** 2)
    return {"centre_mm": (np.linalg.norm(s * A @ R.T + (mb - s * R @ ma) - B, axis=1) * 1000).tolist(),
            "angle_deg": [_angle_deg(c.R @ R.T, r.R) for c, r in zip(rig, ref)],
            "fx_pct": [float((c.K[0, 0] / r.K[0, 0] - 1) * 100) for c, r in zip(rig, ref)], "scale": float(s)}


def _joint_lenses(res, shared: dict, own: dict, board) -> list:
    """Variant (d): one bundle adjustment over the shared views and every camera's own lens views
    (single-camera board poses), all lenses free, started from the rig ``res``."""
    from mocap.calibration.bundle import Observations, bundle_adjust
    from mocap.calibration.extrinsics import board_poses, invert_rigid, transforms_to_rvec_tvec
    from mocap.geometry.camera import Camera

    cams = list(res.rig)
    xy = np.stack([shared[c.name].xy for c in cams])  # (C, F, N, 2), frames by index
    ok = np.isfinite(res.world_from_board[:, 0, 0])
    poses = list(res.world_from_board[ok])
    c_i, f_i, p_i = np.nonzero(np.isfinite(xy[..., 0]) & ok[None, :, None])
    rows = [(c_i, np.cumsum(ok)[f_i] - 1, p_i, xy[c_i, f_i, p_i])]
    for c, cam in enumerate(cams):
        d = own[cam.name]
        T = board_poses(d.xy, cam.K, cam.dist, board)[0]
        for t in np.flatnonzero(np.isfinite(T[:, 0, 0])):
            seen = np.flatnonzero(np.isfinite(d.xy[t, :, 0]))
            rows.append((np.full(len(seen), c), np.full(len(seen), len(poses)), seen, d.xy[t, seen]))
            poses.append(invert_rigid(cam.cam_from_world) @ T[t])
    obs = Observations(*(np.concatenate([r[k] for r in rows]) for k in range(4)))
    cam_rv, cam_tv = transforms_to_rvec_tvec(np.stack([c.cam_from_world for c in cams]))
    brd_rv, brd_tv = transforms_to_rvec_tvec(np.stack(poses))
    ba = bundle_adjust(obs, board.object_points, np.stack([c.K for c in cams]), np.stack([c.dist for c in cams]),
                       cam_rv, cam_tv, brd_rv, brd_tv, optimize_intrinsics=True)
    return [Camera(c.name, c.size, ba.K[k], ba.dist[k], np.eye(3), np.zeros(3)) for k, c in enumerate(cams)]


def _caliscope_variants(shared: dict, own: dict, board) -> dict:
    """``{variant: (lenses or None, rig result)}`` for the variants (a)-(d) of ``--caliscope``."""
    from mocap.calibration.intrinsics import calibrate_intrinsics
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections
    from mocap.geometry.camera import Camera

    held = RigCalibrationConfig(optimize_intrinsics=False)

    def rig_with(fits):
        lenses = {n: Camera(n, f.image_size, f.K, f.dist, np.eye(3), np.zeros(3)) for n, f in fits.items()}
        return calibrate_rig_from_detections(shared, board, held, initial_intrinsics=lenses)

    out = {"(a) own lens views": rig_with({n: calibrate_intrinsics(own[n], board) for n in shared}),
           "(b) shared views": rig_with({n: calibrate_intrinsics(shared[n], board) for n in shared}),
           "(c) pooled (--lens-views)": calibrate_rig_from_detections(shared, board, lens_detections=own)}
    joint = _joint_lenses(out["(c) pooled (--lens-views)"], shared, own, board)
    out["(d) joint BA, lenses free"] = calibrate_rig_from_detections(shared, board, held,
                                                                     initial_intrinsics={c.name: c for c in joint})
    return out


def run_caliscope(args) -> dict:
    """``mocap bench calibrate --caliscope``: the lens variants against caliscope's calibration."""
    from mocap.calibration.boards import load_board
    from mocap.calibration.detect_corners import detect_sources
    from mocap.calibration.each_camera import detect_lens_views
    from mocap.calibration.io import load_calibration
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections, evaluate_rig
    from mocap.paths import shared_data_dir

    root = shared_data_dir() / CALISCOPE
    board = load_board("charuco_4x5_54mm_inverted")
    ref = load_calibration(root / "post_optimization" / "camera_array.toml")
    names = [f"cam_{i}" for i in range(4)]
    shared = detect_sources({n: root / "post_optimization/calibration/extrinsic" / f"{n}.mp4" for n in names}, board,
                            workers=args.workers)
    own = detect_lens_views({n: root / "prerecorded_calibration/calibration/intrinsic" / f"{n}.mp4" for n in names},
                            board, workers=args.workers)[0]
    theirs = evaluate_rig(ref, shared, board)["rms_px"]
    variants = _caliscope_variants(shared, own, board)
    variants["caliscope's lenses held"] = calibrate_rig_from_detections(
        shared, board, RigCalibrationConfig(optimize_intrinsics=False), initial_intrinsics={c.name: c for c in ref})
    print(f"\nmocap bench calibrate --caliscope: against caliscope's camera_array.toml (its own RMS on these "
          f"corners {theirs:.3f} px)")
    print(f"{'lenses from':38} {'fx % cam_0..3':>30} {'centres mm':>24} {'angles deg':>24} {'RMS px':>7}")
    result = {"caliscope_rms_px": theirs, "variants": {}}
    for label, res in variants.items():
        cmp = compare_rigs(res.rig, ref)
        cmp["rms_px"] = evaluate_rig(res.rig, shared, board)["rms_px"]
        cmp["failed"] = sorted(res.failed)
        result["variants"][label] = cmp
        print(f"{label:38} {' '.join(f'{v:+6.1f}' for v in cmp['fx_pct']):>30} "
              f"{' '.join(f'{v:5.1f}' for v in cmp['centre_mm']):>24} {' '.join(f'{v:5.2f}' for v in cmp['angle_deg']):>24} "
              f"{cmp['rms_px']:7.3f}" + (f"  failed: {', '.join(cmp['failed'])}" if cmp["failed"] else ""))
    print("RMS: the rig on the shared views' corners, cameras held. failed: the command's checks; in (a), (b), (d) "
          "the lenses are given to the rig, so only its RMS, inlier and agreement checks apply")
    return result


def run(args) -> dict:
    if getattr(args, "caliscope", False):
        return run_caliscope(args)
    from mocap.calibration.detect_corners import detect_sources
    from mocap.calibration.rig import RigCalibrationConfig, calibrate_rig_from_detections, write_calibration

    board = _board()
    studio, sources = render_bench_videos(args.cameras, args.frames, (args.width, args.height), args.seed, args.workers)
    floor_cam = studio.rig.names[int(np.argmax(studio.visible[:, 0]))]
    config = RigCalibrationConfig(workers=args.workers, world_frame=f"{floor_cam}:0")
    t0 = time.perf_counter()
    dets = detect_sources(sources, board, workers=args.workers)
    t1 = time.perf_counter()
    res = calibrate_rig_from_detections(dets, board, config)
    t2 = time.perf_counter()
    if args.out:
        write_calibration(res, Path(args.out) / "calibration.yaml")
    rows = []
    for cam in res.rig:
        true = studio.rig[cam.name]
        rows.append({"camera": cam.name, "centre_err_mm": float(np.linalg.norm(cam.center - true.center) * 1000),
                     "angle_err_deg": _angle_deg(cam.R, true.R), "fx_err_pct": float((cam.K[0, 0] / true.K[0, 0] - 1) * 100),
                     "rms_px": cam.rms_px, "frames_with_board": int(dets[cam.name].valid.sum())})
    sq = res.report["square_length_check"]
    result = {
        "cameras": args.cameras, "frames": args.frames, "size": [args.width, args.height], "workers": args.workers,
        "time_detect_s": t1 - t0, "time_solve_s": t2 - t1, "time_total_s": t2 - t0,
        "bundle_observations": res.report["bundle"]["observations"], "bundle_rms_px": res.bundle.rms_px,
        "max_centre_err_mm": max(r["centre_err_mm"] for r in rows), "max_angle_err_deg": max(r["angle_err_deg"] for r in rows),
        "max_abs_fx_err_pct": max(abs(r["fx_err_pct"]) for r in rows),
        "square_mean_err_mm": sq["mean_error_mm"], "square_sd_err_mm": sq["sd_error_mm"], "per_camera": rows,
    }
    print(f"\nmocap bench calibrate: {args.cameras} cameras x {args.frames} frames, {args.width}x{args.height}, "
          f"{args.workers} workers")
    print(f"{'camera':8} {'centre mm':>10} {'angle deg':>10} {'fx %':>8} {'RMS px':>8} {'frames':>7}")
    for r in rows:
        print(f"{r['camera']:8} {r['centre_err_mm']:10.3f} {r['angle_err_deg']:10.4f} {r['fx_err_pct']:8.4f} "
              f"{r['rms_px']:8.3f} {r['frames_with_board']:7d}")
    print(f"square length check: {sq['mean_error_mm']:+.3f} ± {sq['sd_error_mm']:.3f} mm over {sq['n']} edges")
    print(f"time: detection {result['time_detect_s']:.1f} s, solve {result['time_solve_s']:.1f} s, "
          f"total {result['time_total_s']:.1f} s (target < 60 s on 2 cores)")
    log.debug(json.dumps(result, default=float))
    return result
