"""What the 3D pictures show, independent of the renderer: cameras as frusta, the floor, each
performer's skeleton in their colour, the capture volume, and the virtual camera that looks at it.

Everything is line segments and points in world coordinates (metres, Z up), so the open3d
renderer, the OpenCV fallback and the report's rig plot draw the same thing. Colours are RGB in
[0, 1]; a performer's colour is :func:`mocap.view.overlay.person_colour` (the overlay videos' one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.geometry import Camera, Rig, project
from mocap.io.tracks import Tracks
from mocap.synthetic.rig import look_at
from mocap.view.overlay import EDGES, person_colour

#: Depth (metres) at which a camera's frustum is cut: long enough to show where it points, short
#: enough not to cross the volume on a 3-5 m studio ring.
FRUSTUM_DEPTH_M = 0.6
#: Heights (metres) a floor cell must be seen at, by at least ``MIN_VIEWS`` cameras, to count as
#: inside the capture volume: ankles, hips and head of a standing adult.
VOLUME_HEIGHTS_M = (0.1, 0.9, 1.7)
#: Views needed to triangulate a point.
MIN_VIEWS = 2
FLOOR_RGB = (0.82, 0.82, 0.82)
CAMERA_RGB = (0.25, 0.25, 0.3)


@dataclass(frozen=True)
class Segments:
    """Line segments ``points (N, 2, 3)`` world metres, ``colours (N, 3)`` RGB in [0, 1]."""

    points: np.ndarray
    colours: np.ndarray

    @staticmethod
    def concat(parts) -> "Segments":
        parts = [p for p in parts if len(p.points)]
        if not parts:
            return Segments(np.zeros((0, 2, 3)), np.zeros((0, 3)))
        return Segments(np.concatenate([p.points for p in parts]), np.concatenate([p.colours for p in parts]))


@dataclass(frozen=True)
class Label:
    """Text ``text`` at ``position (3,)`` world metres, in ``colour`` RGB [0, 1]."""

    text: str
    position: np.ndarray
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class Frame3D:
    """One instant: performers' ``bones`` and ``joints (M, 3)`` with ``joint_colours (M, 3)``,
    and ``labels`` (their IDs)."""

    bones: Segments
    joints: np.ndarray
    joint_colours: np.ndarray
    labels: tuple[Label, ...]


def person_rgb(track_id: int) -> tuple[float, float, float]:
    """A performer's colour as RGB in [0, 1] (the overlay's BGR colour)."""
    b, g, r = person_colour(track_id)
    return (r / 255.0, g / 255.0, b / 255.0)


def camera_frustum(camera: Camera, depth: float = FRUSTUM_DEPTH_M) -> np.ndarray:
    """Segments ``(8, 2, 3)`` of a camera's frustum: centre to the four image corners at ``depth``
    metres along the optical axis, and the image rectangle there (pinhole, lens ignored)."""
    w, h = camera.size
    corners_px = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    corners_cam = depth * (corners_px @ np.linalg.inv(camera.K).T)  # z = depth
    corners = (corners_cam - camera.t) @ camera.R  # R^T (x - t), row-vector form
    centre = np.broadcast_to(camera.center, (4, 3))
    ring = np.stack([corners, np.roll(corners, -1, axis=0)], axis=1)
    return np.concatenate([np.stack([centre, corners], axis=1), ring])


def rig_segments(rig: Rig, depth: float = FRUSTUM_DEPTH_M) -> Segments:
    """Every camera's frustum."""
    pts = np.concatenate([camera_frustum(c, depth) for c in rig.cameras])
    return Segments(pts, np.tile(CAMERA_RGB, (len(pts), 1)))


def floor_grid(centre: np.ndarray, half_size: float, step: float = 1.0) -> Segments:
    """Floor lines (Z = 0) every ``step`` metres over a square of ``half_size`` around ``centre``."""
    lo = np.floor((centre[:2] - half_size) / step) * step
    hi = np.ceil((centre[:2] + half_size) / step) * step
    xs, ys = np.arange(lo[0], hi[0] + step / 2, step), np.arange(lo[1], hi[1] + step / 2, step)
    along_y = [[[x, lo[1], 0.0], [x, hi[1], 0.0]] for x in xs]
    along_x = [[[lo[0], y, 0.0], [hi[0], y, 0.0]] for y in ys]
    pts = np.array(along_y + along_x, dtype=np.float64)
    return Segments(pts, np.tile(FLOOR_RGB, (len(pts), 1)))


def skeleton_edges(joint_names) -> np.ndarray:
    """``(E, 2)`` joint index pairs of :data:`mocap.view.overlay.EDGES` present in ``joint_names``."""
    names = list(joint_names)
    return np.array([(names.index(a), names.index(b)) for a, b in EDGES if a in names and b in names],
                    dtype=np.int64).reshape(-1, 2)


