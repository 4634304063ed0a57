"""Scalar compiled twin of :mod:`mocap.geometry.lens` (numba), for per-point kernels.

The same formulas, term for term, and the same stopping rule as :func:`mocap.geometry.lens.undistort`
(Newton from the first-order inverse; a point stops after the step taken from a residual at most
``tol``; NaN where the model folds over or has not converged): the tests check both agree to
1e-10 px over a range of lenses. Compiled on first call (a fraction of a second each), cached.

Numba's on-disk cache of a kernel that calls these functions is keyed on the kernel's own source
file only: after editing this module (or the constants of :mod:`~mocap.geometry.lens`), delete
the ``*.nbi``/``*.nbc`` files under ``mocap/**/__pycache__`` so that the callers recompile.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mocap.geometry.lens import FOLD_DETERMINANT

_JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)


@njit(**_JIT)
def distort_point(x, y, k1, k2, p1, p2, k3):
    """:func:`mocap.geometry.lens.distort` of one point -> ``x_d, y_d``."""
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    return x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2), y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy


@njit(**_JIT)
def distort_point_jacobian(x, y, k1, k2, p1, p2, k3):
    """:func:`mocap.geometry.lens.distort_with_jacobian` of one point -> ``x_d, y_d, jxx, jxy, jyy``."""
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
    dr = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))
    jxx = radial + x2 * dr + 2 * p1 * y + 6 * p2 * x
    jyy = radial + y2 * dr + 6 * p1 * y + 2 * p2 * x
    jxy = xy * dr + 2 * p1 * x + 2 * p2 * y
    return xd, yd, jxx, jxy, jyy


@njit(**_JIT)
def undistort_point(xd, yd, k1, k2, p1, p2, k3, max_iterations, tol):
    """:func:`mocap.geometry.lens.undistort` of one point -> ``x, y`` (NaN: no inverse found)."""
    r2 = xd * xd + yd * yd
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    x, y = xd / radial, yd / radial
    for _ in range(max_iterations):
        fx, fy, jxx, jxy, jyy = distort_point_jacobian(x, y, k1, k2, p1, p2, k3)
        fx -= xd
        fy -= yd
        res = np.nan if np.isnan(fx) or np.isnan(fy) else max(abs(fx), abs(fy))
        det = jxx * jyy - jxy * jxy
        if abs(det) < FOLD_DETERMINANT:
            det = np.nan  # the model folds over here
        x, y = x - (jyy * fx - jxy * fy) / det, y - (jxx * fy - jxy * fx) / det
        if not res > tol:  # converged (or NaN): this was the last step
            if res <= tol:
                return x, y
            break
    return np.nan, np.nan
