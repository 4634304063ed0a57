"""Export in chunks of frames (mocap.export.stream, mocap.skeleton.stream): byte-identical BVH/FBX
and export.json to the whole-take writers on a take that spans several chunks, every rig; the
chunk-wise pieces (solve, Euler curves, order choices, npz reader, FBX encoder) equal their
one-pass twins; peak memory does not grow with the take.

The reference is the whole-take path the exporter had before it streamed: solve_tracks, retarget,
write_bvh and write_fbx of the whole take (kept as the library's one-pass functions).
"""

from __future__ import annotations

import io
import json
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.export import export_file, export_tracks
from mocap.export.bvh import write_bvh
from mocap.export.fbx import build_fbx_scene, write_fbx
from mocap.export.fbx_binary import encode_fbx, write_fbx_file
from mocap.export.rigs import retarget
from mocap.export.source import NpzTracksSource
from mocap.geometry.rotations import rotvec_to_rotmat
from mocap.io.tracks import Tracks, save_tracks
from mocap.skeleton.euler import (
    CalmestOrders,
    ContinuousEuler,
    LeastSingularOrders,
    calmest_orders,
    least_singular_orders,
    rotmat_to_euler_continuous,
    scan_picks,
)
from mocap.skeleton.solve import SolveConfig, solve_tracks
from mocap.skeleton.stream import solve_stream

CHUNK = 23  # frames per chunk: the 150-frame take spans 7 chunks, the last a short one


@pytest.fixture(scope="module")
def take():
    """Two performers (real CMU motion) with the gaps every whole-take step fills: a short gap, a
    long one on a wrist (slerped rotations), a person absent for a while, a joint missing at the
    start and at the end."""
    from mocap.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=3, num_frames=150, fps=30.0, num_people=2, num_cameras=2))
    pos = scene.gt_positions.copy()
    names = list(scene.joint_names)
    wrist, elbow, hip = names.index("left_wrist"), names.index("left_elbow"), names.index("left_hip")
    pos[30:33, 0, elbow] = np.nan
    pos[40:95, 0, wrist] = np.nan
    pos[60:100, 1] = np.nan
    pos[:12, 1, names.index("right_ear")] = np.nan
    pos[140:, 0, names.index("right_wrist")] = np.nan
    pos[:, 1, hip] += np.random.default_rng(0).normal(0, 0.004, (len(pos), 3))  # a noisy joint
    T, P = pos.shape[:2]
    return Tracks(pos, tuple(names), np.arange(1, P + 1), 30.0, np.arange(T))


def reference_export(tracks: Tracks, out: Path, rig: str, rotation_order: str) -> None:
    """What export_tracks wrote before it streamed (whole-take arrays)."""
    fits = solve_tracks(tracks, SolveConfig())
    report = {"formats": ["bvh", "fbx"], "rig": rig, "units": {"bvh": "cm", "fbx": "cm"}, "rotation_order": rotation_order,
              "frames": tracks.num_frames, "fps": tracks.fps, "people": {}, "solve": asdict(SolveConfig())}
    for fit in fits:
        anim = fit.animation
        change = np.linalg.norm(anim.local_translations(), axis=-1) - np.linalg.norm(anim.offsets, axis=-1)
        report["people"][anim.name] = {
            "residual_m": {k: [round(a, 6), round(b, 6)] for k, (a, b) in fit.residual_summary().items()},
            "offsets_m": {n: np.round(o, 6).tolist() for n, o in zip(anim.joint_names, anim.offsets)},
            "present_frames": int(fit.present.sum()),
            "stretch_m": {anim.joint_names[j]: [round(float(change[:, j].min()), 6), round(float(change[:, j].max()), 6)]
                          for j in np.flatnonzero(anim.stretching())},
        }
    for fit in fits:
        anim = retarget(fit.animation, rig, t_pose=True)
        write_bvh(anim, out / f"{anim.name}.bvh", "cm", rotation_order)
    write_fbx([retarget(fit.animation, rig) for fit in fits], out / "tracks.fbx", units="cm")
    (out / "export.json").write_text(json.dumps(report, indent=1) + "\n")


def same_files(a: Path, b: Path) -> dict[str, bool]:
    names = ["person_1.bvh", "person_2.bvh", "tracks.fbx"]
    out = {n: (a / n).read_bytes() == (b / n).read_bytes() for n in names}
    ja, jb = json.loads((a / "export.json").read_text()), json.loads((b / "export.json").read_text())
    out["export.json"] = ja == jb
    return out


@pytest.mark.parametrize("rig, rotation_order", [("canonical", "auto"), ("mixamo", "ZXY"), ("ue5", "auto"), ("unity", "YXZ")])
def test_chunked_export_is_byte_identical_to_whole_take(take, tmp_path, rig, rotation_order):
    reference_export(take, tmp_path / "ref", rig, rotation_order)
    export_tracks(take, tmp_path / "chunked", "bvh,fbx", rig=rig, rotation_order=rotation_order, chunk_frames=CHUNK)
    assert same_files(tmp_path / "ref", tmp_path / "chunked") == dict.fromkeys(
        ["person_1.bvh", "person_2.bvh", "tracks.fbx", "export.json"], True)


