"""The batched unscented Kalman filter (mocap.track.ukf) against filterpy's reference."""

import numpy as np
import pytest

from mocap.geometry import project
from mocap.synthetic import ring_rig
from mocap.track.filter_people import rig_measure
from mocap.track.ukf import SigmaWeights, constant_acceleration, constant_velocity, predict, rts_smooth, ukf_update

filterpy = pytest.importorskip("filterpy.kalman", reason="the `test` extra: pip install -e '.[test]'")

FPS = 30.0


def _track(rng, T=40):
    """One joint on a curved path seen by 4 distorted cameras, each missing now and then."""
    rig = ring_rig(4, seed=2)
    t = np.arange(T) / FPS
    truth = np.stack([0.5 * np.sin(2 * t), 0.3 * t, 1.0 + 0.2 * np.cos(3 * t)], -1)
    z = np.stack([project(c, truth) for c in rig.cameras], 1) + rng.normal(0, 2.0, (T, 4, 2))
    seen = rng.random((T, 4)) > 0.3
    seen[0] = False  # the track starts from x0 (filterpy's first update needs a predict before it)
    seen[5] = False  # a frame no camera sees
    seen[6:9] = [True, False, False, False]  # one camera alone
    var = rng.uniform(1.0, 9.0, (T, 4))
    return rig, truth, z, seen, var


def _ours(rig, z, seen, var, x0, P0, F, Q, w):
    def measure(points):
        return np.stack([project(c, points) for c in rig.cameras], axis=-2)

    x, P = x0[None], P0[None]
    xs, Ps = [], []
    for t in range(len(z)):
        if t:
            x, P = predict(x, P, F, Q)
        if seen[t].any():
            x, P, _ = ukf_update(x, P, z[t][None], var[t][None], seen[t][None], measure, w)
        xs.append(x[0])
        Ps.append(P[0])
    return np.array(xs), np.array(Ps)


def _theirs(rig, z, seen, var, x0, P0, F, Q):
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

    n = len(F)
    points = MerweScaledSigmaPoints(n, alpha=1.0, beta=2.0, kappa=0.0)
    ukf = UnscentedKalmanFilter(n, 8, 1 / FPS, hx=None, fx=lambda s, dt: F @ s, points=points)
    ukf.x, ukf.P, ukf.Q = x0.copy(), P0.copy(), Q
    xs, Ps = [], []
    for t in range(len(z)):
        if t:
            ukf.predict()
        cams = np.flatnonzero(seen[t])
        if len(cams):
            hx = lambda s, cams=cams: np.concatenate([project(rig.cameras[c], s[:3]) for c in cams])
            ukf.update(z[t, cams].ravel(), R=np.diag(np.repeat(var[t, cams], 2)), hx=hx)
        xs.append(ukf.x.copy())
        Ps.append(ukf.P.copy())
    return ukf, np.array(xs), np.array(Ps)


