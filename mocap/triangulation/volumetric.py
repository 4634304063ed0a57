"""Volumetric triangulation (Iskakov et al., ICCV 2019), on top of robust triangulation.

The detections are first relabelled left/right as robust mode would
(:func:`~mocap.triangulation.features.learned_inputs`). Per person-frame a cube of :data:`CUBE_M`
metres (``D``³ voxels, :data:`RESOLUTION`) is centred on the robust pelvis (mid-hips). Each
view's 2D joints are rendered into heatmaps (a Gaussian of the view's confidence around each
joint, in a square crop around the person: keypoint-only inputs are what reaches the
triangulation) and unprojected into the cube with ``grid_sample`` at the
pixels where our camera model (lens distortion included) projects the voxel centres. The views
are aggregated per joint weighted by their confidence; a compact V2V-style 3D network
(:class:`VolumetricNet`) turns the volume into per-joint logits, and a 3D soft-argmax gives the
points (trained on the synthetic studio: :mod:`mocap.train.volumetric`). Coarse to fine: two
deterministic stages (:func:`refine_points`, cubes of :data:`FINE_M` around each joint, no
network) sharpen the points the coarse cube (15.6 cm voxels) gives.

Fallback to the robust points, per person-frame, counted by reason and logged: no robust pelvis
(no cube), fewer than two cameras seeing the person, non-finite inputs (a used view with NaN
coordinates, a non-finite volume), a robust joint outside the cube (person partly outside); per
joint: a non-finite result or one farther than :data:`MAX_SHIFT_M` from the robust point. Where
robust left a point NaN it stays NaN. So the volumetric mode is never NaN where robust had a point.

torch is imported by this module: import it lazily (``mocap.triangulation.people`` does).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mocap.errors import ModelError
from mocap.geometry import Rig
from mocap.geometry.camera import project_rig
from mocap.triangulation.dlt import Triangulation
from mocap.triangulation.features import learned_inputs
from mocap.triangulation.learned import one_torch_thread

log = logging.getLogger(__name__)

#: The weights shipped inside the package (``mocap train volumetric`` made them; README has the command).
SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "volumetric.pt"
#: Side of the cube around the pelvis, metres.
CUBE_M = 2.5
#: Voxels per side of the cube (CPU-sized).
RESOLUTION = 16
#: Side of the square heatmap each view's joints are rendered into.
HEATMAP_PX = 32
#: Heatmap Gaussian sigma, in voxels as seen from the view at the cube centre.
SIGMA_VOXELS = 1.0
#: Fine stages: sides (metres) of the cubes around each joint's previous point, in turn.
FINE_M = (0.3, 0.1)
#: Fine stages: voxels per side.
FINE_RESOLUTION = 8
#: Fine stage: heatmap sigma in fine voxels, and the soft-argmax gain on the aggregated heatmap (0-1).
FINE_SIGMA_VOXELS = 1.5
FINE_GAIN = 40.0
#: A volumetric point farther than this from the robust point is a failure: the robust one is kept.
MAX_SHIFT_M = 0.5
#: Person-frames processed at a time (bounds the memory of the heatmaps).
CHUNK = 32
#: Format version of the weights file.
WEIGHTS_VERSION = 1


class VolumetricNet(torch.nn.Module):
    """Compact V2V-style 3D network: per-joint volumes ``(B, J, D, D, D)`` -> logits of the same shape.

    An encoder (two 3x3x3 convolutions), one 2x down/up-sampling level with a skip connection,
    and a 1x1x1 head; the input volume, scaled by a learned factor, is added to the logits (the
    network starts from the soft-argmax of the aggregated heatmaps and learns corrections)."""

    def __init__(self, joints: int = 25, width: int = 16):
        super().__init__()

        def block(a, b):
            return torch.nn.Sequential(torch.nn.Conv3d(a, b, 3, padding=1), torch.nn.GroupNorm(4, b), torch.nn.ReLU())

        self.joints, self.width = joints, width
        self.enc = torch.nn.Sequential(block(joints, width), block(width, width))
        self.down = torch.nn.Sequential(torch.nn.MaxPool3d(2), block(width, 2 * width), block(2 * width, 2 * width))
        self.up = torch.nn.ConvTranspose3d(2 * width, width, 2, stride=2)
        self.dec = block(width, width)
        self.head = torch.nn.Conv3d(width, joints, 1)
        self.input_gain = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        e = self.enc(volumes)
        d = self.dec(e + self.up(self.down(e)))
        return self.head(d) + self.input_gain * volumes


def soft_argmax(logits: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``logits (B, J, D, D, D)``, voxel centres ``coords (D³, 3)`` -> expected points ``(B, J, 3)``."""
    p = torch.softmax(logits.flatten(2), dim=-1)
    return p @ coords.to(p.dtype)


