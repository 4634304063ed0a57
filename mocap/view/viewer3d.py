"""``mocap view DIR --3d``: the take in 3D, each performer in their colour with their ID, the
cameras as frusta on the floor grid.

Where a display exists, open3d's interactive window plays the take (:func:`show_interactive`);
without one, a turntable is rendered offscreen (:func:`render_turntable`): the virtual camera
circles the performers while the take plays, written as ``turntable.mp4`` and a strip of a few of
its frames, ``turntable.png``. open3d renders where it can (on CPU through Mesa's lavapipe), the
OpenCV line renderer otherwise (:mod:`mocap.view.render3d`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from mocap.geometry import Camera, Rig, project
from mocap.io.files import atomic_write
from mocap.io.tracks import Tracks
from mocap.view.render3d import make_renderer, open3d_lines
from mocap.view.scene import (CAMERA_RGB, Label, Segments, floor_grid, framing_distance, orbit_camera,
                              people_at, rig_segments, scene_centre, skeleton_edges)

log = logging.getLogger(__name__)

#: Horizontal field of view of the virtual camera, degrees.
FOV_DEG = 50.0
#: The virtual camera looks down at the volume from this many degrees above the horizon.
ELEVATION_DEG = 25.0
#: The farthest-out performer joint or camera of any turntable view lands at this fraction of the
#: half-frame from the centre (a margin for labels).
FILL = 0.9


@dataclass(frozen=True)
class Turntable:
    """What :func:`render_turntable` wrote: ``video`` (MP4), ``strip`` (PNG), the ``renderer``
    used, ``rows`` (the take's rows shown, one per video frame) and seconds per rendered frame."""

    video: Path
    strip: Path
    renderer: str
    rows: np.ndarray
    seconds_per_frame: float


def has_display() -> bool:
    """Whether a window can be opened (an X11 or Wayland display is named)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def static_scene(tracks: Tracks, rig: Rig) -> tuple[Segments, tuple[Label, ...], np.ndarray, np.ndarray]:
    """The floor grid and camera frusta, the cameras' name labels, the scene's centre ``(3,)``,
    and the points ``(N, 3)`` a view should hold (performers' extent and camera centres)."""
    centre = scene_centre(tracks, rig)
    finite = tracks.positions[np.isfinite(tracks.positions).all(-1)]
    extent = np.percentile(finite, [2, 98], axis=0) if len(finite) else np.zeros((0, 3))
    corners = np.array(np.meshgrid(*extent.T)).reshape(3, -1).T if len(extent) else extent
    hold = np.concatenate([corners, rig.centers])
    half = float(np.max(np.abs(hold[:, :2] - centre[:2]))) if len(hold) else 3.0
    static = Segments.concat([floor_grid(centre, half), rig_segments(rig)])
    names = tuple(Label(c.name, c.center + np.array([0.0, 0.0, 0.15]), CAMERA_RGB) for c in rig.cameras)
    return static, names, centre, hold


def turntable_cameras(centre: np.ndarray, hold: np.ndarray, count: int, size: tuple[int, int],
                      revolutions: float = 1.0) -> list[Camera]:
    """``count`` virtual cameras circling ``centre`` once per ``1 / revolutions`` of the video,
    far enough that ``hold (N, 3)`` stays in view."""
    azimuths = -np.pi / 2 + 2 * np.pi * revolutions * np.arange(count) / max(count, 1)
    distance = framing_distance(hold, centre, FOV_DEG, size[0] / size[1])  # a bounding sphere: too far
    half = np.array(size, dtype=np.float64) / 2
    for _ in range(3):  # move in until the farthest-out point of any view sits at FILL of the half-frame
        views = [orbit_camera(centre, distance, a, np.radians(ELEVATION_DEG), size, FOV_DEG) for a in azimuths[::8]]
        spread = max(float(np.max(np.abs(project(v, hold, distort=False) - half) / half)) for v in views)
        distance *= min(max(spread / FILL, 0.5), 1.0)
    return [orbit_camera(centre, distance, a, np.radians(ELEVATION_DEG), size, FOV_DEG) for a in azimuths]


def strip_image(frames: list[np.ndarray], rows: np.ndarray, panels: int, scale: float = 0.5) -> np.ndarray:
    """``panels`` evenly spaced RGB frames side by side, scaled by ``scale``, each captioned with
    its row of the take."""
    pick = np.unique(np.linspace(0, len(frames) - 1, min(panels, len(frames))).round().astype(int))
    tiles = []
    for k in pick:
        tile = cv2.resize(frames[k], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"frame {rows[k]}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def _write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    def write(tmp):
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise OSError(f"cannot write an MP4 video to {tmp} (OpenCV's mp4v encoder)")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()

    return atomic_write(path, write, suffix=".mp4")


def render_turntable(tracks: Tracks, rig: Rig, out_dir: str | os.PathLike, size: tuple[int, int] = (960, 540),
                     max_frames: int = 300, panels: int = 6, renderer: str = "auto", progress: bool = False) -> Turntable:
    """Render the turntable offscreen into ``out_dir`` (``turntable.mp4``, ``turntable.png``).

    Args:
        tracks: the 3D result ``positions (T, P, J, 3)``.
        rig: the calibration (frusta, and the view's framing).
        out_dir: output folder (created).
        size: video ``(width, height)`` pixels (even numbers suit MP4 players).
        max_frames: the take is shown at most at this many evenly spaced rows (all when fewer).
        panels: frames in the PNG strip.
        renderer: ``auto`` (open3d where it renders, else OpenCV), ``open3d`` or ``opencv``.
        progress: a progress bar.
    """
    if tracks.num_frames == 0:
        raise ValueError("tracks: the take has no frames; nothing to render")
    if size[0] < 16 or size[1] < 16 or max_frames < 1 or panels < 1:
        raise ValueError(f"turntable: size {size} must be at least 16x16, max_frames and panels at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    static, names, centre, hold = static_scene(tracks, rig)
    rows = np.unique(np.linspace(0, tracks.num_frames - 1, min(tracks.num_frames, max_frames)).round().astype(int))
    views = turntable_cameras(centre, hold, len(rows), size)
    edges = skeleton_edges(tracks.joint_names)
    draw = make_renderer(renderer, size, static)
    t0 = time.perf_counter()
    frames = []
    for row, view in _bar(list(zip(rows, views)), progress):
        frame = people_at(tracks, int(row), edges)
        frames.append(draw.render(view, replace(frame, labels=names + frame.labels)))
    per_frame = (time.perf_counter() - t0) / len(rows)
    video = _write_video(out / "turntable.mp4", frames, float(tracks.fps))
    strip = atomic_write(out / "turntable.png", lambda tmp: cv2.imwrite(
        str(tmp), cv2.cvtColor(strip_image(frames, rows, panels), cv2.COLOR_RGB2BGR)), suffix=".png")
    log.info("turntable: %d frames rendered with %s in %.2f s each", len(rows), draw.name, per_frame)
    return Turntable(video, strip, draw.name, rows, per_frame)


def _bar(items, progress: bool):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="turntable", unit="frame", leave=False)


def show_interactive(tracks: Tracks, rig: Rig, close_after_s: float | None = None,
                     snapshot: str | os.PathLike | None = None) -> None:
    """open3d's window (needs a display): the take plays in a loop (the window's own play/pause
    and time slider), each performer in their colour with their ID, the cameras as frusta. Returns
    when the window is closed, or after ``close_after_s`` seconds (scripted previews), saving what
    it shows to ``snapshot`` (PNG) first when given."""
    import open3d as o3d
    from open3d.visualization import gui, rendering

    if not has_display():
        raise ValueError("no display (DISPLAY/WAYLAND_DISPLAY unset): use the offscreen turntable instead")
    static, names, centre, hold = static_scene(tracks, rig)
    edges = skeleton_edges(tracks.joint_names)
    app = gui.Application.instance
    app.initialize()
    vis = o3d.visualization.O3DVisualizer(f"mocap: {tracks.num_frames} frames, {len(tracks.track_ids)} people",
                                          1280, 720)
    line, points = rendering.MaterialRecord(), rendering.MaterialRecord()
    line.shader, line.line_width = "unlitLine", 3.0
    points.shader, points.point_size = "defaultUnlit", 8.0
    vis.add_geometry("rig", open3d_lines(static), line)
    shown = {"row": -1}

    def show_row(v, seconds: float) -> None:
        row = min(int(seconds * tracks.fps), tracks.num_frames - 1)
        if row == shown["row"]:
            return
        shown["row"] = row
        frame = people_at(tracks, row, edges)
        for name in ("bones", "joints"):
            v.remove_geometry(name)
        v.add_geometry("bones", open3d_lines(frame.bones), line)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(frame.joints.reshape(-1, 3)))
        cloud.colors = o3d.utility.Vector3dVector(frame.joint_colours.reshape(-1, 3))
        v.add_geometry("joints", cloud, points)
        v.clear_3d_labels()
        for label in names + frame.labels:  # O3DVisualizer's labels have one colour: the text says who
            v.add_3d_label(label.position, label.text)

    vis.animation_time_step = 1.0 / tracks.fps
    vis.animation_duration = tracks.num_frames / tracks.fps
    vis.set_on_animation_frame(show_row)
    show_row(vis, 0.0)
    vis.show_skybox(False)
    vis.set_background([1.0, 1.0, 1.0, 1.0], None)
    view = turntable_cameras(centre, hold, 1, (1280, 720))[0]  # the turntable's first view
    vis.setup_camera(FOV_DEG, centre, view.center, [0.0, 0.0, 1.0])
    app.add_window(vis)
    if close_after_s is not None:
        _close_later(app, vis, close_after_s, snapshot)
    app.run()


def _close_later(app, window, seconds: float, snapshot) -> None:
    """Close ``window`` from the GUI thread after ``seconds``, exporting its image first."""
    import threading

    def close():
        time.sleep(seconds)
        if snapshot is not None:
            app.post_to_main_thread(window, lambda: window.export_current_image(str(snapshot)))
            time.sleep(1.0)  # the export happens on the next drawn frame
        app.post_to_main_thread(window, window.close)

    threading.Thread(target=close, daemon=True).start()