def people_at(tracks: Tracks, t: int, edges: np.ndarray) -> Frame3D:
    """Row ``t`` of ``tracks``: every present performer's bones, joints and ID label."""
    pos = tracks.positions[t]  # (P, J, 3)
    ok = np.isfinite(pos).all(-1)  # (P, J)
    colours = np.array([person_rgb(i) for i in tracks.track_ids]).reshape(-1, 3)  # (P, 3)
    both = ok[:, edges[:, 0]] & ok[:, edges[:, 1]]  # (P, E)
    p_idx, e_idx = np.nonzero(both)
    bones = Segments(np.stack([pos[p_idx, edges[e_idx, 0]], pos[p_idx, edges[e_idx, 1]]], axis=1), colours[p_idx])
    jp, jj = np.nonzero(ok)
    labels = []
    for p in np.flatnonzero(ok.any(-1)):
        top = pos[p][ok[p]][np.argmax(pos[p][ok[p], 2])]
        labels.append(Label(f"person_{tracks.track_ids[p]}", top + np.array([0.0, 0.0, 0.25]), tuple(colours[p])))
    return Frame3D(bones, pos[jp, jj], colours[jp], tuple(labels))


def scene_centre(tracks: Tracks, rig: Rig) -> np.ndarray:
    """Where the pictures look: the performers' median position (on the floor at hip height),
    else the point the cameras' optical axes pass closest to."""
    finite = tracks.positions[np.isfinite(tracks.positions).all(-1)]
    if len(finite):
        centre = np.median(finite, axis=0)
        return np.array([centre[0], centre[1], 0.9])
    # least-squares point nearest every optical axis: sum (I - d d^T)(x - c) = 0
    dirs = rig.R[:, 2, :]  # (C, 3) each camera's z axis in world coordinates
    A = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    return np.linalg.lstsq(A.sum(0), np.einsum("cij,cj->i", A, rig.centers), rcond=None)[0]


def orbit_camera(target: np.ndarray, distance: float, azimuth: float, elevation: float,
                 size: tuple[int, int], fov_deg: float = 50.0) -> Camera:
    """A pinhole ``Camera`` ``distance`` metres from ``target (3,)``, at ``azimuth`` (radians about
    +Z from +X) and ``elevation`` (radians above the horizon), looking at it with +Z up."""
    w, h = size
    f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
    eye = np.asarray(target, dtype=np.float64) + distance * np.array(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    R = look_at(eye, target)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return Camera("view", (w, h), K, np.zeros(5), R, -R @ eye)


def framing_distance(points: np.ndarray, target: np.ndarray, fov_deg: float, aspect: float) -> float:
    """Distance from ``target`` at which a sphere holding ``points (N, 3)`` fits the narrower
    field of view of a camera with horizontal ``fov_deg`` and ``aspect`` (width / height)."""
    radius = float(np.max(np.linalg.norm(points - target, axis=-1))) if len(points) else 2.0
    half_h = np.arctan(np.tan(np.radians(fov_deg) / 2) / aspect)
    return max(radius, 0.5) / np.sin(min(np.radians(fov_deg) / 2, half_h))


@dataclass(frozen=True)
class CaptureVolume:
    """Floor cells seen well enough to triangulate: ``x (X,)``, ``y (Y,)`` cell centres (metres)
    and ``views (Y, X)`` the fewest cameras that see the cell at any of :data:`VOLUME_HEIGHTS_M`."""

    x: np.ndarray
    y: np.ndarray
    views: np.ndarray

    @property
    def area_m2(self) -> float:
        """Floor area inside the volume (``views >= MIN_VIEWS``)."""
        cell = (self.x[1] - self.x[0]) * (self.y[1] - self.y[0]) if len(self.x) > 1 and len(self.y) > 1 else 0.0
        return float((self.views >= MIN_VIEWS).sum() * cell)


def capture_volume(rig: Rig, step: float = 0.1, margin: float = 0.5) -> CaptureVolume:
    """The floor area inside the rig's capture volume (a grid over the cameras' footprint)."""
    lo, hi = rig.centers[:, :2].min(0) - margin, rig.centers[:, :2].max(0) + margin
    x, y = np.arange(lo[0], hi[0], step) + step / 2, np.arange(lo[1], hi[1], step) + step / 2
    gx, gy = np.meshgrid(x, y)  # (Y, X)
    heights = np.asarray(VOLUME_HEIGHTS_M)
    pts = np.stack([np.broadcast_to(gx[..., None], gx.shape + heights.shape),
                    np.broadcast_to(gy[..., None], gy.shape + heights.shape),
                    np.broadcast_to(heights, gx.shape + heights.shape)], axis=-1)  # (Y, X, H, 3)
    seen = np.zeros(gx.shape + heights.shape, dtype=np.int64)
    for cam in rig.cameras:
        depth = (pts @ cam.R.T + cam.t)[..., 2]
        with np.errstate(invalid="ignore", over="ignore"):
            xy = project(cam, pts, distort=False)
            inside = (depth > 0.1) & (xy[..., 0] >= 0) & (xy[..., 0] < cam.size[0]) & (xy[..., 1] >= 0) \
                & (xy[..., 1] < cam.size[1])
        seen += inside
    return CaptureVolume(x, y, seen.min(-1))