def cube_coords(resolution: int = RESOLUTION, side: float = CUBE_M) -> np.ndarray:
    """Voxel centres ``(D³, 3)`` relative to the cube centre, metres (x fastest last: ``[i, j, k]``)."""
    t = (np.arange(resolution) + 0.5) / resolution * side - side / 2
    g = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1)
    return g.reshape(-1, 3)


def pelvis(points: np.ndarray, joint_names) -> np.ndarray:
    """``(..., 3)`` mid-hips of ``points (..., J, 3)`` (NaN where a hip is missing)."""
    names = list(joint_names)
    return 0.5 * (points[..., names.index("left_hip"), :] + points[..., names.index("right_hip"), :])


@dataclass(frozen=True)
class VolumeInputs:
    """Aggregated volumes of ``N`` person-frames and what decides the fallbacks.

    Attributes:
        volumes: ``(N, J, D, D, D)`` float32 tensor (0 where no view saw a joint).
        centers: ``(N, 3)`` cube centres (world, metres); NaN where no cube.
        views: ``(N,)`` cameras with at least one usable joint.
        finite: ``(N,)`` inputs and volume finite.
    """

    volumes: torch.Tensor
    centers: np.ndarray
    views: np.ndarray
    finite: np.ndarray


def render_heatmaps(xy: np.ndarray, w: np.ndarray, sigma: np.ndarray, size: int = HEATMAP_PX):
    """Heatmaps of joints ``xy (M, J, 2)`` px with weights ``w (M, J)`` (0 = unused) and sigma
    ``(M,)`` px in a square crop around each row's used joints -> ``(heatmaps (M, J, S, S),
    crop origin (M, 2), crop side (M,))``."""
    used = (w > 0) & np.isfinite(xy).all(-1)
    lo = np.where(used[..., None], xy, np.inf).min(1)
    hi = np.where(used[..., None], xy, -np.inf).max(1)
    ok = used.any(1)
    with np.errstate(invalid="ignore"):
        mid = np.where(ok[:, None], (lo + hi) / 2, 0.0)
        side = np.where(ok, np.max(np.where(ok[:, None], hi - lo, 0.0), axis=-1) + 6 * sigma, 1.0)
    origin = mid - side[:, None] / 2
    cell = side / size
    grid = (np.arange(size) + 0.5)
    u = (np.nan_to_num(xy) - origin[:, None]) / cell[:, None, None]  # (M, J, 2) heatmap cells
    s = (sigma / cell)[:, None]
    gx = np.exp(-0.5 * ((grid[None, None] - u[..., 0:1]) / s[..., None]) ** 2)  # (M, J, S)
    gy = np.exp(-0.5 * ((grid[None, None] - u[..., 1:2]) / s[..., None]) ** 2)
    hm = gy[..., :, None] * gx[..., None, :] * used[..., None, None]
    return hm.astype(np.float32), origin, side


def view_sigma(rig: Rig, centers: np.ndarray, voxel_m: float) -> np.ndarray:
    """Heatmap sigma px ``(N, C)``: :data:`SIGMA_VOXELS` voxels at the cube centre, seen from each view."""
    out = np.empty((len(centers), len(rig)))
    for c, cam in enumerate(rig.cameras):
        depth = (np.nan_to_num(centers) @ cam.R.T + cam.t)[:, 2]
        out[:, c] = SIGMA_VOXELS * voxel_m * cam.K[0, 0] / np.maximum(depth, 0.1)
    return out


