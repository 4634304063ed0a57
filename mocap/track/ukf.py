"""An unscented Kalman filter over many independent points, batched.

Each point (a joint of a person) is a constant-velocity 3D point, state ``x = (x y z vx vy vz)``,
driven by white-noise acceleration (Bar-Shalom, Li & Kirubarajan, *Estimation with Applications
to Tracking and Navigation*, 6.3.2: ``Q = q [[dt⁴/4, dt³/2], [dt³/2, dt²]] ⊗ I₃``). Its
measurement is the 2D keypoint of every camera that sees it, through the full camera model (lens
distortion included), so the update is unscented (Julier & Uhlmann 1997; the scaled sigma points
and weights of van der Merwe 2004, ``MerweScaledSigmaPoints`` in filterpy): one camera alone
still pulls the point onto its ray, the depth along it left to the motion model.

The prediction is the closed form ``F x, F P Fᵀ + Q``: the unscented transform of a linear map is
exact, so it equals the sigma-point prediction to rounding. The update draws the sigma points
from the predicted mean and covariance (as filterpy does after ``predict``), projects them into
every camera, and updates with the cameras a point has: a batch with different cameras per
point is one fixed-size update in which a missing camera's rows and columns of the innovation
covariance are the identity and its cross-covariance columns zero, which is exactly the update
with that camera left out. A camera whose innovation lies farther than ``gate`` standard
deviations from the prediction (Mahalanobis, in its own 2×2 block) is left out the same way.

The backward pass is the Rauch–Tung–Striebel smoother of the filtered states; with a linear
motion model the unscented RTS smoother (Särkkä 2008) reduces to it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: State size: position and velocity.
DIM = 6


@dataclass(frozen=True, eq=False)
class SigmaWeights:
    """Scaled sigma points of a ``DIM``-dimensional state (van der Merwe 2004, eq. 3.171).

    ``alpha = 1, beta = 2, kappa = 0`` (the defaults) keep every weight non-negative: the
    innovation covariance stays positive definite however nonlinear the projection is."""

    wm: np.ndarray
    """``(2 DIM + 1,)`` weights of the mean."""
    wc: np.ndarray
    """``(2 DIM + 1,)`` weights of the covariance."""
    lam: float
    """``alpha² (n + kappa) - n``."""

    @classmethod
    def merwe(cls, n: int = DIM, alpha: float = 1.0, beta: float = 2.0, kappa: float = 0.0) -> SigmaWeights:
        lam = alpha ** 2 * (n + kappa) - n
        wm = np.full(2 * n + 1, 0.5 / (n + lam))
        wc = wm.copy()
        wm[0] = lam / (n + lam)
        wc[0] = lam / (n + lam) + (1 - alpha ** 2 + beta)
        return cls(wm, wc, float(lam))


def constant_velocity(dt: float, acceleration_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition ``F (6, 6)`` and process noise ``Q (6, 6)`` of a constant-velocity point over
    ``dt`` seconds with white-noise acceleration ``acceleration_sigma`` m/s²."""
    F = np.eye(DIM)
    F[:3, 3:] = np.eye(3) * dt
    q1 = np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]]) * acceleration_sigma ** 2
    return F, np.kron(q1, np.eye(3))


