"""Long takes: peak memory of chunked reconstruction from 1 to 10 minutes, and Ray workers.

A synthetic studio take (real CMU motion, every detector error on; ``--cameras`` cameras,
``--people`` performers, 30 fps) of the longest duration asked is generated once into a
:class:`~mocap.runtime.frames.FrameFile` (2D keypoints on disk: no video decoding); each
duration is its first minutes. Every measurement runs in a fresh Python process that
reconstructs the take chunk by chunk (:func:`~mocap.runtime.chunked.reconstruct_chunked`) and
reports its peak RSS (:func:`peak_rss_mb`) and time. At ``--check-minutes`` the chunked result is
compared with one pass (joints, identities). With ``--ray 1,2``, the longest take is run again
with a local Ray runtime of that many CPUs; the per-task time and the projection to a cluster
(``sequential + per_task x tasks / workers``, sequential: the linking and the smoother)
are printed.

With ``--video``, the take is real video instead: the 4-camera demo take's videos looped to
each duration (every ``--stride``-th frame, the frame rate divided by the stride, so a minute
stays a minute with fewer frames to detect; the first ``--cameras`` cameras) into a temporary
folder, never into the repository. Each duration runs the whole ``mocap process`` (detection
in chunks of ``--detect-chunk-frames`` on one process, reconstruction, export) in a fresh
process that prints its peak RSS.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--minutes", default="1,2,5,10", help="take durations, minutes (default 1,2,5,10)")
    parser.add_argument("--cameras", type=int, default=8, help="cameras (default 8)")
    parser.add_argument("--people", type=int, default=2, help="performers (default 2)")
    parser.add_argument("--chunk-frames", type=int, default=1800, help="frames per chunk (default 1800)")
    parser.add_argument("--check-minutes", type=float, default=1.0,
                        help="compare chunked with one pass on this many minutes (0: skip; default 1)")
    parser.add_argument("--ray", default="", help="Ray CPU counts to run the longest take with, e.g. 1,2")
    parser.add_argument("--work", default=None, help="folder for the generated take (default: a temporary one)")
    parser.add_argument("--video", action="store_true",
                        help="a real-video take instead: the demo videos looped to each duration (mocap process)")
    parser.add_argument("--export", action="store_true",
                        help="peak RSS of export (BVH + FBX) instead, on the synthetic take's true joints")
    parser.add_argument("--stride", type=int, default=1,
                        help="with --video: keep every N-th frame of the loop (frame rate / N; default 1)")
    parser.add_argument("--detect-chunk-frames", type=int, default=600,
                        help="with --video: detect in chunks of this many frames (default 600)")


def generate(folder: str, minutes: float, cameras: int, people: int, seed: int = 0) -> None:
    """The synthetic take into ``folder`` (:func:`~mocap.runtime.frames.save_frames` + ``rig.pkl``)."""
    from mocap.runtime.frames import save_frames
    from mocap.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=seed, num_frames=int(round(minutes * 60 * 30)), fps=30.0,
                                       num_people=people, num_cameras=cameras))
    save_frames(scene.keypoints, folder)
    (Path(folder) / "rig.pkl").write_bytes(pickle.dumps(scene.rig))


def measure(folder: str, frames: int, chunk_frames: int, ray_cpus: int = 0, check: bool = False) -> None:
    """Reconstruct the take's first ``frames`` in chunks; print one JSON line (time, peak RSS)."""
    import time

    import numpy as np

    from mocap.runtime.chunked import reconstruct_chunked
    from mocap.runtime.executor import make_executor
    from mocap.runtime.frames import FrameFile

    rig = pickle.loads((Path(folder) / "rig.pkl").read_bytes())
    source = FrameFile(Path(folder), frames)
    executor = make_executor("ray", num_cpus=ray_cpus) if ray_cpus else None
    timings: dict = {}
    t0 = time.perf_counter()
    tracks = reconstruct_chunked(source, rig, chunk_frames=chunk_frames, executor=executor, timings=timings)
    seconds = time.perf_counter() - t0
    out = {"frames": frames, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
           "people": int(tracks.positions.shape[1]), "timings": timings, "ray_cpus": ray_cpus}
    if executor is not None:
        executor.close()
    if check:
        from mocap.pipeline import reconstruct

        one = reconstruct(source.part(0, frames), rig, chunk_frames=frames)
        same_nan = bool((np.isfinite(one.positions) == np.isfinite(tracks.positions)).all())
        out["check"] = {"max_joint_diff_m": float(np.nanmax(np.abs(one.positions - tracks.positions))),
                        "same_missing": same_nan, "same_ids": list(one.track_ids) == list(tracks.track_ids)}
    print(json.dumps(out))


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: ``VmHWM`` of ``/proc/self/status`` where there is
    one. (``ru_maxrss`` is not used on Linux: after ``exec`` it keeps the forking parent's RSS at
    the fork, so a child of a big parent reports the parent's size.)"""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(folder: Path, frames: int, chunk: int, ray_cpus: int = 0, check: bool = False) -> dict:
    return _child(f"from mocap.bench.long_take import measure; measure({str(folder)!r}, {frames}, {chunk}, {ray_cpus}, {check})")


def run(args) -> dict:
    if args.video:
        return run_video(args)
    if args.export:
        return run_export(args)
    minutes = [float(m) for m in args.minutes.split(",") if m]
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="mocap-long-take-")
    folder = Path(args.work or tmp.name) / f"take_{max(minutes):g}min_{args.cameras}cam_{args.people}p"
    if not (folder / "rig.pkl").is_file():
        print(f"generating a {max(minutes):g}-minute synthetic take ({args.cameras} cameras, {args.people} people) ...")
        subprocess.run([sys.executable, "-c", f"from mocap.bench.long_take import generate; generate({str(folder)!r}, "
                        f"{max(minutes)}, {args.cameras}, {args.people})"], check=True)
    results = {"memory": [], "ray": []}
    print(f"{'minutes':>8} {'frames':>7} {'seconds':>8} {'peak RSS MB':>12} {'people':>6}")
    for m in minutes:
        frames = int(round(m * 60 * 30))
        r = _measure(folder, frames, args.chunk_frames, check=abs(m - args.check_minutes) < 1e-9)
        results["memory"].append({"minutes": m, **r})
        print(f"{m:8g} {frames:7d} {r['seconds']:8.1f} {r['peak_rss_mb']:12.1f} {r['people']:6d}")
        if "check" in r:
            print(f"         chunked vs one pass: max joint difference {r['check']['max_joint_diff_m']:.2e} m, "
                  f"same missing joints {r['check']['same_missing']}, same IDs {r['check']['same_ids']}")
    rss = [r["peak_rss_mb"] for r in results["memory"]]
    print(f"peak RSS from {minutes[0]:g} to {minutes[-1]:g} min: {rss[0]:.1f} -> {rss[-1]:.1f} MB "
          f"({100 * (rss[-1] / rss[0] - 1):+.1f} %)")
    _run_ray(args, folder, minutes, results)
    if tmp is not None:
        tmp.cleanup()
    return results