def volume_inputs(rig: Rig, person: np.ndarray, centers: np.ndarray, min_confidence: float,
                  resolution: int = RESOLUTION) -> VolumeInputs:
    """Unproject the rendered heatmaps of ``person (N, C, J, 3)`` into cubes around ``centers (N, 3)``."""
    N, C, J, _ = person.shape
    coords = cube_coords(resolution)
    conf = np.nan_to_num(person[..., 2])
    w = np.where(conf >= min_confidence, conf, 0.0)  # (N, C, J)
    bad = ((w > 0) & ~np.isfinite(person[..., :2]).all(-1)).any((1, 2))
    w = np.where(np.isfinite(person[..., :2]).all(-1), w, 0.0)
    sigma = view_sigma(rig, centers, CUBE_M / resolution)
    hm, origin, side = render_heatmaps(person[..., :2].reshape(N * C, J, 2), w.reshape(N * C, J), sigma.reshape(-1))
    pts = np.nan_to_num(centers)[:, None] + coords[None]  # (N, V, 3)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        px = project_rig(rig, pts)  # (N, V, C, 2)
    px = np.moveaxis(px, 2, 1).reshape(N * C, -1, 2)
    g = 2 * (px - origin[:, None]) / side[:, None, None] - 1  # grid_sample's [-1, 1] (align_corners=False)
    g = np.where(np.isfinite(g), np.clip(g, -2, 2), 2.0)  # off the crop: zero padding
    s = F.grid_sample(torch.from_numpy(hm), torch.from_numpy(g[:, None].astype(np.float32)),
                      mode="bilinear", padding_mode="zeros", align_corners=False)  # (N*C, J, 1, V)
    s = s.reshape(N, C, J, -1)
    wt = torch.from_numpy(w.astype(np.float32))[..., None]
    vol = (s * wt).sum(1) / wt.sum(1).clamp_min(1e-6)
    vol = vol.reshape(N, J, resolution, resolution, resolution)
    finite = ~bad & torch.isfinite(vol).flatten(1).all(-1).numpy() & np.isfinite(centers).all(-1)
    return VolumeInputs(torch.nan_to_num(vol), centers, (w > 0).any(-1).sum(-1), finite)


def predict(model: VolumetricNet, inputs: VolumeInputs) -> np.ndarray:
    """World points ``(N, J, 3)`` of the volumes (NaN where the cube centre is NaN)."""
    D = inputs.volumes.shape[-1]
    coords = torch.from_numpy(cube_coords(D).astype(np.float32))
    with torch.no_grad(), one_torch_thread():
        rel = soft_argmax(model(inputs.volumes), coords).numpy().astype(np.float64)
    return inputs.centers[:, None] + rel


