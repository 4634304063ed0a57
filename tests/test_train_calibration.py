"""Options of the learned triangulation's training data (numpy only): randomised confidence
calibration and a systematic detector error."""

from __future__ import annotations

import numpy as np
import pytest

from mocap.train.data import (CALIBRATION_MAPS, Scenario, add_view_bias, confidence_map, recalibrate_confidence,
                              scenario_person)

MIN_CONF = 0.2


@pytest.fixture(scope="module")
def capture():
    """A short synthetic capture, 5 cameras, person 0 per view."""
    return scenario_person(Scenario(cameras=5, noise_px=3.0, outlier_rate=0.1, swap_rate=0.0, frames=20, seed=10_003,
                                    clip="01_01"))


def test_rate_zero_leaves_the_confidences_alone(capture):
    _, person, _ = capture
    out = recalibrate_confidence(person, np.random.default_rng(0), MIN_CONF, 0.0)
    np.testing.assert_array_equal(out, person)


@pytest.mark.parametrize("seed", range(12))
def test_recalibration_changes_what_the_confidence_says_not_which_joints_are_seen(capture, seed):
    _, person, _ = capture
    out = recalibrate_confidence(person, np.random.default_rng(seed), MIN_CONF, 1.0)
    np.testing.assert_array_equal(out[..., :2], person[..., :2])
    before = np.nan_to_num(person[..., 2], nan=-1.0) >= MIN_CONF
    after = np.nan_to_num(out[..., 2], nan=-1.0) >= MIN_CONF
    np.testing.assert_array_equal(after, before)
    assert np.all((out[..., 2][after] > MIN_CONF) & (out[..., 2][after] <= 1.0))
    np.testing.assert_array_equal(out, recalibrate_confidence(person, np.random.default_rng(seed), MIN_CONF, 1.0))


def test_each_map_is_monotone_or_degenerate():
    c = np.linspace(0.0, 1.0, 101)
    for kind in CALIBRATION_MAPS:
        for seed in range(5):
            m = confidence_map(kind, c, np.random.default_rng(seed))
            assert np.all(np.diff(m) >= -1e-12) and np.all((m >= 0) & (m <= 1)), kind
    np.testing.assert_array_equal(confidence_map("saturated", c, np.random.default_rng(0)), 1.0)
    assert np.ptp(confidence_map("constant", c, np.random.default_rng(0))) == 0
    with pytest.raises(ValueError, match="confidence map 'bogus'"):
        confidence_map("bogus", c, np.random.default_rng(0))


def test_the_systematic_error_is_one_offset_per_view_and_joint_for_the_whole_capture(capture):
    from mocap.match.epipolar import person_sizes

    _, person, _ = capture
    np.testing.assert_array_equal(add_view_bias(person, np.random.default_rng(0), MIN_CONF, 0.0), person)
    out = add_view_bias(person, np.random.default_rng(0), MIN_CONF, 1.0)
    np.testing.assert_array_equal(out[..., 2], person[..., 2])
    np.testing.assert_array_equal(np.isnan(out), np.isnan(person))
    d = out[..., :2] - person[..., :2]  # (T, C, J, 2)
    first = np.nanmax(np.where(np.isfinite(d), d, np.nan), axis=0)
    np.testing.assert_allclose(np.nanmin(d, axis=0), first, atol=1e-9)  # constant over the frames
    size = np.nanmedian(person_sizes(person, MIN_CONF), axis=0)  # (C,)
    share = np.nanstd(first, axis=(1, 2)) / size  # per view: the drawn share of the size
    assert np.all((share > 0.002) & (share < 0.05)), share
