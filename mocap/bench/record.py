"""Recording and sync: peak memory and dropped frames of a long take; sub-frame offsets of
shifted real footage.

``--part capture``: 4 synthetic 1280x720 cameras at 60 fps recorded for ``--duration`` seconds
(default 300): peak RSS sampled every second (and the process's maximum), frames dropped by the
recorder itself (queue full: the encoder fell behind) and when, each queue's peak against its
length, the CPU the take used, frames per camera, spread.

``--part sync``: the real Pose2Sim balancing take's OpenPose keypoints with one camera shifted
by k = 1..10 frames and by half a frame (keypoints interpolated); ``mocap sync``'s estimate of
the shifted camera's offset, relative to its estimate on the unshifted take (the demo's own
cameras are not exactly in step), and the median reprojection error of ``mocap reconstruct``
without and with the recovered offsets.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from mocap.paths import shared_data_dir

TRIAL = "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
CALIBRATION = "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt"
SHIFTS = (0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


def add_arguments(parser) -> None:
    parser.add_argument("--part", choices=("capture", "sync", "all"), default="all", help="which benchmark (default all)")
    parser.add_argument("--duration", type=float, default=300.0, help="capture: seconds to record (default 300)")
    parser.add_argument("--cameras", type=int, default=4, help="capture: synthetic cameras (default 4)")
    parser.add_argument("--fps", type=float, default=60.0, help="capture: frame rate (default 60)")
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 720), help="capture: width height (default 1280 720)")
    parser.add_argument("--out", type=Path, default=None, help="capture: session folder (default: a temporary one)")
    parser.add_argument("--camera", default="cam_02", help="sync: the camera shifted (default cam_02)")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_capture(args) -> dict:
    from mocap.record.options import RecordConfig
    from mocap.record.session import record_session

    rig = {"fps": args.fps, "cameras": {f"cam{i + 1:02d}": {"source": {"synthetic": {
        "size": list(args.size), "jitter_ms": 1.0}}} for i in range(args.cameras)}}
    samples, stop = [], threading.Event()

    def sample():
        while not stop.wait(1.0):
            samples.append(_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "take"
        rss0 = _rss_mb()
        sampler.start()
        t0, c0 = time.perf_counter(), time.process_time()
        result = record_session(rig, out, args.duration, RecordConfig())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        size_mb = sum(p.stat().st_size for p in Path(out).rglob("*.mp4")) / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rep = result.report
    res = {"cameras": args.cameras, "fps": args.fps, "size": list(args.size), "duration_s": round(result.duration_s, 1),
           "wall_s": round(wall, 1), "rss_start_mb": round(rss0, 1), "peak_rss_mb": round(peak, 1),
           "rss_first_minute_max_mb": round(max(samples[:60], default=rss0), 1),
           "rss_last_minute_max_mb": round(max(samples[-60:], default=rss0), 1),
           "frames": {n: c["frames"] for n, c in rep["cameras"].items()},
           "dropped_by_recorder": {n: c["dropped_by_recorder"] for n, c in rep["cameras"].items()},
           "dropped_by_camera": {n: c["dropped"] for n, c in rep["cameras"].items()},
           "dropped_by_recorder_at_s": {n: c["dropped_by_recorder_at_s"] for n, c in rep["cameras"].items()},
           "queue_peak": {n: c["queue_peak"] for n, c in rep["cameras"].items()},
           "queue_frames": {n: c["queue_frames"] for n, c in rep["cameras"].items()},
           "cpu_s": round(cpu, 1),
           "spread_ms": rep["spread_ms"], "video_mb": round(size_mb, 1), "fault": result.fault}
    print(f"capture: {args.cameras} x {args.size[0]}x{args.size[1]} @ {args.fps:g} fps for {res['duration_s']} s")
    print(f"  peak RSS {res['peak_rss_mb']} MB (start {res['rss_start_mb']}, max in the first minute "
          f"{res['rss_first_minute_max_mb']}, in the last minute {res['rss_last_minute_max_mb']})")
    print(f"  frames per camera {res['frames']}; dropped by the recorder {res['dropped_by_recorder']}")
    queues = ", ".join(f"{n} {res['queue_peak'][n]}/{res['queue_frames'][n]}" for n in res["frames"])
    print(f"  queue peak / length {queues}; CPU {res['cpu_s']} s in {res['wall_s']} s "
          f"({res['cpu_s'] / max(res['wall_s'], 1e-9):.2f} cores)")
    for n, at in res["dropped_by_recorder_at_s"].items():
        if at:
            print(f"  {n}: recorder drops at " + ", ".join(f"{t:.2f}" for t in at[:10]) + (" ..." if len(at) > 10 else "")
                  + " s")
    print(f"  spread median {rep['spread_ms']['median']:.2f} ms, p95 {rep['spread_ms']['p95']:.2f} ms; "
          f"videos {res['video_mb']} MB")
    return res


def _shifted(kp, c: int, shift: float):
    """Camera ``c``'s frame j shows the original frame j + shift (interpolated)."""
    from mocap.record.resample import resample_keypoints

    T, C = kp.data.shape[:2]
    pos = np.tile(np.arange(T, dtype=np.float64)[:, None], (1, C))
    pos[:, c] += shift
    return resample_keypoints(kp, pos)


