"""`mocap view DIR --3d` without a display: the offscreen turntable (mocap.view.viewer3d), drawn
by open3d (Filament on Mesa's lavapipe, no GPU) or by the OpenCV fallback.

The frames must show the take: not blank, every performer's own colour present, and each joint
drawn where the virtual camera projects it (so open3d's camera is set up in our convention).
"""

import cv2
import numpy as np
import pytest
import yaml

from conftest import missing_dependency
from mocap.calibration.io import save_calibration
from mocap.cli import main
from mocap.geometry import project
from mocap.io.tracks import save_tracks
from mocap.pipeline import reconstruct
from mocap.synthetic import SyntheticConfig, make_scene
from mocap.view.render3d import OpenCVRenderer, Open3DRenderer, choose_renderer, open3d_problem
from mocap.view.scene import Segments, people_at, person_rgb, skeleton_edges
from mocap.view.viewer3d import static_scene, turntable_cameras

SIZE = (320, 192)


@pytest.fixture(scope="module")
def take():
    scene = make_scene(SyntheticConfig(num_frames=40, num_people=2, num_cameras=4, seed=3,
                                       keypoint_format="blazepose_33"))
    return scene.rig, reconstruct(scene.keypoints, scene.rig)


@pytest.fixture(scope="module")
def open3d_renders():
    problem = open3d_problem()
    if problem is not None:
        missing_dependency("open3d offscreen rendering", problem)


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def colour_pixels(image: np.ndarray, rgb, tolerance: float) -> int:
    """Pixels within ``tolerance`` (max over channels, 0-255) of the colour ``rgb`` in [0, 1]."""
    return int((np.abs(image.astype(int) - 255 * np.array(rgb)).max(-1) < tolerance).sum())


def test_open3d_draws_each_joint_where_the_camera_projects_it(take, open3d_renders):
    """Same virtual camera, same performer: open3d's pixel at every projected joint is the
    performer's colour (unlit, linear tone mapping: exact), as the OpenCV renderer's is. One
    performer at a time and no floor grid, so that nothing hides a joint (feet touch the floor)."""
    rig, tracks = take
    _, _, centre, hold = static_scene(tracks, rig)
    views = turntable_cameras(centre, hold, 4, SIZE)
    static = Segments.concat([])
    drawn = Open3DRenderer(SIZE, static)
    for p in range(tracks.num_people):
        frame = people_at(tracks.person(p), 20, skeleton_edges(tracks.joint_names))
        frame = type(frame)(frame.bones, frame.joints, frame.joint_colours, ())  # no label over the joints
        for view in views:
            for image in (drawn.render(view, frame), OpenCVRenderer(SIZE, static).render(view, frame)):
                assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
                xy = np.round(project(view, frame.joints, distort=False)).astype(int)
                inside = (xy >= 1).all(-1) & (xy[:, 0] < SIZE[0] - 1) & (xy[:, 1] < SIZE[1] - 1)
                near = [np.abs(image[y - 1:y + 2, x - 1:x + 2].astype(int) - 255 * c).max(-1).min()
                        for (x, y), c in zip(xy[inside], frame.joint_colours[inside])]
                # measured: every joint within 0 of its colour in both renderers
                assert inside.sum() > 20 and np.mean(np.array(near) < 8) > 0.95, (p, near)


def test_view_3d_renders_a_turntable_headless(tmp_path, take, open3d_renders, capsys, monkeypatch):
    """`mocap view DIR --3d` with no display: turntable.mp4 (one frame per shown row, not blank,
    both performers in their colours) and turntable.png (the strip)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rig, tracks = take
    calib = save_calibration(rig, tmp_path / "calibration.yaml")
    save_tracks(tracks, tmp_path / "tracks.npz")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"inputs": {"calibration": str(calib)}}))
    assert main(["-q", "view", str(tmp_path), "--3d", "--renderer", "open3d", "--size", f"{SIZE[0]}x{SIZE[1]}",
                 "--max-frames", "10"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'view3d' / 'turntable.mp4'}" in out and "turntable.png" in out
    frames = read_video(tmp_path / "view3d" / "turntable.mp4")
    assert len(frames) == 10 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    for image in frames:
        assert (image.min(-1) < 200).mean() > 0.02  # floor grid, frusta, people: not a blank frame
        for tid in tracks.track_ids:
            assert colour_pixels(image, person_rgb(tid), 60) > 40, tid  # MP4-compressed colour
    strip = cv2.cvtColor(cv2.imread(str(tmp_path / "view3d" / "turntable.png")), cv2.COLOR_BGR2RGB)
    assert strip.shape == (SIZE[1] // 2, 6 * (SIZE[0] // 2), 3)
    assert all(colour_pixels(strip, person_rgb(tid), 60) > 30 for tid in tracks.track_ids)


def test_opencv_fallback_renders_the_turntable(tmp_path, take):
    """The renderer used where open3d cannot render: the same frames, drawn by OpenCV."""
    from mocap.view.viewer3d import render_turntable

    rig, tracks = take
    done = render_turntable(tracks, rig, tmp_path, size=SIZE, max_frames=8, panels=4, renderer="opencv")
    assert done.renderer == "opencv" and len(done.rows) == 8 and done.rows[-1] == tracks.num_frames - 1
    frames = read_video(done.video)
    assert len(frames) == 8
    assert all(colour_pixels(f, person_rgb(t), 60) > 40 for f in frames for t in tracks.track_ids)
    assert cv2.imread(str(done.strip)).shape == (SIZE[1] // 2, 4 * (SIZE[0] // 2), 3)


def test_an_unknown_renderer_is_named_with_the_choices():
    with pytest.raises(ValueError, match="renderer: unknown 'vulkan'; choose one of auto, open3d, opencv"):
        choose_renderer("vulkan")


def test_interactive_window_shows_the_performers_on_a_display(tmp_path, take, open3d_renders):
    """Where a display exists (here a virtual X server, Xvfb) open3d's window opens and shows
    every performer in their colour's hue (the window's lighting pales them); closed after 2 s."""
    import colorsys
    import shutil
    import subprocess
    import sys

    xvfb_run = shutil.which("xvfb-run") or missing_dependency("xvfb-run", "Debian package `xvfb`; `make sysdeps` installs it")
    rig, tracks = take
    calib = save_calibration(rig, tmp_path / "calibration.yaml")
    save_tracks(tracks, tmp_path / "tracks.npz")
    script = ("import sys\nfrom mocap.calibration.io import load_calibration\nfrom mocap.io.tracks import load_tracks\n"
              "from mocap.view.viewer3d import show_interactive\n"
              "show_interactive(load_tracks(sys.argv[1]), load_calibration(sys.argv[2]), close_after_s=2.0, "
              "snapshot=sys.argv[3])\n")
    done = subprocess.run([xvfb_run, "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-c", script,
                           str(tmp_path / "tracks.npz"), str(calib), str(tmp_path / "window.png")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    hsv = cv2.cvtColor(cv2.imread(str(tmp_path / "window.png")), cv2.COLOR_BGR2HSV)
    coloured = hsv[..., 1] > 40  # the grid, frusta and background are grey
    for tid in tracks.track_ids:
        hue = 180 * colorsys.rgb_to_hsv(*person_rgb(tid))[0]  # OpenCV's hue is 0-180
        near = np.abs((hsv[..., 0].astype(float) - hue + 90) % 180 - 90) < 10
        assert (coloured & near).sum() > 100, tid  # measured 600-750 px per performer
