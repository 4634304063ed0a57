"""2D detection speed: person-views per second, detector-every-frame vs tracking, peak memory;
with ``--photos``, people found in the shared multi-person photos.

Runs BlazePose on the real Pose2Sim balancing trial (``../shared/data``), or on the cached demo
session when the shared data is absent. A person-view is one person found in one camera frame;
the time includes video decoding, cropping, both models and the appearance descriptor.

``--photos``: the 12 photos of ``images_2d/mmpose_testdata`` (COCO, CrowdPose, OCHuman,
PoseTrack; 35 people), each detected on its own (:func:`mocap.detect.proposals.detect_people`),
scored per set by :mod:`mocap.detect.photos`: people found at OKS >= 0.5 over the 12 limb
keypoints, mean OKS of those found, extra detections per photo, ms per photo. With
``--detector onnx:MODEL`` the same proposals find the people and a user's top-down ONNX model
(:class:`~mocap.detect.onnx_backend.OnnxPose`) gives their keypoints (it must name the 12 limb
keypoints: COCO-17 names, or a sidecar ``.toml``).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np

from mocap.paths import shared_data_dir

TRIAL = "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"


def add_arguments(parser) -> None:
    parser.add_argument("--session", type=Path, default=None, help="session folder (default: the Pose2Sim balancing trial)")
    parser.add_argument("--cameras", type=int, default=4, help="how many cameras to run (0: no speed table, with --photos)")
    parser.add_argument("--frames", type=int, default=100, help="frames per camera")
    parser.add_argument("--photos", action="store_true",
                        help="also score the shared multi-person photos (people found at OKS >= 0.5, mean OKS, extras)")
    parser.add_argument("--detector", default="blazepose", metavar="blazepose|onnx:MODEL",
                        help="with --photos: whose keypoints are scored: blazepose (default), or onnx:MODEL.onnx, "
                             "a top-down model run on the people BlazePose's proposals find")
    parser.add_argument("--faces", action="store_true",
                        help="with --photos: add the full-range face detector's proposals (fetches it)")
    parser.add_argument("--threads", type=int, default=1,
                        help="LiteRT threads per model (1, the library default, is the most efficient per core; "
                             "use `mocap detect --workers 2` to fill 2 cores)")


def _session(args) -> Path:
    if args.session is not None:
        return args.session
    shared = shared_data_dir() / TRIAL
    if shared.is_dir():
        return shared
    from mocap.demo_data import fetch_demo_session

    return fetch_demo_session()


def _run_mode(videos, config, frames: int) -> dict:
    from mocap.detect.blazepose import BlazePose
    from mocap.detect.video import read_frames

    model = BlazePose(config)
    person_views = n_frames = 0
    elapsed = 0.0
    cpu0 = time.process_time()
    for video in videos:
        tracker = model.new_tracker()
        t0 = time.perf_counter()
        for _, frame in read_frames(video, stop=frames):
            res = tracker.step(frame)
            person_views += int(np.isfinite(res.scores).sum())
            n_frames += 1
        elapsed += time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return dict(person_views=person_views, frames=n_frames, seconds=elapsed, cpu_seconds=cpu,
                cpu_ms_per_person_view=1000 * cpu / max(person_views, 1),
                person_views_per_s=person_views / elapsed, ms_per_person_view=1000 * elapsed / max(person_views, 1))


def run(args) -> dict:
    from mocap.detect.blazepose import BlazePoseConfig
    from mocap.detect import session_videos

    if args.detector != "blazepose" and not (args.detector.startswith("onnx:") and Path(args.detector[5:]).is_file()):
        raise ValueError(f"--detector {args.detector}: expected blazepose or onnx:MODEL.onnx with an existing file")
    if args.cameras <= 0:
        return dict(photos=run_photos(faces=args.faces, threads=args.threads, detector=args.detector)) if args.photos else {}
    videos = list(session_videos(_session(args)).values())[: args.cameras]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = {}
    for name, cfg in (("detector every frame", BlazePoseConfig(tracking=False, num_threads=args.threads)),
                      ("tracking", BlazePoseConfig(tracking=True, num_threads=args.threads))):
        results[name] = _run_mode(videos, cfg, args.frames)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'mode':<22} {'person-views':>12} {'frames':>7} {'wall s':>7} {'pv/s':>7} {'ms/pv':>7} {'cpu ms/pv':>9}")
    for name, r in results.items():
        print(f"{name:<22} {r['person_views']:>12} {r['frames']:>7} {r['seconds']:>7.1f} "
              f"{r['person_views_per_s']:>7.1f} {r['ms_per_person_view']:>7.1f} {r['cpu_ms_per_person_view']:>9.1f}")
    load = os.getloadavg()[0]
    print(f"peak resident memory {peak_mb:.0f} MB (at start {rss0 / 1024:.0f} MB); threads {args.threads}; "
          f"load average {load:.1f} on {os.cpu_count()} cores (wall figures are pessimistic when it exceeds them)")
    out = dict(modes=results, peak_rss_mb=peak_mb, threads=args.threads, cameras=len(videos), load_average=load)
    if args.photos:
        out["photos"] = run_photos(faces=args.faces, threads=args.threads, detector=args.detector)
    return out


def photo_detector(detector: str = "blazepose", threads: int = 1, faces: bool = False):
    """``image -> (D, 12, 2)`` limb keypoints of every person found (:data:`~mocap.detect.photos.LIMBS`
    order): BlazePose with the multi-person proposals, or ``onnx:MODEL`` on the people they find."""
    from mocap.detect.blazepose import BlazePose, BlazePoseConfig
    from mocap.detect.photos import BLAZEPOSE_LIMBS, limb_columns
    from mocap.detect.proposals import FaceDetector, detect_people

    face = None
    if faces:
        from mocap.detect.models import fetch_models

        face = FaceDetector(fetch_models(optional=True)["face_detection_full_range"], threads)
    if detector == "blazepose":
        model = BlazePose(BlazePoseConfig(num_threads=threads))
        return lambda image: detect_people(model, image, faces=face)["keypoints"][:, BLAZEPOSE_LIMBS, :2]
    if not detector.startswith("onnx:"):
        raise ValueError(f"--detector: unknown detector {detector!r}; expected blazepose or onnx:MODEL.onnx")
    from mocap.detect.onnx_backend import OnnxConfig, OnnxPose

    model = OnnxPose(detector[len("onnx:"):], OnnxConfig(num_threads=threads), BlazePoseConfig(num_threads=threads))
    cols = limb_columns(model.joint_names, f"ONNX model {model.path}")
    return lambda image: model.detect_people(image, faces=face)["keypoints"][:, cols, :2]


def run_photos(faces: bool = False, threads: int = 1, detector: str = "blazepose") -> dict:
    """Score ``detector`` (:func:`photo_detector`) on the shared photo sets; prints a table."""
    import cv2

    from mocap.detect.photos import load_photos, score_photo

    find = photo_detector(detector, threads, faces)
    per_set: dict[str, dict] = {}
    for photo in load_photos(shared_data_dir() / "images_2d" / "mmpose_testdata"):
        image = cv2.imread(str(photo.path))
        t0, c0 = time.perf_counter(), time.process_time()
        found = find(image)
        ms, cpu_ms = 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)
        s = score_photo(photo, found)
        row = per_set.setdefault(photo.set_name, dict(photos=0, people=0, found=0, extra=0, oks=[], ms=0.0, cpu_ms=0.0))
        row["photos"] += 1
        row["people"] += s.people
        row["found"] += s.found
        row["extra"] += s.extra
        row["oks"] += s.found_oks.tolist()
        row["ms"] += ms
        row["cpu_ms"] += cpu_ms
    total = dict(photos=0, people=0, found=0, extra=0, oks=[], ms=0.0, cpu_ms=0.0)
    for row in per_set.values():
        for k in total:
            total[k] += row[k]
    print(f"\nshared photos, detector {detector} (people found at OKS >= 0.5 on the 12 limb keypoints)")
    print(f"{'photo set':<10} {'photos':>6} {'people':>6} {'found':>9} {'mean OKS':>8} {'extra/photo':>11} {'ms/photo':>8} {'cpu ms/photo':>12}")
    table = {}
    for name, row in list(per_set.items()) + [("all", total)]:
        r = dict(photos=row["photos"], people=row["people"], found=row["found"], found_share=row["found"] / max(row["people"], 1),
                 mean_oks=float(np.mean(row["oks"])) if row["oks"] else float("nan"),
                 extra_per_photo=row["extra"] / row["photos"], ms_per_photo=row["ms"] / row["photos"],
                 cpu_ms_per_photo=row["cpu_ms"] / row["photos"])
        table[name] = r
        print(f"{name:<10} {r['photos']:>6} {r['people']:>6} {r['found']:>3} ({r['found_share']:>3.0%}) {r['mean_oks']:>8.3f} "
              f"{r['extra_per_photo']:>11.2f} {r['ms_per_photo']:>8.0f} {r['cpu_ms_per_photo']:>12.0f}")
    return table
