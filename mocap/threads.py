"""Blocks of a GIL-free compiled kernel on Python threads (the triangulation's and the tracker's).

Each kernel is a serial loop over a range ``[lo, hi)`` of points (or people, or frames) that
releases the GIL; :func:`run_blocks` splits ``range(n)`` into one contiguous block per thread of
``numba.get_num_threads()`` (a static partition, as numba's ``prange``), runs the first in the
calling thread and the rest on a pool. Each point is computed as in one thread, so results do not
depend on the thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache


@cache
def thread_pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per size and process (a pool inherited through ``fork`` has no threads)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mocap-kernels")


def run_blocks(kernel, n: int, *args, min_block: int = 1) -> None:
    """``kernel(lo, hi, *args)`` over contiguous blocks covering ``range(n)``, at least
    ``min_block`` long, one per thread of ``numba.get_num_threads()``; all in the calling thread
    when one block suffices."""
    import numba

    nb = max(1, min(numba.get_num_threads(), n // max(min_block, 1)))
    if nb == 1:
        kernel(0, n, *args)
        return
    bounds = [b * n // nb for b in range(nb + 1)]
    pool = thread_pool(nb - 1, os.getpid())
    futures = [pool.submit(kernel, lo, hi, *args) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    try:
        kernel(0, bounds[1], *args)
    finally:
        for future in futures:
            future.result()
