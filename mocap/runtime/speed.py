"""The first run of ``mocap process`` on a short take: numpy instead of compiling numba kernels.

The triangulation's compiled kernels (:mod:`mocap.triangulation.backend`) take ~16 s to compile
on their first call in a fresh install (numba caches them on disk afterwards). On a short take
the numpy backend triangulates in under a second, so compiling would be most of the run. When
``MOCAP_BACKEND`` is unset, the kernels are not cached yet and the take is short
(:data:`SHORT_TAKE_CAMERA_FRAMES`), :func:`prefer_numpy_for_short_takes` sets ``MOCAP_BACKEND=numpy``
for this command (the backends take the same decisions and agree to rounding). Called by the CLI
before any triangulation, since the backend is read once per process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Frames x cameras up to which a take counts as short: the numpy backend's extra time there
#: (~0.2 s per 100 camera-frames on the demo take) stays under the kernels' compile time.
SHORT_TAKE_CAMERA_FRAMES = 4000


def numba_kernels_cached() -> bool:
    """Whether numba's on-disk cache holds the triangulation kernels (index files newer than
    their source), in the package's ``__pycache__`` or under ``NUMBA_CACHE_DIR``."""
    import mocap.triangulation

    pkg = Path(mocap.triangulation.__file__).parent
    source = pkg / "_numba_kernels.py"
    env = os.environ.get("NUMBA_CACHE_DIR")
    where = [Path(env)] if env else [pkg / "__pycache__"]
    for folder in where:
        if folder.is_dir():
            found = list(folder.rglob("_numba_kernels.*.nbi"))
            if found and source.is_file() and min(p.stat().st_mtime for p in found) >= source.stat().st_mtime:
                return True
    return False


def take_camera_frames(session) -> int:
    """Frames the session's videos declare, summed over cameras (0 when unknown)."""
    from mocap.detect import session_videos
    from mocap.detect.video import video_info

    return sum(video_info(p).frame_count for p in session_videos(session).values())


def prefer_numpy_for_short_takes(session) -> bool:
    """Set ``MOCAP_BACKEND=numpy`` for this process when it is unset, the numba kernels are not
    cached and ``session`` is short; returns whether it did. Bad sessions are left to the
    command's own checks."""
    if os.environ.get("MOCAP_BACKEND"):
        return False
    try:
        n = take_camera_frames(session)
    except Exception:  # noqa: BLE001 - the process command reports bad input itself, with context
        return False
    if n == 0 or n > SHORT_TAKE_CAMERA_FRAMES or numba_kernels_cached():
        return False
    from mocap.triangulation.backend import BACKEND_ENV, env_backend

    os.environ[BACKEND_ENV] = "numpy"
    env_backend.cache_clear()  # read again: this process may have looked before
    log.info("short take (%d camera-frames) and numba's kernels not compiled yet: triangulating with numpy "
             "(MOCAP_BACKEND=numba to compile them)", n)
    return True