def _run_ray(args, folder: Path, minutes, results: dict) -> None:
    cpus = [int(c) for c in args.ray.split(",") if c]
    if not cpus:
        return
    frames = int(round(max(minutes) * 60 * 30))
    local = results["memory"][-1]
    t = local["timings"]
    # the chunk tasks (2 per chunk): matching + per-frame triangulation, and each person's triangulation;
    # the linking over the whole take and the smoother's passes run in the driver, one after another
    parallel = t["identities"] - t.get("link", 0.0) + t["people"] - t.get("forward", 0.0)
    tasks = 2 * t["chunks"]
    per_task = parallel / tasks
    sequential = local["seconds"] - parallel
    print(f"\nRay on the {max(minutes):g}-minute take: local {local['seconds']:.1f} s "
          f"({tasks} chunk tasks, {per_task:.2f} s each; {sequential:.1f} s not in tasks)")
    for n in cpus:
        r = _measure(folder, frames, args.chunk_frames, ray_cpus=n)
        results["ray"].append(r)
        print(f"  ray, {n} CPU(s): {r['seconds']:.1f} s (speed-up {local['seconds'] / r['seconds']:.2f}x over local)")
    for w in (8, 64, 512):
        print(f"  projection, {w} workers: {sequential:.1f} + {per_task:.2f} x {tasks} / {w} = "
              f"{sequential + per_task * tasks / w:.1f} s")


