"""Long takes: peak memory of chunked reconstruction from 1 to 10 minutes, and Ray workers.

A synthetic studio take (real CMU motion, every detector error on; ``--cameras`` cameras,
``--people`` performers, 30 fps) of the longest duration asked is generated once into a
:class:`~mocap.runtime.frames.FrameFile` (2D keypoints on disk: no video decoding); each
duration is its first minutes. Every measurement runs in a fresh Python process that
reconstructs the take chunk by chunk into a ``tracks.npz`` written a block of frames at a time
(:func:`~mocap.runtime.chunked.reconstruct_chunked_to_file`) and reports its peak RSS
(:func:`peak_rss_mb`) and time. At ``--check-minutes`` the chunked result is
compared with one pass (joints, identities). With ``--ray 1,2``, the longest take is run again
with a local Ray runtime of that many CPUs; the per-task time and the projection to a cluster
(``sequential + per_task x tasks / workers``, sequential: the linking and the smoother)
are printed.

With ``--video``, the take is real video instead: the 4-camera demo take's videos played forth
and back (frames 0..N-1, N-2..1, 0..: the performer never jumps, so the take keeps its people)
to each duration (every ``--stride``-th frame, the frame rate divided by the stride, so a minute
stays a minute with fewer frames to detect; the first ``--cameras`` cameras) into a temporary
folder (``--work``: a kept one), never into the repository; one period of the ping-pong is
encoded (H.264, CRF 12) and its compressed frames repeated. Each duration runs the whole
``mocap process`` (detection in chunks of ``--detect-chunk-frames``, ``--detect-chunk-mode``,
on ``--workers`` processes; reconstruction; export) in a fresh process whose process tree's RSS is sampled every
``--sample-seconds`` (printed at each minute mark of the take's detection and at each stage
change; peak per stage). At ``--check-minutes`` the take is also detected and reconstructed in
one pass and compared with the chunked run (detections identical? joints, IDs).
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--minutes", default="1,2,5,10", help="take durations, minutes (default 1,2,5,10)")
    parser.add_argument("--cameras", type=int, default=8, help="cameras (default 8)")
    parser.add_argument("--people", type=int, default=2, help="performers (default 2)")
    parser.add_argument("--chunk-frames", type=int, default=1800,
                        help="frames per reconstruction chunk (default 1800)")
    parser.add_argument("--check-minutes", type=float, default=1.0,
                        help="compare chunked with one pass on this many minutes (0: skip; default 1)")
    parser.add_argument("--ray", default="", help="Ray CPU counts to run the longest take with, e.g. 1,2")
    parser.add_argument("--work", default=None, help="folder for the generated take (default: a temporary one)")
    parser.add_argument("--video", action="store_true",
                        help="a real-video take instead: the demo videos played forth and back to each duration "
                             "(mocap process)")
    parser.add_argument("--export", action="store_true",
                        help="peak RSS of export (BVH + FBX) instead, on the synthetic take's true joints")
    parser.add_argument("--rig", default="canonical",
                        help="with --export: target rigs, comma-separated, or all (default canonical)")
    parser.add_argument("--stride", type=int, default=1,
                        help="with --video: keep every N-th frame of the loop (frame rate / N; default 1)")
    parser.add_argument("--detect-chunk-frames", type=int, default=600,
                        help="with --video: detect in chunks of this many frames (default 600)")
    parser.add_argument("--detect-chunk-mode", default="exact", choices=["exact", "warmup"],
                        help="with --video: exact (tracker carried across chunks, default) or warmup")
    parser.add_argument("--workers", type=int, default=1,
                        help="with --video: cameras detected in parallel processes (default 1)")
    parser.add_argument("--sample-seconds", type=float, default=5.0,
                        help="with --video: sample the run's memory this often (default 5 s)")


def generate(folder: str, minutes: float, cameras: int, people: int, seed: int = 0) -> None:
    """The synthetic take into ``folder`` (:func:`~mocap.runtime.frames.save_frames` + ``rig.pkl``)."""
    from mocap.runtime.frames import save_frames
    from mocap.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=seed, num_frames=int(round(minutes * 60 * 30)), fps=30.0,
                                       num_people=people, num_cameras=cameras))
    save_frames(scene.keypoints, folder)
    (Path(folder) / "rig.pkl").write_bytes(pickle.dumps(scene.rig))


def measure(folder: str, frames: int, chunk_frames: int, ray_cpus: int = 0, check: bool = False) -> None:
    """Reconstruct the take's first ``frames`` in chunks into a ``tracks.npz`` written a block of
    frames at a time (:func:`~mocap.runtime.chunked.reconstruct_chunked_to_file`); print one JSON
    line (time, peak RSS)."""
    import time

    import numpy as np

    from mocap.runtime.chunked import reconstruct_chunked_to_file
    from mocap.runtime.executor import make_executor
    from mocap.runtime.frames import FrameFile

    rig = pickle.loads((Path(folder) / "rig.pkl").read_bytes())
    source = FrameFile(Path(folder), frames)
    executor = make_executor("ray", num_cpus=ray_cpus) if ray_cpus else None
    timings: dict = {}
    t0 = time.perf_counter()
    path = reconstruct_chunked_to_file(source, rig, Path(folder) / f"tracks_{frames}.npz", chunk_frames=chunk_frames,
                                       executor=executor, timings=timings)
    seconds = time.perf_counter() - t0
    with np.load(path) as f:
        people = len(f["track_ids"])
    out = {"frames": frames, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "people": people,
           "timings": timings, "ray_cpus": ray_cpus}
    if executor is not None:
        executor.close()
    if check:
        from mocap.io.tracks import load_tracks
        from mocap.pipeline import reconstruct

        tracks = load_tracks(path)
        one = reconstruct(source.part(0, frames), rig, chunk_frames=frames)
        same_nan = bool((np.isfinite(one.positions) == np.isfinite(tracks.positions)).all())
        out["check"] = {"max_joint_diff_m": float(np.nanmax(np.abs(one.positions - tracks.positions))),
                        "same_missing": same_nan, "same_ids": list(one.track_ids) == list(tracks.track_ids)}
    path.unlink()
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


def pingpong(k, frames: int):
    """Source frame of output frame ``k`` when ``frames`` frames play forth and back: 0..N-1,
    N-2..1, 0.. (period ``2N - 2``): the performer never jumps."""
    import numpy as np

    period = max(2 * frames - 2, 1)
    i = np.asarray(k) % period
    return np.where(i < frames, i, period - i)


def loop_videos(session: Path, folder: Path, minutes: float, stride: int, cameras: int) -> int:
    """The first ``cameras`` videos of ``session`` played forth and back (:func:`pingpong`) to
    ``minutes`` (every ``stride``-th frame of the ping-pong, frame rate / stride) into
    ``folder/videos/<cam>.mp4``. Returns the frames per camera. One period of the strided
    ping-pong is encoded once (:func:`encode_frames`: H.264 at CRF 12 with PyAV, else mp4v) and
    its compressed frames repeated (:func:`loop_packets`)."""
    from mocap.detect.session import session_videos
    from mocap.detect.video import video_info

    folder.joinpath("videos").mkdir(parents=True, exist_ok=True)
    count = 0
    for cam, src in list(session_videos(session).items())[:cameras]:
        info = video_info(src)
        fps = (info.fps or 30.0) / stride
        count = int(round(minutes * 60 * fps))
        dst = folder / "videos" / f"{cam}.mp4"
        if dst.is_file() and video_info(dst).frame_count == count:
            continue  # made by an earlier run (--work)
        period = math.lcm(max(2 * info.frame_count - 2, 1), stride) // stride
        order = pingpong(range(0, min(period, count) * stride, stride), info.frame_count)
        once = dst.with_name(f".{cam}.period.mp4")
        encode_frames(src, once if period < count else dst, order, fps, info.size)
        if period < count and not loop_packets(once, dst, count):
            encode_frames(src, dst, pingpong(range(0, count * stride, stride), info.frame_count), fps, info.size)
        once.unlink(missing_ok=True)
    return count


def encode_frames(src: Path, dst: Path, order, fps: float, size) -> None:
    """The frames ``order`` (source frame indices) of ``src`` encoded into ``dst``: H.264 (CRF 12,
    no B-frames) with PyAV, else mp4v with OpenCV. The frames used are decoded once and held."""
    wanted = {int(j) for j in order}
    try:
        import av
    except ImportError:
        import cv2

        from mocap.detect.video import read_frames

        frames = {i: f for i, f in read_frames(src) if i in wanted}
        writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        for i in order:
            writer.write(frames[int(i)])
        writer.release()
        return
    from fractions import Fraction

    with av.open(str(src)) as inp:  # the decoded planes as they are (no colour conversion)
        frames = {i: f.to_ndarray(format="yuv420p") for i, f in enumerate(inp.decode(video=0)) if i in wanted}
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast", "bf": "0"}
        for i in order:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[int(i)], format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def loop_packets(src: Path, dst: Path, count: int) -> bool:
    """``src``'s compressed frames repeated (timestamps shifted) into ``dst`` up to ``count`` frames;
    False when PyAV is not installed."""
    try:
        import av
    except ImportError:
        return False
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        packets = [p for p in inp.demux(inp.streams.video[0]) if p.dts is not None]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        for k in range(count):
            p = packets[k % len(packets)]
            q = av.Packet(bytes(p))
            shift = (k // len(packets)) * span
            q.pts, q.dts, q.duration, q.is_keyframe, q.time_base = p.pts + shift, p.dts + shift, p.duration, p.is_keyframe, p.time_base
            q.stream = stream
            out.mux(q)
    return True


def measure_video(session: str, calibration: str, out: str, detect_chunk: int, workers: int = 1,
                  detect_mode: str = "exact", chunk_frames: int | None = None) -> None:
    """``mocap process`` of a looped take (detection on ``workers`` processes); print one JSON line
    (time, this process's peak RSS)."""
    import time

    from mocap.config import ProcessConfig, override
    from mocap.pipeline import process_session

    config = override(ProcessConfig(), {"detect.workers": workers})
    t0 = time.perf_counter()
    result = process_session(session, calibration, out, config, progress=False, detect_chunk_frames=detect_chunk,
                             detect_chunk_mode=detect_mode, chunk_frames=chunk_frames)
    out = {"seconds": time.perf_counter() - t0, "timings": dict(result.timings_s),
           "peak_rss_mb": peak_rss_mb()}
    print(json.dumps(out))


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """``(VmRSS summed over pid and its descendants, the largest VmHWM among them)``, MB."""
    import os

    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += [c for c, pp in parents.items() if pp == p]
    rss = hwm = 0.0
    for p in tree:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        rss += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        hwm = max(hwm, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return rss, hwm


def take_progress(out: Path, cameras: list, frames: int) -> tuple[str, float]:
    """``(stage now running, fraction of the take's frames detected)`` from the files in ``out``."""
    done = 0
    for cam in cameras:
        if (out / "keypoints2d" / f"{cam}.npz").is_file():
            done += frames
            continue
        for p in (out / "keypoints2d" / f"{cam}.chunks").glob("[0-9]*-[0-9]*.npz"):  # not a file being written
            lo, hi = (int(v) for v in p.stem.split("-"))
            done += hi - lo
    stage = next((s for s in ("detect", "reconstruct", "export") if not (out / "stages" / f"{s}.yaml").is_file()), "report")
    return stage, min(1.0, done / max(1, frames * len(cameras)))


def traced_child(code: str, out: Path, cameras: list, frames: int, minutes: float, every_s: float) -> dict:
    """Run ``code`` in a fresh process, sampling its process tree's memory every ``every_s`` seconds
    (printing a line at each minute mark of the take's detection and at each stage change)."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trace, marks, last_stage, t0 = [], set(), None, time.perf_counter()
    print(f"  {'t s':>7} {'stage':>11} {'take min':>8} {'RSS MB':>8} {'max HWM MB':>10}")
    while proc.poll() is None:
        rss, hwm = tree_memory_mb(proc.pid)
        stage, frac = take_progress(out, cameras, frames)
        row = {"t": round(time.perf_counter() - t0, 1), "stage": stage, "take_minutes": round(frac * minutes, 3),
               "rss_mb": round(rss, 1), "hwm_mb": round(hwm, 1)}
        trace.append(row)
        mark = int(frac * minutes + 1e-9) if stage == "detect" else None
        if stage != last_stage or (mark and mark not in marks):
            marks.add(mark)
            last_stage = stage
            print(f"  {row['t']:7.1f} {stage:>11} {row['take_minutes']:8.2f} {rss:8.1f} {hwm:10.1f}", flush=True)
        time.sleep(every_s)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench child failed: {stderr[-2000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "trace": trace}


def run_video(args) -> dict:
    from mocap.bench.process import demo_take
    from mocap.detect.session import session_videos

    session, calibration = demo_take()
    minutes = [float(m) for m in args.minutes.split(",") if m]
    if args.stride < 1 or args.detect_chunk_frames < 1:
        raise ValueError("--stride and --detect-chunk-frames: expected >= 1")
    results = []
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="mocap-long-video-")
    root = Path(args.work or tmp.name)
    for m in minutes:
        take = root / f"take_{m:g}min_{args.cameras}cam_s{args.stride}_pingpong"
        frames = loop_videos(session, take, m, args.stride, args.cameras)
        cams = list(session_videos(take))
        print(f"{m:g} min: {frames} frames x {len(cams)} cameras (stride {args.stride}), detection on "
              f"{args.workers} process(es), chunks of {args.detect_chunk_frames} ({args.detect_chunk_mode})")
        out = take / f"out_{args.detect_chunk_mode}"
        code = (f"from mocap.bench.long_take import measure_video; measure_video({str(take)!r}, {str(calibration)!r}, "
                f"{str(out)!r}, {args.detect_chunk_frames}, {args.workers}, {args.detect_chunk_mode!r}, {args.chunk_frames})")
        r = traced_child(code, out, cams, frames, m, args.sample_seconds)
        results.append({"minutes": m, "frames_per_camera": frames, "cameras": len(cams), **r})
        print_video_result(results[-1])
        if abs(m - args.check_minutes) < 1e-9:
            results[-1]["check"] = check_video(take, calibration, out, args)
    rss = [max(row["rss_mb"] for row in r["trace"]) if r["trace"] else r["peak_rss_mb"] for r in results]
    print(f"peak RSS (process tree) from {minutes[0]:g} to {minutes[-1]:g} min (stride {args.stride}): "
          f"{rss[0]:.1f} -> {rss[-1]:.1f} MB ({100 * (rss[-1] / rss[0] - 1):+.1f} %)")
    if tmp is not None:
        tmp.cleanup()
    return {"video": results}


def check_video(take: Path, calibration: Path, out: Path, args) -> dict:
    """Chunked detection + chunked reconstruction (the run in ``out``) vs one pass of both, in a
    fresh process; prints and returns the comparison."""
    r = _child(f"from mocap.bench.long_take import one_pass_video; one_pass_video({str(take)!r}, {str(calibration)!r}, "
               f"{str(out)!r}, {args.workers}, {args.chunk_frames})")
    print(f"  chunked vs one pass ({r['frames']} frames; detection one pass {r['detect_s']:.1f} s): detections "
          f"identical {r['same_detections']}; joints max difference {r['max_joint_diff_m']:.2e} m, same missing "
          f"joints {r['same_missing']}, same IDs {r['same_ids']} (reconstruction in {r['chunks']} chunks)")
    return r


def one_pass_video(take: str, calibration: str, out: str, workers: int = 1, chunk_frames: int = 1800) -> None:
    """Detect ``take`` in one pass per camera and reconstruct it in one pass; compare with the chunked
    run in ``out``; print one JSON line."""
    import time

    import numpy as np

    from mocap.calibration.io import load_calibration
    from mocap.config import ProcessConfig, override
    from mocap.detect import detect_session
    from mocap.detect.pipeline import load_camera_detections
    from mocap.io.openpose import align_to_rig
    from mocap.io.tracks import load_tracks
    from mocap.pipeline import reconstruct
    from mocap.record.resample import session_timeline

    config = override(ProcessConfig(), {"detect.workers": workers})
    rig, folder = load_calibration(calibration), Path(out).parent / "one_pass"
    t0 = time.perf_counter()
    kp = detect_session(take, folder, config.detect, calibration=rig, match=config.match, chunk_frames=0)
    detect_s = time.perf_counter() - t0
    same = True
    for det in kp.extras["detections"]:
        chunked = load_camera_detections(Path(out) / "keypoints2d" / f"{det.camera}.npz")
        same &= all(np.array_equal(getattr(det, k), getattr(chunked, k), equal_nan=True)
                    for k in ("keypoints", "scores", "rois", "appearance", "frame_indices"))
    kp = session_timeline(align_to_rig(kp, rig), take)
    one = reconstruct(kp, rig, config, chunk_frames=kp.data.shape[0] + 1)
    tracks = load_tracks(Path(out) / "tracks.npz")
    a, b = one.positions, tracks.positions
    same_shape = a.shape == b.shape
    print(json.dumps({"frames": int(kp.data.shape[0]), "detect_s": detect_s, "same_detections": bool(same),
                      "max_joint_diff_m": float(np.nanmax(np.abs(a - b))) if same_shape else float("inf"),
                      "same_missing": bool(same_shape and (np.isfinite(a) == np.isfinite(b)).all()),
                      "same_ids": list(map(int, one.track_ids)) == list(map(int, tracks.track_ids)),
                      "chunks": -(-int(kp.data.shape[0]) // chunk_frames)}))


def print_video_result(r: dict) -> None:
    """The run's time per stage, and its process tree's peak RSS per stage and at each minute mark."""
    print(f"  wall {r['seconds']:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items())
          + f"); main process VmHWM {r['peak_rss_mb']:.1f} MB")
    for stage in ("detect", "reconstruct", "export", "report"):
        rows = [row for row in r["trace"] if row["stage"] == stage]
        if rows:
            print(f"  {stage:>11}: peak sampled RSS {max(x['rss_mb'] for x in rows):.1f} MB over {len(rows)} samples")
    marks = []
    for k in range(1, int(r["minutes"] + 1e-9) + 1):
        rows = [row for row in r["trace"] if row["stage"] == "detect" and k - 1 < row["take_minutes"] <= k]
        if rows:
            marks.append(f"{k} min {max(x['rss_mb'] for x in rows):.1f}")
    if marks:
        print("  detection RSS peak per minute of the take: " + ", ".join(marks) + " MB")


def measure_export(path: str, frames: int, out: str, formats: str = "bvh,fbx", rig: str = "canonical") -> None:
    """Export the tracks in ``path`` (``frames`` of them) as ``mocap export`` does: BVH and FBX read,
    solved and written a chunk of frames at a time (:func:`mocap.export.export_file`); print one
    JSON line (time, peak RSS)."""
    import time

    from mocap.export import export_file

    t0 = time.perf_counter()
    export_file(path, out, formats, rig=rig)
    print(json.dumps({"frames": frames, "rig": rig, "seconds": time.perf_counter() - t0,
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
        from mocap._checks import check_choice
        from mocap.export.rigs import RIGS

        rigs = list(RIGS) if args.rig == "all" else [r.strip() for r in args.rig.split(",") if r.strip()]
        for rig in rigs:
            check_choice(rig, RIGS, "--rig")
        print(f"{'minutes':>8} {'frames':>7} {'rig':>10} {'seconds':>8} {'peak RSS MB':>12}")
        for m in minutes:
            frames = int(round(m * 1800))
            path = save_tracks(first_frames(tracks, frames), Path(tmp) / f"tracks_{m:g}min.npz")  # read by the child
            for rig in rigs:
                r = _child(f"from mocap.bench.long_take import measure_export; measure_export("
                           f"{str(path)!r}, {frames}, {str(Path(tmp) / f'out{m:g}_{rig}')!r}, rig={rig!r})")
                results.append({"minutes": m, **r})
                print(f"{m:8g} {frames:7d} {rig:>10} {r['seconds']:8.1f} {r['peak_rss_mb']:12.1f}")
    for rig in rigs:
        rss = [r["peak_rss_mb"] for r in results if r["rig"] == rig]
        print(f"export ({rig}) peak RSS from {minutes[0]:g} to {minutes[-1]:g} min: {rss[0]:.1f} -> {rss[-1]:.1f} MB "
              f"({100 * (rss[-1] / rss[0] - 1):+.1f} %; largest {100 * (max(rss) / min(rss) - 1):.1f} % over the smallest)")
    return {"export": results}
