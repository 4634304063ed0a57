"""Long takes where performers come and go: the chunked reconstruction holds only the people
alive in a chunk (its smoother state bounded by them, not by every track of the take), writes
``tracks.npz`` a block of frames at a time, and still gives the one-pass result (joints within
1e-6 m, same identities). Peak RSS is measured by `mocap bench long_take`, not here."""

import zipfile

import numpy as np
import pytest

from conftest import assert_same_tracks
from mocap.export.source import NpzTracksSource
from mocap.io.tracks import load_tracks, save_tracks_blocks
from mocap.pipeline import reconstruct
from mocap.runtime import smooth_chunks
from mocap.runtime.chunked import reconstruct_chunked, reconstruct_chunked_to_file
from mocap.synthetic import SyntheticConfig, make_scene

#: frames each performer is seen, then hidden (longer than link.max_gap_s at 30 fps: a new track)
SEEN, HIDDEN = 40, 36


@pytest.fixture(scope="module")
def comings_and_goings():
    """Two performers, 4 cameras, 330 frames; each is seen for 40 frames, then hidden in every
    view for 36 (over the linking's 1 s gap, so every return is a new track), the second one
    shifted by half a period: ~9 short tracks, at most a few alive at once."""
    scene = make_scene(SyntheticConfig(seed=3, num_frames=330, num_people=2, num_cameras=4))
    data = scene.keypoints.data.copy()
    period = SEEN + HIDDEN
    t = np.arange(data.shape[0])[:, None, None]
    for p, shift in ((0, 0), (1, period // 2)):
        hidden = ((t + shift) % period >= SEEN) & (scene.gt_person_index == p)
        data[np.broadcast_to(hidden, scene.gt_person_index.shape)] = np.nan
    kp = scene.keypoints
    return scene, type(kp)(data, kp.joint_names, kp.camera_names, kp.fps, kp.frame_indices, kp.extras)


def test_tracks_coming_and_going_equal_one_pass_with_bounded_state(comings_and_goings, monkeypatch):
    """Chunks of 23 frames (borders inside and between the tracks), triangulated 10 frames at a
    time: one pass's joints and IDs, and the smoother of each chunk holds the points of at most 4
    people while the take has >= 6."""
    import mocap.runtime.chunked as chunked_module

    scene, kp = comings_and_goings
    monkeypatch.setattr(chunked_module, "PEOPLE_FRAMES", 10)
    held = []
    forward = smooth_chunks.ChunkedSmoother.forward
    monkeypatch.setattr(smooth_chunks.ChunkedSmoother, "forward",
                        lambda self, lo, z, cov, ids=None: held.append(z.shape[1]) or forward(self, lo, z, cov, ids))
    one = reconstruct(kp, scene.rig)
    chunked = reconstruct_chunked(kp, scene.rig, chunk_frames=23)
    P, J = one.positions.shape[1], len(kp.joint_names)
    seen = np.isfinite(one.positions).any(axis=(2, 3))  # (T, P)
    assert P >= 6, P
    assert seen.sum(1).max() <= 2  # never more than the two performers at once
    assert_same_tracks(one, chunked)
    assert len(held) == -(-kp.data.shape[0] // 23)
    assert max(held) <= 4 * J < P * J, (max(held), P * J)


def test_streamed_tracks_file_is_the_in_memory_result(comings_and_goings, tmp_path, monkeypatch):
    """`reconstruct_chunked_to_file` writes, in blocks of a few frames, the arrays the in-memory
    result holds, bit for bit; `load_tracks` and the exporters' frame-range reader read it."""
    import mocap.io.tracks as tracks_io
    import mocap.runtime.chunked as chunked_module

    scene, kp = comings_and_goings
    want = reconstruct_chunked(kp, scene.rig, chunk_frames=50)
    P, J = want.positions.shape[1:3]
    monkeypatch.setattr(chunked_module, "BLOCK_ELEMENTS", 7 * P * J * 3)  # blocks of 7 frames
    sizes = {}
    real = tracks_io.write_npy_blocks
    monkeypatch.setattr(tracks_io, "write_npy_blocks", lambda zf, name, shape, dtype, blocks: real(
        zf, name, shape, dtype, (sizes.setdefault(name, []).append(len(b)) or b for b in blocks)))
    path = reconstruct_chunked_to_file(kp, scene.rig, tmp_path / "tracks.npz", chunk_frames=50)
    T = kp.data.shape[0]
    assert max(sizes["positions"]) == 7 and max(sizes["confidence"]) == 21  # (n, P, J, 3), (n, P, J)
    assert sum(sizes["positions"]) == sum(sizes["confidence"]) == T
    got = load_tracks(path)
    for name in ("positions", "confidence", "track_ids", "frame_indices"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.joint_names == want.joint_names and got.fps == want.fps
    with NpzTracksSource(path) as source:
        np.testing.assert_array_equal(source.read_positions(60, 95), want.positions[60:95])
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("positions.npy").compress_type == zipfile.ZIP_DEFLATED


def test_streamed_writer_refuses_blocks_that_do_not_add_up(tmp_path):
    frames = np.arange(10)
    with pytest.raises(ValueError, match="positions: blocks gave 9 rows, expected 10"):
        save_tracks_blocks(tmp_path / "t.npz", 1, ["a"], [0], 30.0, frames, lambda: iter([np.zeros((9, 1, 1, 3))]))
    with pytest.raises(ValueError, match=r"a block of shape \(10, 2, 1, 3\)"):
        save_tracks_blocks(tmp_path / "t.npz", 1, ["a"], [0], 30.0, frames, lambda: iter([np.zeros((10, 2, 1, 3))]))
    assert not (tmp_path / "t.npz").exists() and not list(tmp_path.iterdir())  # nothing half-written left


def test_chunked_smoother_holding_only_live_points_equals_one_pass(rng, monkeypatch):
    """Points that start and end at different frames, each chunk holding only the points whose
    span meets it, chunks split into parts of 4 frames: the one-pass smoother's result (gaps
    longer and shorter than max_gap_s across borders included); a point coming back after a
    chunk that dropped it is refused."""
    from mocap.runtime.chunked import chunk_ranges
    from mocap.track.smoothing import SmoothConfig, smooth_trajectories

    monkeypatch.setattr(smooth_chunks, "SUB_FRAMES", 4)
    T, N = 120, 6
    z = np.cumsum(rng.normal(0, 0.01, (T, N, 3)), axis=0)
    spans = [(0, 40), (10, 70), (35, 36), (50, 120), (0, 120), (90, 119)]
    for n, (a, b) in enumerate(spans):
        z[:a, n] = z[b:, n] = np.nan
    z[20:24, 4] = np.nan   # short gap: filled
    z[60:100, 4] = np.nan  # long gap, over a chunk: stays NaN, the point is held through it
    z[95, 3] += 2.0        # outlier: gated out
    config = SmoothConfig()
    want, _ = smooth_trajectories(z, None, 30.0, config)
    for chunk in (9, 30):
        sm = smooth_chunks.ChunkedSmoother(N, 30.0, config)
        held = []
        for lo, hi in chunk_ranges(T, chunk):
            ids = np.array([n for n, (a, b) in enumerate(spans) if a < hi and b > lo])
            held.append(len(ids))
            sm.forward(lo, z[lo:hi, ids], None, ids)
        got = np.full_like(z, np.nan)
        for lo, hi, ids, pos in sm.backward_points():
            got[lo:hi, ids] = pos
        sm.close()
        assert min(held) < N and sm.rejected >= 1
        np.testing.assert_allclose(got, want, atol=1e-12, equal_nan=True)
    sm = smooth_chunks.ChunkedSmoother(N, 30.0, config)
    sm.forward(0, z[:10, :2], None, np.array([0, 1]))
    sm.forward(10, z[10:20, 1:2], None, np.array([1]))
    with pytest.raises(ValueError, match="a point came back after a chunk that did not hold it"):
        sm.forward(20, z[20:30, :2], None, np.array([0, 1]))


def test_bench_video_take_plays_forth_and_back(shared, tmp_path):
    """`mocap bench long_take --video`'s take: the demo video played 0..99, 98..1, 0.. (no seam
    where the performer jumps), every 33rd frame, one period encoded and its packets repeated:
    each frame of the take is the source frame it should be (closer to it than to its neighbours)."""
    import av

    from mocap.bench.long_take import loop_videos, pingpong

    steps = np.diff(pingpong(np.arange(500), 100))
    assert set(np.abs(steps)) == {1} and pingpong(np.arange(500), 100).max() == 99
    take = shared / "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"
    count = loop_videos(take, tmp_path, 0.3, 33, 1)  # 1.8 fps: 33 frames, a 6-frame period repeated
    assert count == 33
    with av.open(str(take / "videos/cam01.mp4")) as f:
        src = np.stack([fr.to_ndarray(format="gray") for fr in f.decode(video=0)]).astype(np.int16)
    with av.open(str(tmp_path / "videos/cam01.mp4")) as f:
        got = np.stack([fr.to_ndarray(format="gray") for fr in f.decode(video=0)]).astype(np.int16)
    assert len(got) == count
    want = pingpong(np.arange(count) * 33, 100)
    err = np.abs(got - src[want]).mean(axis=(1, 2))
    for shift in (-1, 1):
        other = np.where((want + shift >= 0) & (want + shift <= 99), want + shift, want - shift)
        assert (err < np.abs(got - src[other]).mean(axis=(1, 2))).mean() > 0.9
    assert err.max() < 1.5, err.max()


def test_detection_frames_part_is_the_stacked_detections(tmp_path):
    """Detection files unpacked and read a part at a time = `to_keypoints2d` + `align_to_rig` of
    the same frames: cameras in the calibration's order (files named in another order, one
    calibration camera without a file: NaN), slot counts differing per camera, a camera whose
    video ends early, appearance and scores carried."""
    from mocap.detect.pipeline import CameraDetections, load_camera_detections, save_camera_detections, to_keypoints2d
    from mocap.io.openpose import align_to_rig
    from mocap.runtime.chunked import keypoints_part
    from mocap.runtime.detection_frames import DetectionFrames

    scene = make_scene(SyntheticConfig(seed=1, num_frames=90, num_people=3, num_cameras=4, keypoint_format="blazepose_33"))
    rng = np.random.default_rng(0)
    data = scene.keypoints.data  # (T, C, P, J, 3)
    for c, name in list(enumerate(scene.rig.names))[1:]:  # the first camera has no file
        slots = 3 if c != 2 else 2
        T = 90 if c != 3 else 61  # camera 3's video ends early
        kp = data[:T, c, :slots]
        scores = np.where(np.isfinite(kp[..., 0]).any(-1), rng.uniform(0.5, 1, kp.shape[:2]), np.nan)
        save_camera_detections(CameraDetections(
            camera=name, keypoints=kp, scores=scores, appearance=rng.normal(size=kp.shape[:2] + (64,)),
            rois=np.full(kp.shape[:2] + (4,), np.nan), frame_indices=np.arange(T), joint_names=scene.keypoints.joint_names,
            fps=30.0, image_size=scene.rig[c].size, detector="synthetic"), tmp_path / "kp" / f"z{4 - c}_{name}.npz")
    files = sorted((tmp_path / "kp").glob("*.npz"))
    whole = align_to_rig(to_keypoints2d([load_camera_detections(p) for p in files]), scene.rig)
    source = DetectionFrames.open(tmp_path / "kp", scene.rig, tmp_path / "work")
    assert source.num_frames == 90 and source.camera_names == tuple(scene.rig.names)
    assert source.recorded[scene.rig.names[3]] == 61 and scene.rig.names[0] not in source.recorded
    for lo, hi in ((0, 90), (0, 17), (55, 70), (80, 90)):
        part, ref = source.part(lo, hi), keypoints_part(whole, lo, hi)
        assert np.array_equal(part.data, ref.data, equal_nan=True), (lo, hi)
        assert np.array_equal(part.frame_indices, ref.frame_indices)
        for key in ("appearance", "scores"):
            assert np.array_equal(part.extras[key], ref.extras[key], equal_nan=True), key
    assert np.isnan(source.part(0, 90).data[:, 0]).all() and np.isnan(source.part(61, 90).data[:, 3]).all()


def test_report_read_from_files_in_chunks_equals_the_report_in_memory(comings_and_goings, tmp_path):
    """The run report's numbers from tracks.npz read 7 frames at a time = from the tracks in
    memory read 600 at a time (histogram medians, bone sums, presence, paths)."""
    from mocap.io.tracks import save_tracks
    from mocap.report import figures_report, take_figures

    scene, kp = comings_and_goings
    tracks = reconstruct(kp, scene.rig)
    path = save_tracks(tracks, tmp_path / "tracks.npz")
    a = take_figures(kp, scene.rig, tracks)
    b = take_figures(kp, scene.rig, path, chunk_frames=7)
    assert figures_report(a, scene.rig) == figures_report(b, scene.rig)
    assert np.array_equal(a.hist, b.hist) and np.array_equal(a.presence(), b.presence())
    assert [t for t, _ in a.person_paths()] == [t for t, _ in b.person_paths()]
    assert all(np.array_equal(p, q) for (_, p), (_, q) in zip(a.person_paths(), b.person_paths()))
    assert np.allclose(a.bones, b.bones, rtol=1e-12)
