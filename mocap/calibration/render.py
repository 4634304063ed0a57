"""Synthetic board images with known cameras and poses (tests and benchmarks).

:func:`render_board_view` ray-casts every pixel of a camera with lens distortion onto the board
plane and samples the printed board texture there (prefiltered to about one pixel's footprint, so
edges are anti-aliased as a sensor integrates them), then adds defocus blur, a lighting gradient
and sensor noise.
:func:`synthetic_studio` builds a ring of cameras and a board moved through the capture volume,
with a first frame where the board lies on the floor at the world origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mocap.calibration.boards import Board, board_image, board_image_origin_squares
from mocap.geometry.camera import Camera, Rig

_SUPERSAMPLE = 1
_TEXTURE_BLUR = 0.03  # texture prefilter (sigma, in squares): one image pixel's footprint at ~30 px per square


@lru_cache(maxsize=16)
def _normalized_grid(K_bytes: bytes, dist_bytes: bytes, w: int, h: int, ss: int) -> np.ndarray:
    """Undistorted normalised coordinates ``(h*ss, w*ss, 2)`` float32 of the sample centres."""
    import cv2

    K = np.frombuffer(K_bytes).reshape(3, 3)
    dist = np.frombuffer(dist_bytes)
    # sample centres of an ss × ss grid inside each pixel (pixel centre at integer coords)
    u = (np.arange(w * ss) + 0.5) / ss - 0.5
    v = (np.arange(h * ss) + 0.5) / ss - 0.5
    # exact undistortion every `step` pixels, bilinear in between (the map is smooth: the
    # interpolation error is ~1e-3 px for real lenses, far below the corner noise)
    step = 4
    uc = np.arange(u[0] - step, u[-1] + 2 * step, step)
    vc = np.arange(v[0] - step, v[-1] + 2 * step, step)
    pts = np.stack(np.meshgrid(uc, vc), -1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-12)
    coarse = cv2.undistortPointsIter(pts, K, dist, None, None, crit).reshape(len(vc), len(uc), 2)
    fu, fv = (u - uc[0]) / step, (v - vc[0]) / step
    iu, iv = np.floor(fu).astype(int), np.floor(fv).astype(int)
    au, av = (fu - iu)[None, :, None], (fv - iv)[:, None, None]
    top = coarse[iv][:, iu] * (1 - au) + coarse[iv][:, iu + 1] * au
    bottom = coarse[iv + 1][:, iu] * (1 - au) + coarse[iv + 1][:, iu + 1] * au
    return (top * (1 - av) + bottom * av).astype(np.float32)


@lru_cache(maxsize=8)
def _texture(board: Board, px_per_square: int) -> np.ndarray:
    """The board face, low-pass filtered so that point sampling it does not alias (a one-level mipmap)."""
    import cv2

    tex = board_image(board, px_per_square=px_per_square, margin_squares=1.0).astype(np.float32)
    return cv2.GaussianBlur(tex, (0, 0), _TEXTURE_BLUR * px_per_square)


def render_board_view(board: Board, camera: Camera, cam_from_board: np.ndarray, rng: np.random.Generator,
                      blur_sigma_px: float = 0.6, noise_std: float = 2.0, light_gradient: float = 0.3,
                      px_per_square: int = 48) -> np.ndarray:
    """Image ``(H, W)`` uint8 of ``board`` seen by ``camera`` at pose ``cam_from_board (4, 4)``.

    The board's far side, and everything off the board, shows a smooth gray background.

    Args:
        blur_sigma_px: Gaussian defocus blur (pixels).
        noise_std: Gaussian sensor noise (gray levels).
        light_gradient: relative brightness change across the image, in a random direction.
    """
    import cv2

    w, h = camera.size
    ss = _SUPERSAMPLE
    xy = _normalized_grid(camera.K.tobytes(), camera.dist.tobytes(), w, h, ss)
    R, t = cam_from_board[:3, :3], cam_from_board[:3, 3]
    tex = _texture(board, px_per_square)
    off = board_image_origin_squares(board)
    # normalised image coords -> texture pixels is one homography: board (X, Y) ~ [r1 r2 t]^-1 (x, y, 1)
    A = np.diag([px_per_square / board.square_size, px_per_square / board.square_size, 1.0])
    A[:2, 2] = off * px_per_square - 0.5
    H = (A @ np.linalg.inv(np.column_stack([R[:, 0], R[:, 1], t]))).astype(np.float32)
    maps = cv2.perspectiveTransform(xy.reshape(-1, 1, 2), H).reshape(xy.shape)
    den = H[2, 0] * xy[..., 0] + H[2, 1] * xy[..., 1] + H[2, 2]
    facing = (R[:, 2] @ t) > 0  # camera on the printed side
    behind = ~(den > 1e-6) if facing else np.ones(den.shape, bool)  # rays that miss the board's face
    if behind.any():
        maps[behind] = -10.0
    img = cv2.remap(tex, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    bg = _background(h * ss, w * ss, rng)
    img = np.where(img < 0, bg, img)
    if ss > 1:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px)
    ang = rng.uniform(0, 2 * np.pi)
    gx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    gy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    gain = 0.85 * (0.85 + rng.uniform(-0.05, 0.05) + light_gradient * (np.cos(ang) * gx + np.sin(ang) * gy))
    img = 20 + img * gain.astype(np.float32) + noise_std * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    small = rng.uniform(70, 170, (max(2, h // 64), max(2, w // 64))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@dataclass(frozen=True, eq=False)
class SyntheticStudio:
    """Ground truth of a synthetic calibration capture.

    Attributes:
        rig: the true cameras (world Z up, metres).
        world_from_board: ``(F, 4, 4)``; frame 0 has the board flat on the floor, origin at world origin.
        visible: ``(C, F)`` whether each camera sees the whole board face.
    """

    rig: Rig
    world_from_board: np.ndarray
    visible: np.ndarray


def _look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam_from_world rotation of a camera at ``center`` looking at ``target``, image y down (world -Z)."""
    z = target - center
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def synthetic_studio(board: Board, n_cameras: int = 6, n_frames: int = 24, rng: np.random.Generator | None = None,
                     size: tuple[int, int] = (1280, 720), radius: float = 2.6, height: float = 2.2) -> SyntheticStudio:
    """A ring of cameras (fx ≈ 0.7–0.86 × width, mild distortion) and a board waved through the volume.

    Frame 0: the board lies on the floor, face up, board origin at the world origin and its x
    along world X. Other frames: the board, 0.6–1.6 m high, turned towards a random camera.
    """
    rng = rng or np.random.default_rng(0)
    w, h = size
    floor = np.diag([1.0, -1.0, -1.0, 1.0])  # world_from_board of the floor board: face (board -z) up
    mid = floor[:3, :3] @ board.object_points.mean(0)  # the ring is centred on the floor board
    cams = []
    for c in range(n_cameras):
        a = 2 * np.pi * c / n_cameras + rng.uniform(-0.15, 0.15)
        center = mid + np.array([radius * np.cos(a), radius * np.sin(a), height + rng.uniform(-0.3, 0.3)])
        R = _look_at(center, mid + np.array([0, 0, 0.6]) + rng.uniform(-0.2, 0.2, 3))
        f = w * rng.uniform(0.70, 0.86)  # about 900-1100 px at 1280 wide
        K = np.array([[f, 0, w / 2 + rng.uniform(-15, 15)], [0, f * rng.uniform(0.998, 1.002), h / 2 + rng.uniform(-15, 15)], [0, 0, 1]])
        dist = np.array([rng.uniform(-0.15, 0.05), rng.uniform(-0.05, 0.1), rng.uniform(-1e-3, 1e-3),
                         rng.uniform(-1e-3, 1e-3), 0.0])
        cams.append(Camera(f"cam{c + 1:02d}", (w, h), K, dist, R, -R @ center))
    rig = Rig(tuple(cams))
    obj = board.object_points
    centre_b = obj.mean(0)
    poses = [floor]
    while len(poses) < n_frames:
        T = _random_board_pose(rig, centre_b, mid, rng)
        if sum(_sees(board, cam, cam.cam_from_world @ T) for cam in rig.cameras) >= 2:
            poses.append(T)
    world_from_board = np.stack(poses)
    visible = np.array([[_sees(board, cam, cam.cam_from_world @ T) for T in world_from_board] for cam in rig.cameras])
    return SyntheticStudio(rig, world_from_board, visible)


