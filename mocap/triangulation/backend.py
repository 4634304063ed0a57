"""Which numerics backend runs the triangulation: chosen once per call by :func:`resolve_backend`.

``"numpy"``: vectorised numpy over all points. ``"numba"``: compiled per-point kernels
(``_numba_*``), the same rules (:mod:`~mocap.triangulation.rules`), decisions and points to
rounding, parallel over blocks of points on ``numba.get_num_threads()`` threads (NUMBA_NUM_THREADS).
``"auto"``: the environment variable ``MOCAP_BACKEND`` (``numpy`` or ``numba``; read once per
process) if set, else numba where it imports, else numpy.
"""

from __future__ import annotations

import os
from functools import cache

from mocap._checks import check_choice

BACKENDS = ("auto", "numpy", "numba")
#: Environment variable that picks the backend of ``backend="auto"`` for the whole process.
BACKEND_ENV = "MOCAP_BACKEND"


@cache
def numba_available() -> bool:
    """Whether numba imports (a declared dependency; absent only in trimmed installs)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def env_backend() -> str | None:
    """``MOCAP_BACKEND`` as read once in this process: ``"numpy"``, ``"numba"`` or None (unset)."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower()
    if not value:
        return None
    check_choice(value, BACKENDS[1:], BACKEND_ENV)
    return value


def resolve_backend(backend: str = "auto") -> str:
    """``"auto"``, ``"numpy"`` or ``"numba"`` -> the backend to run, ``"numpy"`` or ``"numba"``.

    Raises ValueError for an unknown name, and for ``"numba"`` (asked for, or through
    ``MOCAP_BACKEND``) when numba does not import.
    """
    check_choice(backend, BACKENDS, "backend")
    if backend == "auto":
        backend = env_backend() or ("numba" if numba_available() else "numpy")
    if backend == "numba" and not numba_available():
        raise ValueError("backend: 'numba' needs the numba package (pip install numba); or use backend='numpy'")
    return backend
