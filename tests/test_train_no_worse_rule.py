"""The "no worse than robust" rule of the real-take tables (mocap bench triangulate): a paired
block-bootstrap interval of the change per left-out camera against a tolerance fixed beforehand."""

from __future__ import annotations

import numpy as np

from mocap.bench.triangulate import NO_WORSE_TOLERANCE_PX, NO_WORSE_TOLERANCE_SHARE, no_worse_than_robust


def frames(err):
    rng = np.random.default_rng(2)
    return err, rng.normal(size=(err.shape[1], err.shape[2], err.shape[3], 3))


def test_the_rule_passes_the_same_and_a_small_change_and_fails_a_clear_loss():
    rng = np.random.default_rng(0)
    err = rng.gamma(2.0, 8.0, size=(4, 60, 2, 25))  # (C, T, P, J) px; medians about 13 px
    names = [f"j{k}" for k in range(25)]
    robust = frames(err)
    worse = err.copy()
    worse[2] += 3.0  # camera 2 clearly worse
    out = no_worse_than_robust({"robust": robust, "same": frames(err), "small": frames(err + 0.1),
                                "worse": frames(worse), "better": frames(err - 2.0)}, names, draws=200)
    medians = np.median(err.reshape(4, -1), axis=-1)
    np.testing.assert_allclose(out["same"]["tolerance_px"], np.maximum(NO_WORSE_TOLERANCE_PX,
                                                                       NO_WORSE_TOLERANCE_SHARE * medians))
    assert out["same"]["no_worse"] == [True] * 4 and np.allclose(out["same"]["interval_95"], 0.0)
    assert out["small"]["no_worse"] == [True] * 4
    np.testing.assert_allclose(out["small"]["change_px"], 0.1, atol=1e-9)
    assert out["worse"]["no_worse"] == [True, True, False, True]
    np.testing.assert_allclose(out["worse"]["interval_95"][2], [3.0, 3.0], atol=1e-9)
    assert out["better"]["no_worse"] == [True] * 4 and np.all(np.array(out["better"]["interval_95"]) < 0)
    assert "robust" not in out


def test_an_uncertain_change_is_not_called_no_worse():
    rng = np.random.default_rng(1)
    err = rng.gamma(2.0, 8.0, size=(1, 60, 1, 25))
    shift = rng.normal(0.0, 4.0, 25)
    noisy = err + (shift - np.median(shift))  # about the same on the whole, each joint far off, joint by joint
    out = no_worse_than_robust({"robust": frames(err), "noisy": frames(noisy)}, [f"j{k}" for k in range(25)],
                               draws=300)
    lo, hi = out["noisy"]["interval_95"][0]
    assert lo < 0 < hi and hi > out["noisy"]["tolerance_px"][0]
    assert out["noisy"]["no_worse"] == [False]


def test_the_bone_length_rule_fails_jittery_points_and_passes_the_same():
    from mocap.train.data import Scenario, scenario_person

    scene, _, gt = scenario_person(Scenario(cameras=4, noise_px=1.0, outlier_rate=0.0, swap_rate=0.0, frames=40,
                                            seed=10_007, clip="01_01"))
    rng = np.random.default_rng(3)
    err = rng.gamma(2.0, 8.0, size=(4, 40, 1, gt.shape[1]))
    pts = (gt + rng.normal(0.0, 0.005, gt.shape))[:, None]  # (T, 1, J, 3)
    jittery = (gt + rng.normal(0.0, 0.02, gt.shape))[:, None]
    out = no_worse_than_robust({"robust": (err, pts), "same": (err, pts.copy()), "jittery": (err, jittery)},
                               scene.joint_names, draws=200)
    assert out["same"]["bone_cv_no_worse"] == [True] and out["jittery"]["bone_cv_no_worse"] == [False]
    assert out["jittery"]["bone_cv_interval_95"][0][0] > 0