@pytest.mark.parametrize("model", ["velocity", "acceleration"])
def test_one_track_equals_filterpy(rng, model):
    """States and covariances of every frame within 1e-6 of filterpy's UnscentedKalmanFilter
    (cameras change per frame, one frame has none, three frames have one), and the RTS pass
    within 1e-6 of filterpy's unscented RTS smoother; the tracker's constant-velocity state and
    the constant-acceleration one it is measured against (``mocap bench track --motion``)."""
    rig, truth, z, seen, var = _track(rng)
    F, Q = constant_velocity(1 / FPS, 20.0) if model == "velocity" else constant_acceleration(1 / FPS, 30.0)
    n = len(F)
    x0 = np.concatenate([truth[0] + 0.01, np.zeros(n - 3)])
    P0 = np.diag([1e-3] * 3 + [1.0] * (n - 3))
    w = SigmaWeights.merwe(n)
    xs, Ps = _ours(rig, z, seen, var, x0, P0, F, Q, w)
    ukf, fxs, fPs = _theirs(rig, z, seen, var, x0, P0, F, Q)
    np.testing.assert_allclose(xs, fxs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(Ps, fPs, rtol=0, atol=1e-6)
    sm, Psm = rts_smooth(xs[:, None], Ps[:, None], F, Q, np.ones((len(xs), 1), bool))
    fsm, fPsm, _ = ukf.rts_smoother(fxs, fPs)
    np.testing.assert_allclose(sm[:, 0], fsm, rtol=0, atol=1e-6)
    np.testing.assert_allclose(Psm[:, 0], fPsm, rtol=0, atol=1e-6)
    sm = sm[:, 0]
    # and the filter did its job: the smoothed path is within 2 cm of the truth
    assert np.linalg.norm(sm[:, :3] - truth, axis=-1).max() < 0.02


def test_batched_update_equals_one_point_at_a_time(rng):
    """Points with different cameras in one batch (missing cameras masked) = each point updated
    alone with only its cameras (the reference: a smaller measurement vector)."""
    rig = ring_rig(4, seed=5)
    measure = rig_measure(rig)
    N = 6
    x = np.concatenate([rng.uniform(-0.5, 0.5, (N, 3)) + [0, 0, 1], rng.normal(0, 0.5, (N, 3))], -1)
    A = rng.normal(0, 0.03, (N, 6, 6))
    P = A @ np.swapaxes(A, -1, -2) + np.eye(6) * 1e-4
    z = measure(x[:, :3]) + rng.normal(0, 3.0, (N, 4, 2))
    var = rng.uniform(1, 9, (N, 4))
    seen = rng.random((N, 4)) > 0.4
    seen[0] = [True, False, False, False]
    w = SigmaWeights.merwe()
    xb, Pb, _ = ukf_update(x, P, z, var, seen, measure, w)
    for n in range(N):
        cams = np.flatnonzero(seen[n])
        if not len(cams):
            np.testing.assert_array_equal(xb[n], x[n])
            continue
        only = lambda p, cams=cams: measure(p)[..., cams, :]  # noqa: E731
        x1, P1, _ = ukf_update(x[n:n + 1], P[n:n + 1], z[n:n + 1, cams], var[n:n + 1, cams],
                               np.ones((1, len(cams)), bool), only, w)
        np.testing.assert_allclose(xb[n], x1[0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(Pb[n], P1[0], rtol=0, atol=1e-12)


def test_the_gate_leaves_an_outlier_view_out(rng):
    """One of four views 150 px off (a wrong joint): left out, the update equals the one
    without it; with no gate it drags the point."""
    rig = ring_rig(4, seed=6)
    measure = rig_measure(rig)
    x = np.array([[0.1, 0.2, 1.1, 0.0, 0.0, 0.0]])
    P = np.diag([1e-4] * 3 + [0.1] * 3)[None]
    z = measure(x[:, :3]) + rng.normal(0, 1.0, (1, 4, 2))
    z[0, 2] += [150.0, 0.0]
    var = np.full((1, 4), 4.0)
    w = SigmaWeights.merwe()
    gated, _, used = ukf_update(x, P, z, var, np.ones((1, 4), bool), measure, w, gate=5.0)
    assert used.tolist() == [[True, True, False, True]]
    without, _, _ = ukf_update(x, P, z, var, np.array([[True, True, False, True]]), measure, w)
    np.testing.assert_allclose(gated, without, atol=1e-12)
    dragged, _, _ = ukf_update(x, P, z, var, np.ones((1, 4), bool), measure, w)
    assert np.linalg.norm(dragged[0, :3] - x[0, :3]) > 3 * np.linalg.norm(gated[0, :3] - x[0, :3])


def test_rig_measure_equals_project_with_distortion(rng):
    rig = ring_rig(5, seed=7)
    pts = rng.uniform(-1, 1, (7, 13, 3)) + [0, 0, 1]
    expected = np.stack([project(c, pts) for c in rig.cameras], axis=-2)
    np.testing.assert_allclose(rig_measure(rig)(pts), expected, rtol=0, atol=1e-9)
    behind = rig.cameras[0].center + 2 * (rig.cameras[0].center - np.array([0, 0, 1.0]))
    assert np.isnan(rig_measure(rig)(behind)[0]).all()


def test_compiled_update_equals_the_numpy_update(rng):
    """The compiled per-point update (mocap.track.ukf_compiled) = the batched numpy one (which
    equals filterpy's) within 1e-9, cameras differing per point, one outlier view gated out,
    lens distortion on."""
    from mocap.track.ukf_compiled import camera_table, ukf_update_point, update_work

    rig = ring_rig(4, seed=5)
    measure = rig_measure(rig)
    N = 8
    x = np.concatenate([rng.uniform(-0.5, 0.5, (N, 3)) + [0, 0, 1], rng.normal(0, 0.5, (N, 3))], -1)
    A = rng.normal(0, 0.03, (N, 6, 6))
    P = A @ np.swapaxes(A, -1, -2) + np.eye(6) * 1e-4
    z = measure(x[:, :3]) + rng.normal(0, 3.0, (N, 4, 2))
    z[1, 2] += [150.0, 0.0]  # an outlier the gate leaves out
    var = rng.uniform(1, 9, (N, 4))
    seen = rng.random((N, 4)) > 0.3
    seen[0] = [False, True, False, False]
    seen[1] = True
    seen[2] = False
    w = SigmaWeights.merwe()
    xb, Pb, used = ukf_update(x, P, z, var, seen, measure, w, gate=5.0)
    assert not used[1, 2] and used[1].sum() == 3
    cams, work = camera_table(rig), update_work(4)
    for n in range(N):
        xn, Pn = x[n].copy(), P[n].copy()
        m = ukf_update_point(xn, Pn, z[n], var[n], seen[n], cams, w.wm, w.wc, w.lam, 5.0, work)
        assert m == used[n].sum()
        np.testing.assert_allclose(xn, xb[n], rtol=0, atol=1e-9)
        np.testing.assert_allclose(Pn, Pb[n], rtol=0, atol=1e-9)


def test_compiled_smoothers_equal_the_numpy_ones(rng):
    """The compiled backward passes (whole take, fixed lag 0 and 4) = rts_smooth and
    fixed_lag_smooth within 1e-9, across an unlinked frame (a restart)."""
    from mocap.track.filter_people import fixed_lag_smooth
    from mocap.track.ukf_compiled import smooth_kernel

    T, N = 25, 3
    F, Q = constant_velocity(1 / FPS, 10.0)
    xs = rng.normal(size=(T, N, 6))
    A = rng.normal(0, 0.1, (T, N, 6, 6))
    Ps = A @ np.swapaxes(A, -1, -2) + np.eye(6) * 1e-3
    linked = np.ones((T, N), bool)
    linked[0] = linked[11, 1] = False
    Qn = np.ascontiguousarray(np.broadcast_to(Q, (N, 6, 6)))
    for lag in (-1, 0, 4):
        ref, Pref = rts_smooth(xs, Ps, F, Q, linked) if lag < 0 else fixed_lag_smooth(xs, Ps, F, Q, linked, lag)
        positions, sd = np.full((T, N, 3), np.nan), np.full((T, N), np.nan)
        smooth_kernel(0, N, xs, Ps, F, Qn, linked, lag, positions, sd)
        np.testing.assert_allclose(positions, ref[..., :3], rtol=0, atol=1e-9)
        np.testing.assert_allclose(sd, np.sqrt(np.linalg.eigvalsh(Pref[..., :3, :3])[..., -1]), rtol=0, atol=1e-9)