def _reprojection(kp, rig) -> float:
    from mocap.config import ProcessConfig
    from mocap.evaluate import reprojection_vs_keypoints
    from mocap.pipeline import reconstruct

    tracks = reconstruct(kp, rig, ProcessConfig(), fps=60.0)
    return float(np.nanmean(list(reprojection_vs_keypoints(tracks, rig, kp).values())))


def run_sync(args) -> dict:
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.record.resample import apply_sync
    from mocap.record.sync import estimate_offsets

    shared = shared_data_dir()
    rig = load_calibration(shared / CALIBRATION)
    kp = align_to_rig(load_openpose(shared / TRIAL / "pose", "body_25b"), rig)
    c = rig.index(args.camera)
    t0 = time.perf_counter()
    base = estimate_offsets(kp, rig)
    base_off = base.sync.offsets[rig.names[c]]
    rows = [{"shift": 0.0, "recovered": 0.0, "error": 0.0, "offsets": base.sync.offsets,
             "reproj_px_unsynced": _reprojection(kp, rig), "reproj_px_synced": _reprojection(apply_sync(kp, base.sync), rig)}]
    for k in SHIFTS:
        moved = _shifted(kp, c, k)
        est = estimate_offsets(moved, rig)
        rec = est.sync.offsets[rig.names[c]] - base_off
        rows.append({"shift": float(k), "recovered": rec, "error": rec - k, "offsets": est.sync.offsets,
                     "reproj_px_unsynced": _reprojection(moved, rig),
                     "reproj_px_synced": _reprojection(apply_sync(moved, est.sync), rig)})
    wall = time.perf_counter() - t0
    print(f"sync: {args.camera} shifted, Pose2Sim balancing take (4 cameras x 100 frames, OpenPose body_25b); "
          f"unshifted take's own offsets: " + ", ".join(f"{n} {o:+.2f}" for n, o in base.sync.offsets.items()))
    print("  shift  recovered  error   reprojection px: shifted, no sync -> with sync.yaml")
    for r in rows:
        print(f"  {r['shift']:5.1f}  {r['recovered']:9.3f}  {r['error']:+.3f}   {r['reproj_px_unsynced']:6.2f} -> "
              f"{r['reproj_px_synced']:6.2f}")
    worst = max(abs(r["error"]) for r in rows)
    print(f"  worst error {worst:.3f} frames; {wall:.1f} s for {len(rows)} estimates")
    return {"camera": args.camera, "rows": rows, "worst_error_frames": worst, "wall_s": wall}


def run(args) -> dict:
    out = {}
    if args.part in ("sync", "all"):
        out["sync"] = run_sync(args)
    if args.part in ("capture", "all"):
        out["capture"] = run_capture(args)
    return out