def refine_points(rig: Rig, person: np.ndarray, coarse: np.ndarray, min_confidence: float,
                  side: float = FINE_M[0]) -> np.ndarray:
    """Fine stage: per joint a ``side`` (metres) cube of :data:`FINE_RESOLUTION`³ voxels around its
    coarse point ``coarse (N, J, 3)``; each view's heatmap of that joint (the same Gaussian of its
    confidence as the coarse stage, :data:`FINE_SIGMA_VOXELS` fine voxels wide, evaluated exactly
    at the projected voxel centres) aggregated weighted by confidence; soft-argmax with gain
    :data:`FINE_GAIN` -> ``(N, J, 3)``."""
    N, C, J, _ = person.shape
    offs = cube_coords(FINE_RESOLUTION, side)  # (V, 3)
    pts = np.nan_to_num(coarse)[:, :, None] + offs  # (N, J, V, 3)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        px = project_rig(rig, pts)  # (N, J, V, C, 2)
    conf = np.nan_to_num(person[..., 2])
    w = np.where((conf >= min_confidence) & np.isfinite(person[..., :2]).all(-1), conf, 0.0)  # (N, C, J)
    sigma = view_sigma(rig, np.nanmean(coarse, axis=1), side / FINE_RESOLUTION) * FINE_SIGMA_VOXELS  # (N, C)
    xy = np.moveaxis(np.nan_to_num(person[..., :2]), 1, 2)[:, :, None]  # (N, J, 1, C, 2)
    d2 = ((px - xy) ** 2).sum(-1) / (sigma[:, None, None] ** 2)  # (N, J, V, C)
    wj = np.moveaxis(w, 1, 2)[:, :, None]  # (N, J, 1, C)
    with np.errstate(invalid="ignore"):
        vol = (np.nan_to_num(np.exp(-0.5 * d2)) * wj).sum(-1) / np.maximum(wj.sum(-1), 1e-9)  # (N, J, V)
    logit = FINE_GAIN * vol
    p = np.exp(logit - logit.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return coarse + p @ offs


def save_weights(model: VolumetricNet, path, meta: dict) -> None:
    """Write the weights and what made them (``meta``: plain values) to ``path`` (torch.save)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"version": WEIGHTS_VERSION, "joints": model.joints, "width": model.width, "resolution": RESOLUTION,
                "cube_m": CUBE_M, "state_dict": state, "meta": meta}, path)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> VolumetricNet:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a readable weights file ({type(exc).__name__}); "
                         f"make one with 'mocap train volumetric --out FILE'") from None
    if (not isinstance(blob, dict) or blob.get("version") != WEIGHTS_VERSION or blob.get("resolution") != RESOLUTION
            or blob.get("cube_m") != CUBE_M):
        raise ModelError(f"{path}: volumetric weights of another format or cube; "
                         f"train again with 'mocap train volumetric --out FILE'")
    model = VolumetricNet(int(blob["joints"]), int(blob["width"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_weights(path=None) -> VolumetricNet:
    """The network from ``path`` (None or "": the shipped weights), loaded with ``weights_only=True``."""
    p = Path(path) if path else SHIPPED_WEIGHTS
    if not p.is_file():
        raise ModelError(f"{p}: weights file not found; make one with 'mocap train volumetric --out {p.name}' "
                         f"or set triangulate.volumetric_weights")
    return _load(str(p.resolve()), p.stat().st_mtime)


def frame_checks(inputs: VolumeInputs, robust: np.ndarray, n_cameras: int) -> dict:
    """Per person-frame fallback reasons (bool ``(N,)`` each, in order of precedence)."""
    half = CUBE_M / 2 - CUBE_M / RESOLUTION / 2
    with np.errstate(invalid="ignore"):
        outside = np.any(np.abs(robust - inputs.centers[:, None]) > half, axis=(1, 2))
    reasons = {"no robust pelvis": ~np.isfinite(inputs.centers).all(-1)}
    reasons["fewer than 2 cameras"] = ~reasons["no robust pelvis"] & ((inputs.views < 2) | (n_cameras < 2))
    reasons["NaN inputs"] = ~reasons["no robust pelvis"] & ~reasons["fewer than 2 cameras"] & ~inputs.finite
    taken = reasons["no robust pelvis"] | reasons["fewer than 2 cameras"] | reasons["NaN inputs"]
    reasons["partly outside the cube"] = ~taken & outside
    return reasons


def triangulate_volumetric(rig: Rig, person: np.ndarray, robust: Triangulation, joint_names, config) -> Triangulation:
    """Volumetric triangulation of people given per view, around their robust triangulation.

    Args:
        rig: the calibration (``C`` cameras).
        person: ``(..., C, J, 3)`` x px, y px, confidence; NaN where not seen.
        robust: their :func:`~mocap.triangulation.triangulate_robust` result over ``(..., J)``.
        joint_names: ``(J,)`` names (the pelvis is the mid-hips).
        config: the :class:`~mocap.triangulation.people.TriangulateConfig` (``min_confidence``,
            ``volumetric_weights``: a weights file, "" for the shipped ones).

    Returns:
        :class:`Triangulation` over ``(..., J)``: volumetric points where they pass the checks,
        the robust ones elsewhere; ``inliers``/``views_used`` are robust's;
        ``reproj_error_px`` against the given detections.
    """
    model = load_weights(config.volumetric_weights)
    lead, C = robust.points.shape[:-2], len(rig)
    J = robust.points.shape[-2]
    relabelled, _ = learned_inputs(rig, person, robust.points, joint_names, config, temporal=False)
    flat = relabelled.reshape((-1, C, J, 3))
    X0 = robust.points.reshape(-1, J, 3)
    X = np.full_like(X0, np.nan)
    counts: dict = {}
    for s in range(0, len(flat), CHUNK):
        sl = slice(s, s + CHUNK)
        inputs = volume_inputs(rig, flat[sl], pelvis(X0[sl], joint_names), config.min_confidence)
        reasons = frame_checks(inputs, X0[sl], C)
        use = ~np.any(list(reasons.values()), axis=0)
        for k, v in reasons.items():
            counts[k] = counts.get(k, 0) + int(v.sum())
        if use.any():
            sub = VolumeInputs(inputs.volumes[use], inputs.centers[use], inputs.views[use], inputs.finite[use])
            Xu = predict(model, sub)
            for side in FINE_M:
                Xu = refine_points(rig, flat[sl][use], Xu, config.min_confidence, side)
            X[sl][use] = Xu
    had = np.isfinite(X0).all(-1)
    with np.errstate(invalid="ignore"):
        good = had & np.isfinite(X).all(-1) & (np.linalg.norm(X - X0, axis=-1) <= MAX_SHIFT_M)
    frames_back = sum(counts.values())
    (log.info if frames_back or (had & ~good).any() else log.debug)(
        "volumetric triangulation: %d of %d robust points refined; kept robust for %d person-frames (%s) "
        "and %d more points (non-finite or > %.1f m from robust)", good.sum(), had.sum(), frames_back,
        ", ".join(f"{k}: {v}" for k, v in counts.items()), int((had & ~good & np.isfinite(X).all(-1)).sum()), MAX_SHIFT_M)
    points = np.where(good[..., None], X, X0)
    xy = np.moveaxis(flat[..., :2], 1, 2)  # (N, J, C, 2)
    with np.errstate(invalid="ignore"):
        reproj = np.linalg.norm(project_rig(rig, points) - xy, axis=-1)
    return Triangulation(points.reshape(lead + (J, 3)), robust.views_used, reproj.reshape(lead + (J, C)),
                         robust.inliers, None)