def test_export_file_reads_the_npz_in_chunks_and_writes_the_same(take, tmp_path):
    path = save_tracks(take, tmp_path / "tracks.npz")
    export_tracks(take, tmp_path / "one", "bvh,fbx", rig="mixamo", chunk_frames=take.num_frames)
    export_file(path, tmp_path / "chunked", "bvh,fbx", rig="mixamo", chunk_frames=CHUNK)
    assert all(same_files(tmp_path / "one", tmp_path / "chunked").values())


def test_streamed_solve_equals_one_pass_solve(take, tmp_path):
    from mocap.export.source import TracksSource

    whole = solve_tracks(take)
    chunked = solve_stream(TracksSource(take), tmp_path, chunk_frames=CHUNK)
    assert [f.name for f in chunked] == [f.animation.name for f in whole]
    for ref, fit in zip(whole, chunked):
        anim, got = ref.animation, fit.chunk(0, fit.num_frames)
        assert np.array_equal(anim.offsets, got.offsets)
        assert np.array_equal(anim.rotations, got.rotations)
        assert np.array_equal(anim.root_positions, got.root_positions)
        assert np.array_equal(anim.translations, got.translations)
        assert ref.residual_summary() == fit.residual_summary
        assert np.array_equal(anim.stretching(), fit.stretching)
        assert int(ref.present.sum()) == fit.present_frames
        part = fit.chunk(50, 73)  # any range, not only whole chunks
        assert np.array_equal(part.rotations, anim.rotations[50:73])


def test_chunked_euler_curves_and_order_choices_equal_one_pass():
    rng = np.random.default_rng(1)
    rotmat = rotvec_to_rotmat(np.cumsum(rng.normal(0.0, 0.4, (300, 5, 3)), axis=0))  # fast turns: branch switches
    orders = ("ZXY", "ZYX", "XYZ", "XZY", "YXZ", "YZX")
    for chunk in (1, 2, 37, 300):
        parts = range(0, 300, chunk)
        for order in ("ZXY", "yzx"):
            stream = ContinuousEuler(order)
            got = np.concatenate([stream(rotmat[a : a + chunk]) for a in parts])
            want = rotmat_to_euler_continuous(rotmat, order)
            assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
        calm, least = CalmestOrders(orders), LeastSingularOrders(orders)
        for a in parts:
            calm.update(rotmat[a : a + chunk])
            least.update(rotmat[a : a + chunk])
        assert calm.result() == calmest_orders(rotmat, orders)
        assert least.result() == least_singular_orders(rotmat, orders)


def test_branch_pick_scan_equals_the_frame_loop():
    rng = np.random.default_rng(2)
    for p_equal in (0.0, 0.1, 0.5):  # steps where both branches agree (they set the pick) or not
        first, second = rng.random((2, 200, 4, 3)) < 0.5
        agree = rng.random((200, 4, 3)) < p_equal
        second = np.where(agree, first, second)
        for start in (False, True):
            pick = np.full((201, 4, 3), start)
            for t in range(1, 201):
                pick[t] = np.where(pick[t - 1], second[t - 1], first[t - 1])
            assert np.array_equal(scan_picks(np.full((4, 3), start), first, second), pick[1:])


def test_npz_source_reads_frame_ranges(take, tmp_path):
    path = save_tracks(take, tmp_path / "tracks.npz")
    with NpzTracksSource(path) as source:
        assert (source.num_frames, source.num_people, source.joint_names) == (150, 2, take.joint_names)
        parts = [source.read_positions(a, min(a + 40, 150)) for a in range(0, 150, 40)]
        assert np.array_equal(np.concatenate(parts), take.positions, equal_nan=True)
        assert np.array_equal(source.read_positions(10, 20), take.positions[10:20], equal_nan=True)  # back again
    np.savez(tmp_path / "bad.npz", positions=np.zeros((3, 1, 2, 3)))
    with pytest.raises(MocapError, match="bad.npz: not a tracks.npz file, missing joint_names"):
        NpzTracksSource(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz: no such tracks file"):
        NpzTracksSource(tmp_path / "missing.npz")


def test_fbx_file_writer_equals_in_memory_encoder(take):
    anims = [retarget(f.animation, "ue5") for f in solve_tracks(take)]
    nodes = build_fbx_scene(anims)
    f = io.BytesIO()
    write_fbx_file(f, nodes)
    assert f.getvalue() == encode_fbx(nodes)


def _traced_peak_mb(tracks: Tracks, out: Path, chunk: int) -> float:
    tracemalloc.start()
    try:
        export_tracks(tracks, out, "bvh,fbx", chunk_frames=chunk)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_take(take, tmp_path):
    """Four times the frames (the take looped), the same chunk: the traced peak (numpy arrays
    included) stays within 20 % (exporting the whole take as one chunk, it grows 3.9-fold: 2.3 -> 8.9 MB)."""
    one = Tracks(take.positions[:, :1], take.joint_names, take.track_ids[:1], take.fps, take.frame_indices)
    long = Tracks(np.concatenate([one.positions] * 4), one.joint_names, one.track_ids, one.fps, np.arange(4 * one.num_frames))
    short_peak = _traced_peak_mb(Tracks(one.positions, one.joint_names, one.track_ids, one.fps, one.frame_indices),
                                 tmp_path / "short", 75)
    long_peak = _traced_peak_mb(long, tmp_path / "long", 75)
    assert long_peak < 1.2 * short_peak, (short_peak, long_peak)