def constant_acceleration(dt: float, jerk_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Transition ``F (9, 9)`` and process noise ``Q (9, 9)`` of a constant-acceleration point
    (position, velocity, acceleration) over ``dt`` seconds with white-noise jerk ``jerk_sigma``
    m/s³ (the continuous white-noise jerk model, Bar-Shalom et al. 2001, 6.2.3). The tracker runs
    the constant-velocity model; this one is measured against it (``mocap bench track
    --one-camera-only --motion acceleration``) through the numpy reference filter."""
    F = np.eye(9)
    F[:3, 3:6] = F[3:6, 6:] = np.eye(3) * dt
    F[:3, 6:] = np.eye(3) * dt ** 2 / 2
    q = np.array([[dt ** 5 / 20, dt ** 4 / 8, dt ** 3 / 6], [dt ** 4 / 8, dt ** 3 / 3, dt ** 2 / 2],
                  [dt ** 3 / 6, dt ** 2 / 2, dt]]) * jerk_sigma ** 2
    return F, np.kron(q, np.eye(3))


def predict(x: np.ndarray, P: np.ndarray, F: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x (N, n)``, ``P (N, n, n)`` one step ahead (``n = 6``: :func:`constant_velocity`)."""
    return x @ F.T, F @ P @ F.T + Q


def sigma_points(x: np.ndarray, P: np.ndarray, lam: float) -> np.ndarray:
    """``(N, 2n+1, n)`` sigma points of ``x (N, n)``, ``P (N, n, n)``: the mean, then the mean
    plus and minus the columns of the Cholesky factor of ``(n + lam) P``."""
    n = x.shape[-1]
    A = (n + lam) * P
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        # rounding made a covariance slightly indefinite: clip its eigenvalues (rare; all at once)
        w, V = np.linalg.eigh(0.5 * (A + np.swapaxes(A, -1, -2)))
        L = np.linalg.cholesky((V * np.maximum(w, 1e-12)[..., None, :]) @ np.swapaxes(V, -1, -2))
    cols = np.swapaxes(L, -1, -2)  # (N, n, n): row k = column k of L
    return np.concatenate([x[:, None], x[:, None] + cols, x[:, None] - cols], axis=1)


def ukf_update(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray, observed: np.ndarray, measure,
               weights: SigmaWeights, gate: float = np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One unscented update of ``N`` points, each with its own cameras.

    Args:
        x: ``(N, 6)`` predicted states; ``P (N, 6, 6)`` their covariances.
        z: ``(N, M, 2)`` measurements (pixels) of ``M`` cameras; ignored where not ``observed``.
        R: ``(N, M)`` per-axis variance px² of each measurement (isotropic).
        observed: ``(N, M)`` bool, which cameras measure each point.
        measure: ``points_world (N, S, 3) -> (N, S, M, 2)`` pixels (NaN: not projectable).
        weights: sigma-point weights.
        gate: a camera whose innovation is farther than this many standard deviations
            (Mahalanobis in its 2×2 block) is left out.

    Returns:
        ``(x, P, used)``: updated states and covariances, and ``used (N, M)`` the cameras used.
    """
    N, M = observed.shape
    sig = sigma_points(x, P, weights.lam)  # (N, S, 6)
    zs = measure(sig[..., :3])  # (N, S, M, 2)
    used = observed & np.isfinite(zs).all(axis=(1, 3)) & np.isfinite(z).all(-1)
    zs = np.where(used[:, None, :, None], zs, 0.0)
    zbar = np.tensordot(weights.wm, zs, axes=(0, 1))  # (N, M, 2)
    dz = (zs - zbar[:, None]).reshape(N, -1, 2 * M)
    dx = sig - x[:, None]
    wdz = np.swapaxes(dz * weights.wc[:, None], -1, -2)  # (N, 2M, S): the weighted sums as matmuls
    S = wdz @ dz
    S[:, np.arange(2 * M), np.arange(2 * M)] += np.repeat(R, 2, axis=1)
    Pxz = np.swapaxes(dx, -1, -2) @ np.swapaxes(wdz, -1, -2)  # (N, 6, 2M)
    v = np.where(used[..., None], z - zbar, 0.0)  # (N, M, 2)
    if np.isfinite(gate):
        blocks = S.reshape(N, M, 2, M, 2)[:, np.arange(M), :, np.arange(M), :]  # (M, N, 2, 2)
        a, b, d = blocks[..., 0, 0].T, blocks[..., 0, 1].T, blocks[..., 1, 1].T  # (N, M) each
        det = np.where(used, a * d - b * b, 1.0)  # the 2x2 inverse in closed form
        d2 = (d * v[..., 0] ** 2 - 2 * b * v[..., 0] * v[..., 1] + a * v[..., 1] ** 2) / det
        used &= d2 <= gate ** 2
        v = np.where(used[..., None], v, 0.0)
    m2 = np.repeat(used, 2, axis=1)  # (N, 2M)
    S = np.where(m2[:, :, None] & m2[:, None, :], S, np.eye(2 * M))
    Pxz = np.where(m2[:, None, :], Pxz, 0.0)
    K = np.linalg.solve(S, np.swapaxes(Pxz, -1, -2)).swapaxes(-1, -2)  # Pxz S⁻¹ (S symmetric)
    x = x + np.einsum("nij,nj->ni", K, v.reshape(N, 2 * M))
    P = P - K @ S @ np.swapaxes(K, -1, -2)
    return x, 0.5 * (P + np.swapaxes(P, -1, -2)), used


def rts_smooth(xs: np.ndarray, Ps: np.ndarray, F: np.ndarray, Q: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """Rauch–Tung–Striebel backward pass over filtered states.

    Args:
        xs: ``(T, N, 6)`` filtered states (NaN where a point has none); ``Ps (T, N, 6, 6)``.
        F, Q: the motion model of one frame step.
        linked: ``(T, N)`` bool, frame ``t`` was predicted from frame ``t - 1`` of the same
            track (False at a track's start or restart: no smoothing across it).

    Returns:
        ``(states (T, N, 6), covariances (T, N, 6, 6))`` smoothed.
    """
    sm, Psm = xs.copy(), Ps.copy()
    for t in range(len(xs) - 2, -1, -1):
        ok = linked[t + 1] & np.isfinite(xs[t]).all(-1)
        if not ok.any():
            continue
        x_pred, P_pred = predict(xs[t, ok], Ps[t, ok], F, Q)
        C = np.linalg.solve(P_pred, F @ Ps[t, ok]).swapaxes(-1, -2)  # P Fᵀ P_pred⁻¹ (symmetric P's)
        sm[t, ok] = xs[t, ok] + np.einsum("nij,nj->ni", C, sm[t + 1, ok] - x_pred)
        Psm[t, ok] = Ps[t, ok] + C @ (Psm[t + 1, ok] - P_pred) @ np.swapaxes(C, -1, -2)
    return sm, Psm