def loop_videos(session: Path, folder: Path, minutes: float, stride: int, cameras: int) -> int:
    """The first ``cameras`` videos of ``session`` looped to ``minutes`` (every ``stride``-th frame,
    frame rate / stride) into ``folder/videos/<cam>.mp4``. Returns the frames per camera."""
    import cv2

    from mocap.detect.session import session_videos
    from mocap.detect.video import read_frames, video_info

    folder.joinpath("videos").mkdir(parents=True, exist_ok=True)
    count = 0
    for cam, src in list(session_videos(session).items())[:cameras]:
        info = video_info(src)
        fps = (info.fps or 30.0) / stride
        count = int(round(minutes * 60 * fps))
        writer = cv2.VideoWriter(str(folder / "videos" / f"{cam}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, info.size)
        written, i = 0, 0
        while written < count:
            for _, frame in read_frames(src):
                if i % stride == 0 and written < count:
                    writer.write(frame)
                    written += 1
                i += 1
        writer.release()
    return count


def measure_video(session: str, calibration: str, out: str, detect_chunk: int) -> None:
    """``mocap process`` of a looped take on one process; print one JSON line (time, peak RSS)."""
    import time

    from mocap.config import ProcessConfig, override
    from mocap.pipeline import process_session

    config = override(ProcessConfig(), {"detect.workers": 1})
    t0 = time.perf_counter()
    result = process_session(session, calibration, out, config, progress=False, detect_chunk_frames=detect_chunk)
    out = {"seconds": time.perf_counter() - t0, "timings": dict(result.timings_s),
           "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(out))


def run_video(args) -> dict:
    from mocap.bench.process import demo_take

    session, calibration = demo_take()
    minutes = [float(m) for m in args.minutes.split(",") if m]
    if args.stride < 1 or args.detect_chunk_frames < 1:
        raise ValueError("--stride and --detect-chunk-frames: expected >= 1")
    results = []
    print(f"{'minutes':>8} {'frames/cam':>10} {'cameras':>7} {'seconds':>8} {'detect s':>8} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory(prefix="mocap-long-video-") as tmp:
        for m in minutes:
            take = Path(tmp) / f"take_{m:g}min"
            frames = loop_videos(session, take, m, args.stride, args.cameras)
            r = _child(f"from mocap.bench.long_take import measure_video; measure_video({str(take)!r}, "
                       f"{str(calibration)!r}, {str(take / 'out')!r}, {args.detect_chunk_frames})")
            cams = len(list((take / "videos").iterdir()))
            results.append({"minutes": m, "frames_per_camera": frames, "cameras": cams, **r})
            print(f"{m:8g} {frames:10d} {cams:7d} {r['seconds']:8.1f} {r['timings']['detect']:8.1f} {r['peak_rss_mb']:12.1f}")
    rss = [r["peak_rss_mb"] for r in results]
    print(f"peak RSS from {minutes[0]:g} to {minutes[-1]:g} min (stride {args.stride}): {rss[0]:.1f} -> {rss[-1]:.1f} MB "
          f"({100 * (rss[-1] / rss[0] - 1):+.1f} %)")
    return {"video": results}


def measure_export(path: str, frames: int, out: str, formats: str = "bvh,fbx") -> None:
    """Export the first ``frames`` of the tracks in ``path``; print one JSON line (time, peak RSS)."""
    import time

    from mocap.export import export_tracks
    from mocap.io.tracks import load_tracks

    tracks = first_frames(load_tracks(path), frames)
    t0 = time.perf_counter()
    export_tracks(tracks, out, formats)
    print(json.dumps({"frames": frames, "seconds": time.perf_counter() - t0,
                      "peak_rss_mb": peak_rss_mb()}))


def first_frames(tracks, frames: int):
    """The first ``frames`` of ``tracks``."""
    from dataclasses import replace

    conf = None if tracks.confidence is None else tracks.confidence[:frames]
    return replace(tracks, positions=tracks.positions[:frames], frame_indices=tracks.frame_indices[:frames], confidence=conf)


def run_export(args) -> dict:
    """Peak RSS of BVH + FBX export of the synthetic take's true joints (``--people`` performers)."""
    import numpy as np

    from mocap.io.tracks import Tracks, save_tracks
    from mocap.synthetic import SyntheticConfig, make_scene

    minutes = [float(m) for m in args.minutes.split(",") if m]
    results = []
    with tempfile.TemporaryDirectory(prefix="mocap-long-export-") as tmp:
        scene = make_scene(SyntheticConfig(seed=0, num_frames=int(round(max(minutes) * 1800)), fps=30.0,
                                           num_people=args.people, num_cameras=2))
        T, P = scene.gt_positions.shape[:2]
        tracks = Tracks(scene.gt_positions, tuple(scene.joint_names), np.arange(1, P + 1), 30.0, np.arange(T))
        del scene
        print(f"{'minutes':>8} {'frames':>7} {'seconds':>8} {'peak RSS MB':>12}")
        for m in minutes:
            frames = int(round(m * 1800))
            path = save_tracks(first_frames(tracks, frames), Path(tmp) / f"tracks_{m:g}min.npz")  # the take, loaded too
            r = _child(f"from mocap.bench.long_take import measure_export; measure_export("
                       f"{str(path)!r}, {frames}, {str(Path(tmp) / f'out{m:g}')!r})")
            results.append({"minutes": m, **r})
            print(f"{m:8g} {frames:7d} {r['seconds']:8.1f} {r['peak_rss_mb']:12.1f}")
    rss = [r["peak_rss_mb"] for r in results]
    print(f"export peak RSS from {minutes[0]:g} to {minutes[-1]:g} min: {rss[0]:.1f} -> {rss[-1]:.1f} MB "
          f"({100 * (rss[-1] / rss[0] - 1):+.1f} %)")
    return {"export": results}
