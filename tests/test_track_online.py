"""The live tracker (mocap.track.online.OnlineTracker): frames pushed one at a time on the
synthetic studio (3 performers crossing, 4 cameras, every detector error on), each emitted
``lag_frames`` later; against the offline ``online`` mode (identities over the whole take, the
same filter and fixed-lag smoother)."""

import numpy as np
import pytest

from mocap.bench.track import crossing_scene, identity_switches, owners, score
from mocap.config import ProcessConfig, override
from mocap.pipeline import reconstruct
from mocap.track.affinity import nan_median
from mocap.track.online import OnlineTracker, track_online

FRAMES = 200


@pytest.fixture(scope="module")
def crossing():
    return crossing_scene(3, 4, FRAMES, seed=100)


def _pushed(scene, data):
    """Every push's output (None before the lag is filled) for ``data`` fed frame by frame."""
    tracker = OnlineTracker(scene.rig, scene.keypoints.joint_names, scene.fps)
    return [tracker.push(t, data[t]) for t in range(len(data))], tracker


@pytest.fixture(scope="module")
def streamed(crossing):
    return track_online(OnlineTracker(crossing.rig, crossing.keypoints.joint_names, crossing.fps),
                        crossing.keypoints.data)


def test_streaming_tracker_keeps_identities_and_the_offline_online_accuracy(crossing, streamed):
    """Every pair of paths crosses (pelvises 0.53 m apart at the closest): no identity switch;
    MPJPE within 15 % of the offline ``online`` mode (measured: see the README)."""
    positions, ids = streamed
    assert len(ids) == 3
    own = owners(positions, crossing)
    assert identity_switches(own) == 0
    assert (own >= 0).mean() > 0.95  # the first frames of each track are tentative, not emitted
    config = override(ProcessConfig(), {"track.mode": "off"})
    raw = reconstruct(crossing.keypoints, crossing.rig, config).positions
    offline = reconstruct(crossing.keypoints, crossing.rig, override(ProcessConfig(), {"track.mode": "online"}))
    ours, theirs, base = score(positions, raw, crossing), score(offline.positions, raw, crossing), score(raw, raw, crossing)
    assert ours["mpjpe_mm"] <= 1.15 * theirs["mpjpe_mm"], (ours, theirs)
    assert ours["mpjpe_mm"] <= 0.9 * base["mpjpe_mm"] and ours["jitter"] <= 0.5 * base["jitter"], (ours, base)


def test_output_never_depends_on_frames_beyond_the_lag(crossing):
    """The same first 100 frames, then two different futures: every push up to frame 99 emits
    the same people (frames up to 99 - lag); the pushes after it differ (the lag is real)."""
    data = crossing.keypoints.data[:110]
    spoiled = data.copy()
    spoiled[100:, :, :, :, :2] += 25.0  # every detection 25 px off from frame 100 on
    a, tracker = _pushed(crossing, data)
    b, _ = _pushed(crossing, spoiled)
    lag = tracker.lag
    assert lag > 0 and all(x is None for x in a[:lag]) and a[lag].frame_index == 0
    for x, y in zip(a[lag:100], b[lag:100]):
        assert x.frame_index == y.frame_index
        np.testing.assert_array_equal(x.ids, y.ids)
        np.testing.assert_array_equal(x.positions, y.positions)
    assert any(not np.array_equal(x.positions, y.positions, equal_nan=True) for x, y in zip(a[100:], b[100:]))
    assert [f.frame_index for f in tracker.flush()] == list(range(110 - lag, 110))


def test_bad_frames_are_named(crossing):
    tracker = OnlineTracker(crossing.rig, crossing.keypoints.joint_names, crossing.fps)
    frame = crossing.keypoints.data[0]
    with pytest.raises(ValueError, match="frame 0: expected detections of shape"):
        tracker.push(0, frame[:2])
    with pytest.raises(ValueError, match="frame 3: frames must come in order, expected frame 0"):
        tracker.push(3, frame)
    tracker.push(0, np.full_like(frame, np.nan))  # every camera out: nothing, no crash
    assert tracker.filters == {}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_median_equals_numpys(rng):
    a = rng.normal(size=(4, 5, 7))
    a[rng.random(a.shape) < 0.4] = np.nan
    a[0, 0] = np.nan
    np.testing.assert_array_equal(nan_median(a), np.nanmedian(a, axis=-1))
