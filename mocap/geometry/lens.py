"""The lens model: OpenCV radial-tangential distortion of normalised image coordinates.

The one definition of the polynomial in the package (its scalar compiled twin, for the numba
kernels, is :mod:`mocap.geometry.lens_compiled`; both are checked against each other in the tests).
With ``(x, y)`` undistorted normalised coordinates (``x_cam / z_cam``), ``r2 = x^2 + y^2`` and
``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``::

    x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

(OpenCV's ``projectPoints`` with five coefficients ``k1, k2, p1, p2, k3``; Brown 1966.) The
inverse has no closed form: :func:`undistort` runs Newton's method from the first-order inverse
``x_d / radial(x_d)``. **Stopping rule** (per point, the same in the compiled twin): a point takes
Newton steps until the step taken from a residual ``max(|f_x|, |f_y|) <= tol`` (default
:data:`UNDISTORT_TOLERANCE`, normalised units); quadratic convergence leaves it ~1e-16 after that
step, so the model is not evaluated once more. Real lenses need 2-3 steps. A point still above
``tol`` after ``max_iterations`` steps (:data:`UNDISTORT_MAX_ITERATIONS`), or where the model folds
over (Jacobian determinant below :data:`FOLD_DETERMINANT`: outside the lens' valid field), is NaN,
not a wrong answer.

Two call forms: split coordinates ``x, y`` (any shape) with the five coefficients as a tuple of
arrays broadcastable against them (the triangulation's ``(C, N)`` layout with ``(C, 1)``
coefficients), and packed ``xy (..., 2)`` with ``dist (5,)`` or ``(..., 5)``.
"""

from __future__ import annotations

import numpy as np

#: Newton steps at most when inverting the model (2-3 suffice for real lenses).
UNDISTORT_MAX_ITERATIONS = 10
#: A point stops after the Newton step taken from a residual at most this (normalised units:
#: 1e-5 px at f = 1000 px; quadratic convergence leaves ~1e-16 after that step).
UNDISTORT_TOLERANCE = 1e-8
#: Jacobian determinant below which the model is taken to fold over (no unique inverse).
FOLD_DETERMINANT = 1e-12


def split_coefficients(dist: np.ndarray) -> tuple[np.ndarray, ...]:
    """``dist (..., 5)`` -> the five coefficients ``(k1, k2, p1, p2, k3)``, each ``(...)``."""
    dist = np.asarray(dist, dtype=np.float64)
    if dist.shape[-1:] != (5,):
        raise ValueError(f"dist: expected shape (..., 5) (k1 k2 p1 p2 k3), got {dist.shape}")
    return tuple(dist[..., i] for i in range(5))


def distort(x: np.ndarray, y: np.ndarray, coeffs) -> tuple[np.ndarray, np.ndarray]:
    """Distort normalised coordinates ``x, y`` (same shape) -> ``x_d, y_d``.

    ``coeffs`` is ``(k1, k2, p1, p2, k3)``, each a scalar or an array broadcastable against ``x``.
    """
    return distort_with_jacobian(x, y, coeffs)[:2]


def distort_with_jacobian(x: np.ndarray, y: np.ndarray, coeffs):
    """:func:`distort` and its Jacobian with respect to ``(x, y)``: ``x_d, y_d, dx_d/dx,
    dx_d/dy (= dy_d/dx), dy_d/dy``, each of the broadcast shape."""
    k1, k2, p1, p2, k3 = coeffs
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
    dr = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))  # 2 d radial / d r2
    jxx = radial + x2 * dr + 2 * p1 * y + 6 * p2 * x
    jyy = radial + y2 * dr + 6 * p1 * y + 2 * p2 * x
    jxy = xy * dr + 2 * p1 * x + 2 * p2 * y
    return xd, yd, jxx, jxy, jyy


def undistort(xd: np.ndarray, yd: np.ndarray, coeffs, max_iterations: int = UNDISTORT_MAX_ITERATIONS,
              tol: float = UNDISTORT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort` for distorted normalised ``xd, yd`` -> ``x, y`` (broadcast shape).

    Newton's method with the stopping rule of the module docstring, per point (a converged
    point takes no further step while others iterate). NaN where the model folds over, where a
    point has not converged after ``max_iterations`` steps, or for NaN input.
    """
    k1, k2, p1, p2, k3 = coeffs
    r2 = xd * xd + yd * yd
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = xd / radial, yd / radial
    active = np.ones(np.shape(x), bool)
    converged = np.zeros(np.shape(x), bool)
    for _ in range(max_iterations):
        fx, fy, jxx, jxy, jyy = distort_with_jacobian(x, y, coeffs)
        fx = fx - xd
        fy = fy - yd
        with np.errstate(invalid="ignore", divide="ignore"):
            res = np.maximum(np.abs(fx), np.abs(fy))  # NaN stays NaN: a missing point
            det = jxx * jyy - jxy * jxy
            det = np.where(np.abs(det) < FOLD_DETERMINANT, np.nan, det)  # the model folds over here
            x = np.where(active, x - (jyy * fx - jxy * fy) / det, x)
            y = np.where(active, y - (jxx * fy - jxy * fx) / det, y)
            small = res <= tol  # NaN: False
        converged |= active & small
        active &= res > tol  # NaN: stops, not converged
        if not active.any():
            break
    return np.where(converged, x, np.nan), np.where(converged, y, np.nan)


def distort_normalized(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Distort normalised coordinates ``xy (..., 2)`` -> ``(..., 2)``; ``dist`` is ``(5,)`` or
    broadcastable ``(..., 5)`` ``k1 k2 p1 p2 k3``."""
    xy = np.asarray(xy, dtype=np.float64)
    xd, yd = distort(xy[..., 0], xy[..., 1], split_coefficients(dist))
    return np.stack(np.broadcast_arrays(xd, yd), axis=-1)


def undistort_normalized(xy_d: np.ndarray, dist: np.ndarray, iterations: int = UNDISTORT_MAX_ITERATIONS) -> np.ndarray:
    """Invert :func:`distort_normalized`: distorted ``xy_d (..., 2)`` -> undistorted ``(..., 2)``
    (:func:`undistort`; NaN where it does not converge). ``iterations``: Newton steps at most."""
    xy_d = np.asarray(xy_d, dtype=np.float64)
    x, y = undistort(xy_d[..., 0], xy_d[..., 1], split_coefficients(dist), max_iterations=iterations)
    return np.stack(np.broadcast_arrays(x, y), axis=-1)


def distort_jacobian(xy: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Jacobian ``(..., 2, 2)`` of :func:`distort_normalized` with respect to ``xy (..., 2)``."""
    xy = np.asarray(xy, dtype=np.float64)
    _, _, jxx, jxy, jyy = distort_with_jacobian(xy[..., 0], xy[..., 1], split_coefficients(dist))
    jxx, jxy, jyy = np.broadcast_arrays(jxx, jxy, jyy)
    return np.stack([np.stack([jxx, jxy], -1), np.stack([jxy, jyy], -1)], -2)


def distort_coefficient_jacobian(xy: np.ndarray) -> np.ndarray:
    """Jacobian ``(..., 2, 5)`` of :func:`distort_normalized` with respect to the coefficients
    ``(k1, k2, p1, p2, k3)`` at undistorted ``xy (..., 2)`` (the model is linear in them)."""
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    return np.stack([np.stack([x * r2, x * r2 * r2, 2 * x * y, r2 + 2 * x * x, x * r2 ** 3], -1),
                     np.stack([y * r2, y * r2 * r2, r2 + 2 * y * y, 2 * x * y, y * r2 ** 3], -1)], -2)
