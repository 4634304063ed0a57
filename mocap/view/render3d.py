"""Renderers of the 3D scene (:mod:`mocap.view.scene`): open3d's offscreen renderer, and an
OpenCV line renderer used where open3d cannot render.

Both take the same virtual :class:`~mocap.geometry.Camera` (OpenCV axes, pinhole) and return an
RGB image ``(H, W, 3)`` uint8 on white, so a frame looks the same whichever drew it, and the
performers' ID labels are drawn by the same code on top (open3d's offscreen renderer has no text).

open3d 0.20 renders through Filament's Vulkan backend: without a GPU it needs Mesa's lavapipe
(Debian ``mesa-vulkan-drivers``; ``make sysdeps`` installs it), and without it the renderer
aborts the process. So whether open3d renders here is asked once in a child process
(:func:`open3d_problem`) before it is used in this one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import subprocess
import sys

import cv2
import numpy as np

from mocap.geometry import Camera, project
from mocap.view.scene import Frame3D, Segments

log = logging.getLogger(__name__)

#: Line widths in pixels: bones, and the floor and camera frusta.
BONE_PX, STATIC_PX = 3, 1
#: Joint dot diameter in pixels.
JOINT_PX = 7
#: Seconds the child process may take to create open3d's renderer and draw one image.
PROBE_TIMEOUT_S = 120
RENDERERS = ("auto", "open3d", "opencv")

_PROBE = ("import numpy as np\nfrom open3d.visualization import rendering\n"
          "r = rendering.OffscreenRenderer(16, 16)\nimg = np.asarray(r.render_to_image())\n"
          "assert img.shape == (16, 16, 3), img.shape\nprint('open3d renders')\n")


@contextlib.contextmanager
def quiet_native_output():
    """Drop what native code (Filament, Mesa) writes to file descriptors 1 and 2 inside the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


@functools.lru_cache(maxsize=1)
def open3d_problem() -> str | None:
    """None when open3d's offscreen renderer draws an image on this machine, else why not (one
    line, with what to do). Asked in a child process: a missing Vulkan driver aborts the process."""
    if importlib.util.find_spec("open3d") is None:
        return "open3d is not installed (pip install 'mocap[viewer]')"
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"open3d's offscreen renderer did not draw a 16x16 image within {PROBE_TIMEOUT_S} s"
    if done.returncode == 0 and "open3d renders" in done.stdout:
        return None
    said = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(said) if "reason:" in ln or "Error" in ln), said[-1] if said else "no output")
    return (f"open3d's offscreen renderer failed (exit {done.returncode}: {reason[:200]}); without a GPU it needs "
            f"Mesa's Vulkan driver: apt-get install mesa-vulkan-drivers (make sysdeps)")


def choose_renderer(renderer: str) -> str:
    """``auto`` -> ``open3d`` where it renders here, else ``opencv`` (a warning says why);
    ``open3d`` where it does not is a ``ValueError`` saying why."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer: unknown {renderer!r}; choose one of {', '.join(RENDERERS)}")
    if renderer == "opencv":
        return renderer
    problem = open3d_problem()
    if problem is None:
        return "open3d"
    if renderer == "open3d":
        raise ValueError(f"renderer open3d: {problem}; or choose --renderer opencv")
    log.warning("%s; drawing with OpenCV instead", problem)
    return "opencv"


def draw_labels(image: np.ndarray, camera: Camera, labels, scale: float = 0.5) -> np.ndarray:
    """Write each :class:`~mocap.view.scene.Label` at its projection into RGB ``image`` (in place)."""
    for label in labels:
        if (camera.R @ label.position + camera.t)[2] <= 0.05:
            continue
        x, y = np.round(project(camera, label.position, distort=False)).astype(int)
        size, _ = cv2.getTextSize(label.text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        rgb = tuple(int(round(255 * c)) for c in label.colour)
        at = (int(x - size[0] / 2), int(y))
        if np.dot(label.colour, (0.3, 0.59, 0.11)) > 0.6:  # a light colour on white: outline it
            cv2.putText(image, label.text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (90, 90, 90), 3, cv2.LINE_AA)
        cv2.putText(image, label.text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, rgb, 1, cv2.LINE_AA)
    return image


def _pixels(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(..., 2)`` of ``points (..., 3)`` and whether each is in front of the camera."""
    depth = (points @ camera.R.T + camera.t)[..., 2]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        xy = project(camera, points, distort=False)
    w, h = camera.size
    ok = (depth > 0.05) & (np.abs(xy) < 8 * max(w, h)).all(-1)  # sane ints for cv2
    return xy, ok