def _random_board_pose(rig: Rig, centre_b: np.ndarray, mid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """world_from_board: board centre 0.6–1.6 m high, its face turned towards a random camera."""
    target = rig.centers[rng.integers(len(rig))]
    p = mid + np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(0.6, 1.6)])
    normal_out = target - p  # the printed face looks along -z_board
    normal_out = normal_out / np.linalg.norm(normal_out) + rng.normal(0, 0.35, 3)
    zb = -normal_out / np.linalg.norm(normal_out)
    xb = np.cross([0, 0, 1.0], zb) if rng.uniform() < 0.5 else np.cross(zb, [0, 0, 1.0])
    xb /= np.linalg.norm(xb)
    yb = np.cross(zb, xb)
    R = np.stack([xb, yb, zb], 1)
    roll = rng.uniform(-0.5, 0.5)
    Rz = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    R = R @ Rz
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = p - R @ centre_b
    return T


def _sees(board: Board, cam: Camera, cam_from_board: np.ndarray, margin: float = 20) -> bool:
    from mocap.geometry.camera import distort_normalized

    R, t = cam_from_board[:3, :3], cam_from_board[:3, 3]
    if R[:, 2] @ t <= 0:
        return False
    if R[:, 2] @ t / np.linalg.norm(t) < np.cos(np.radians(72)):  # face seen more than 72° off its normal
        return False
    X = board.object_points @ R.T + t
    if np.any(X[:, 2] <= 0.1):
        return False
    xy = distort_normalized(X[:, :2] / X[:, 2:], cam.dist)
    u = cam.K[0, 0] * xy[:, 0] + cam.K[0, 2]
    v = cam.K[1, 1] * xy[:, 1] + cam.K[1, 2]
    w, h = cam.size
    return bool(np.all((u > margin) & (u < w - margin) & (v > margin) & (v < h - margin)))


def project_studio(board: Board, studio: SyntheticStudio, rng: np.random.Generator, noise_px: float = 0.1) -> dict:
    """Detections as a perfect detector with Gaussian pixel noise would report them, no images.

    Returns ``{camera name: Detections}`` with ``xy (F, N, 2)``, NaN where the camera does not
    see the whole board face (:attr:`SyntheticStudio.visible`).
    """
    from mocap.calibration.detect_corners import Detections
    from mocap.geometry.camera import project

    out = {}
    for c, cam in enumerate(studio.rig.cameras):
        pts = np.einsum("fij,nj->fni", studio.world_from_board[:, :3, :3], board.object_points)
        pts = pts + studio.world_from_board[:, None, :3, 3]
        xy = project(cam, pts) + rng.normal(0, noise_px, pts.shape[:-1] + (2,))
        xy[~studio.visible[c]] = np.nan
        out[cam.name] = Detections(cam.name, xy, np.arange(len(xy)), cam.size, "synthetic")
    return out
