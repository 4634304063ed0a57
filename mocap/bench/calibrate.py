"""Rig calibration speed and accuracy: a synthetic 6-camera studio, 300 frames per camera.

Renders (once, cached under ``cache_dir()/bench_calibrate``) one video per camera of a 9×6
checkerboard with 80 mm squares waved through a ring of 1280×720 cameras (blur, noise, lighting
gradient; the board is only partly in view or absent in many frames), then times
``calibrate_rig`` on the videos — decoding, corner detection, intrinsics, extrinsic
initialisation, bundle adjustment, world frame from the floor board, report — and compares the
result with the true cameras. The target is under 60 s on 2 cores.
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


def run(args) -> dict:
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
