"""TRC, tidy CSV and C3D export: read back (our readers, the `c3d` PyPI reader), CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from conftest import require_module
from mocap.cli import main
from mocap.export import export_tracks, parse_formats
from mocap.export.axes import points_yup_to_world
from mocap.export.c3d import read_c3d, write_c3d
from mocap.export.tabular import CSV_COLUMNS, write_tracks_csv
from mocap.export.trc import write_trc
from mocap.io.trc import read_trc
from mocap.io.tracks import Tracks, save_tracks
from test_skeleton_solve import synthetic_poses


@pytest.fixture
def tracks(rng):
    _, _, _, points, names = synthetic_poses(rng, T=30)
    second = points + np.array([2.0, 0.0, 0.0])
    second[:5] = np.nan
    second[10, 3] = np.nan
    return Tracks(np.stack([points, second], axis=1), names, [1, 4], 60.0, np.arange(100, 130))


def test_trc_round_trip_y_up(tracks, tmp_path):
    pts = tracks.positions[:, 1]
    path = write_trc(pts, tracks.joint_names, tracks.fps, tmp_path / "p.trc", tracks.frame_indices, units="mm")
    data = read_trc(path)
    assert data.marker_names == tracks.joint_names and data.units == "mm" and data.fps == 60.0
    np.testing.assert_array_equal(data.frame_numbers, tracks.frame_indices + 1)
    back = points_yup_to_world(data.positions, "mm")
    assert np.array_equal(np.isnan(back), np.isnan(pts))
    np.testing.assert_allclose(back[np.isfinite(pts)], pts[np.isfinite(pts)], atol=1e-9)
    # Y up: world z (height) is the TRC's second column.
    np.testing.assert_allclose(data.positions[..., 1], 1000 * pts[..., 2], atol=1e-6, equal_nan=True)


def test_csv_is_tidy(tracks, tmp_path):
    path = write_tracks_csv(tracks, tmp_path / "t.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = rows[1:]
    assert len(body) == int(np.isfinite(tracks.positions).all(axis=-1).sum())
    row = next(r for r in body if r[2] == "4" and r[3] == tracks.joint_names[3] and r[0] == "111")
    np.testing.assert_allclose([float(v) for v in row[4:]], tracks.positions[11, 1, 3], atol=1e-6)
    assert float(row[1]) == pytest.approx(111 / 60.0)
    assert not any(r[2] == "4" and r[0] == "110" and r[3] == tracks.joint_names[3] for r in body)  # missing: no row


def test_c3d_round_trip_own_reader(tracks, tmp_path):
    pts = tracks.positions[:, 1]
    path = write_c3d(pts, tracks.joint_names, tracks.fps, tmp_path / "p.c3d", units="mm", first_frame=101)
    got = read_c3d(path)
    assert got.labels == tracks.joint_names and got.fps == 60.0 and got.units == "mm" and got.first_frame == 101
    assert np.array_equal(np.isnan(got.points), np.isnan(pts))
    np.testing.assert_allclose(got.points / 1000, pts, atol=1e-6, equal_nan=True)  # float32 mm
    assert got.parameters["POINT:USED"] == len(tracks.joint_names) and got.parameters["POINT:SCALE"] < 0


def test_c3d_read_by_the_c3d_package(tracks, tmp_path):
    c3d = require_module("c3d")
    pts = tracks.positions[:, 1]
    path = write_c3d(pts, tracks.joint_names, tracks.fps, tmp_path / "p.c3d")
    with open(path, "rb") as f, pytest.warns(UserWarning, match="No analog data"):
        reader = c3d.Reader(f)
        labels = [s.strip() for s in reader.point_labels]
        frames = [p.copy() for _, p, _ in reader.read_frames()]
    assert labels == list(tracks.joint_names) and reader.point_rate == 60.0
    got = np.stack(frames)  # (T, N, 5): x y z residual cameras
    invalid = got[..., 3] < 0
    assert np.array_equal(invalid, np.isnan(pts).any(axis=-1))
    np.testing.assert_allclose(got[~invalid][:, :3] / 1000, pts[~invalid], atol=1e-6)


def test_export_tracks_writes_each_format(tracks, tmp_path):
    paths = export_tracks(tracks, tmp_path, "trc,csv,c3d")
    assert sorted(p.name for p in paths) == ["export.json", "person_1.c3d", "person_1.trc", "person_4.c3d",
                                             "person_4.trc", "tracks.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_parse_formats():
    assert parse_formats("bvh, FBX,bvh") == ("bvh", "fbx")
    with pytest.raises(ValueError, match="format: unknown value 'obj'"):
        parse_formats("bvh,obj")


def test_cli_export(tracks, tmp_path, capsys):
    src = save_tracks(tracks, tmp_path / "take.npz")
    out = tmp_path / "out"
    assert main(["export", str(src), "--format", "bvh,csv", "--out", str(out), "--preset", "unity", "--units", "m"]) == 0
    text = capsys.readouterr().out
    assert "person_1.bvh" in text and "skeleton residual median" in text
    assert (out / "person_4.bvh").read_text().startswith("HIERARCHY\nROOT Hips\n")
    assert (out / "take.csv").is_file()
    assert main(["export", str(src), "--format", "obj", "--out", str(out)]) == 2
    assert "formats: unknown value 'obj'" in capsys.readouterr().err
