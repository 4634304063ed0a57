"""`mocap process` of the 4-camera, 100-frame single-person demo take: first run and warm runs.

Each run is the real command in a fresh Python process (``python -m mocap -q process``) into a
new output folder, timed by the wall clock. The *first run* has an empty numba cache
(``NUMBA_CACHE_DIR`` a new folder: nothing compiled, as in a fresh ``.venv``); the *warm* runs
reuse that cache. ``--numba`` adds a first run that compiles the triangulation kernels
(``MOCAP_BACKEND=numba``, what the command did before it chose numpy for short takes), to show
what the compile costs. Target: first run <= 30 s on 2 cores.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0


def add_arguments(parser) -> None:
    parser.add_argument("--session", default=None,
                        help="session folder (default: the demo take in ../shared/data, else the fetched demo)")
    parser.add_argument("--calibration", default=None, help="calibration file (default: the demo's Calib.qca.txt)")
    parser.add_argument("--warm", type=int, default=1, help="warm runs after the first (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="detection workers (default 0: one per core)")
    parser.add_argument("--numba", action="store_true", help="also time a first run that compiles the numba kernels")


def demo_take() -> tuple[Path, Path]:
    """``(session, calibration)`` of the single-person demo take."""
    from mocap.paths import shared_data_dir

    shared = shared_data_dir() / "sessions" / "pose2sim_demo"
    session = shared / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
    if (session / "videos").is_dir():
        return session, shared / "S00_Calibration" / "Calib.qca.txt"
    from mocap.demo_data import fetch_demo_session

    session = fetch_demo_session()
    return session, session / "calibration" / "Calib.qca.txt"


def timed_run(session: Path, calibration: Path, out: Path, workers: int, env: dict) -> dict:
    """``{"wall_s", "cpu_s"}`` of one ``mocap process`` in a fresh process: wall-clock seconds, and
    the CPU seconds (user + system) of it and its detection workers (on a busy machine, CPU / cores
    bounds what the wall clock would be on a quiet one)."""
    cmd = [sys.executable, "-m", "mocap", "-q", "process", str(session), "--calibration", str(calibration),
           "--out", str(out), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"mocap process failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": seconds, "cpu_s": cpu}


def run(args) -> dict:
    from mocap.detect.models import ensure_models

    session, calibration = (Path(args.session), Path(args.calibration)) if args.session else demo_take()
    if args.calibration:
        calibration = Path(args.calibration)
    ensure_models()  # a download is not part of the run
    base = {k: v for k, v in os.environ.items() if k != "MOCAP_BACKEND"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="mocap-bench-process-") as tmp:
        tmp = Path(tmp)
        env = {**base, "NUMBA_CACHE_DIR": str(tmp / "numba-cache")}
        results["first_run_s"] = timed_run(session, calibration, tmp / "first", args.workers, env)
        results["warm_runs_s"] = [timed_run(session, calibration, tmp / f"warm{i}", args.workers, env)
                                  for i in range(args.warm)]
        if args.numba:
            env = {**base, "NUMBA_CACHE_DIR": str(tmp / "numba-cache-2"), "MOCAP_BACKEND": "numba"}
            results["first_run_numba_compile_s"] = timed_run(session, calibration, tmp / "numba", args.workers, env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    first = results["first_run_s"]
    print(f"mocap process, {session.name} (4 cameras x 100 frames), {cores} CPUs (wall s; CPU s of the run):")
    print(f"  first run (empty numba cache): {first['wall_s']:.1f} s; CPU {first['cpu_s']:.1f} s  (target <= "
          f"{TARGET_S:.0f} s: {'met' if first['wall_s'] <= TARGET_S else 'NOT met'})")
    for i, r in enumerate(results["warm_runs_s"]):
        print(f"  warm run {i + 1}: {r['wall_s']:.1f} s; CPU {r['cpu_s']:.1f} s")
    if "first_run_numba_compile_s" in results:
        r = results["first_run_numba_compile_s"]
        print(f"  first run compiling the numba kernels (MOCAP_BACKEND=numba): {r['wall_s']:.1f} s; CPU {r['cpu_s']:.1f} s")
    return results