class OpenCVRenderer:
    """The fallback: segments and dots drawn with OpenCV, farthest first (no depth buffer)."""

    name = "opencv"

    def __init__(self, size: tuple[int, int], static: Segments):
        self.size = size
        self.static = static

    def _lines(self, image, camera, segments: Segments, width: int) -> None:
        xy, ok = _pixels(camera, segments.points)  # (N, 2, 2), (N, 2)
        depth = (segments.points.mean(1) @ camera.R.T + camera.t)[:, 2]
        for n in np.argsort(-depth):
            if ok[n].all():
                a, b = np.round(xy[n]).astype(int)
                colour = tuple(int(round(255 * c)) for c in segments.colours[n])
                cv2.line(image, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, width, cv2.LINE_AA)

    def render(self, camera: Camera, frame: Frame3D) -> np.ndarray:
        w, h = self.size
        image = np.full((h, w, 3), 255, np.uint8)
        self._lines(image, camera, self.static, STATIC_PX)
        self._lines(image, camera, frame.bones, BONE_PX)
        xy, ok = _pixels(camera, frame.joints)
        for (x, y), good, colour in zip(np.round(xy).astype(int) if len(xy) else [], ok, frame.joint_colours):
            if good:
                cv2.circle(image, (int(x), int(y)), JOINT_PX // 2, tuple(int(round(255 * c)) for c in colour), -1,
                           cv2.LINE_AA)
        return draw_labels(image, camera, frame.labels)


def open3d_lines(segments: Segments):
    """An open3d ``LineSet`` of ``segments`` (each its own two vertices, coloured per segment)."""
    import open3d as o3d

    n = len(segments.points)
    lines = o3d.geometry.LineSet(o3d.utility.Vector3dVector(segments.points.reshape(-1, 3)),
                                 o3d.utility.Vector2iVector(np.arange(2 * n).reshape(-1, 2)))
    lines.colors = o3d.utility.Vector3dVector(segments.colours)
    return lines


class Open3DRenderer:
    """open3d's offscreen renderer (Filament), unlit so each performer keeps their exact colour.
    Check :func:`open3d_problem` first: where it cannot render, creating one aborts the process."""

    name = "open3d"

    def __init__(self, size: tuple[int, int], static: Segments):
        import open3d as o3d
        from open3d.visualization import rendering

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
        self.size = size
        with quiet_native_output():
            self._renderer = rendering.OffscreenRenderer(*size)
        scene = self._renderer.scene
        scene.set_background([1.0, 1.0, 1.0, 1.0])
        # linear tone mapping and no post-processing: a colour given is the colour drawn
        scene.view.set_color_grading(rendering.ColorGrading(rendering.ColorGrading.Quality.HIGH,
                                                            rendering.ColorGrading.ToneMapping.LINEAR))
        scene.view.set_post_processing(False)
        self._static_mat, self._bone_mat, self._joint_mat = (rendering.MaterialRecord() for _ in range(3))
        self._static_mat.shader = self._bone_mat.shader = "unlitLine"
        self._static_mat.line_width, self._bone_mat.line_width = float(STATIC_PX), float(BONE_PX)
        self._joint_mat.shader, self._joint_mat.point_size = "defaultUnlit", float(JOINT_PX)
        if len(static.points):
            scene.add_geometry("static", open3d_lines(static), self._static_mat)

    def render(self, camera: Camera, frame: Frame3D) -> np.ndarray:
        import open3d as o3d

        scene = self._renderer.scene
        for name in ("bones", "joints"):
            if scene.has_geometry(name):
                scene.remove_geometry(name)
        if len(frame.bones.points):
            scene.add_geometry("bones", open3d_lines(frame.bones), self._bone_mat)
        if len(frame.joints):
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(frame.joints))
            cloud.colors = o3d.utility.Vector3dVector(frame.joint_colours)
            scene.add_geometry("joints", cloud, self._joint_mat)
        extrinsic = np.eye(4)
        extrinsic[:3, :3], extrinsic[:3, 3] = camera.R, camera.t
        self._renderer.setup_camera(camera.K, extrinsic, *self.size)
        with quiet_native_output():
            image = np.array(self._renderer.render_to_image())
        return draw_labels(image, camera, frame.labels)


def make_renderer(renderer: str, size: tuple[int, int], static: Segments):
    """An :class:`Open3DRenderer` or :class:`OpenCVRenderer` (``renderer`` as :func:`choose_renderer`)."""
    kind = choose_renderer(renderer)
    return Open3DRenderer(size, static) if kind == "open3d" else OpenCVRenderer(size, static)
