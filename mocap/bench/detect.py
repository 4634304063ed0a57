"""2D detection speed: person-views per second, detector-every-frame vs tracking, peak memory.

Runs BlazePose on the real Pose2Sim balancing trial (``../shared/data``), or on the cached demo
session when the shared data is absent. A person-view is one person found in one camera frame;
the time includes video decoding, cropping, both models and the appearance descriptor.
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
    parser.add_argument("--cameras", type=int, default=4, help="how many cameras to run")
    parser.add_argument("--frames", type=int, default=100, help="frames per camera")
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
    return dict(modes=results, peak_rss_mb=peak_mb, threads=args.threads, cameras=len(videos), load_average=load)
