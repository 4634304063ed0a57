"""Volumetric triangulation (Iskakov et al., ICCV 2019) as a learned per-joint refinement.

Robust triangulation first, then the learned algebraic one (:mod:`mocap.triangulation.learned`,
its shipped weights and its fallbacks; with ``temporal`` its neighbouring-frame evidence): each
joint's algebraic point is the centre of a fine cube of :data:`FINE_M` metres
(:data:`RESOLUTION`³ voxels, 3 cm). Each view's 2D joint (relabelled left/right as robust mode
would) is rendered as a Gaussian heatmap and read at the pixels the voxel centres project to
(the projection linearised at the cube centre, lens distortion included: exact to a fraction of a
pixel near the centre); the views are aggregated weighted by the algebraic network's softmax
weights (the evidence of :mod:`mocap.triangulation.features`: confidence, agreement with the
other views, ray geometry, neighbouring frames). A compact V2V-style 3D network shared by all
joints (:class:`VolumetricNet`) turns the channels (two heatmap widths, the unweighted agreement
of the views, their weighted log-likelihood, the distance to the centre, Gaussians around the
point the neighbouring frames predict and the robust point) into logits, and a 3D soft-argmax
gives the point (trained on the synthetic studio: :mod:`mocap.train.volumetric`).

Why not a person cube: a 2.5 m cube at a CPU resolution has 16 cm voxels, and its soft-argmax
stayed above the robust error (1.06x robust on 4 cameras, 1.27x on 8 under heavy occlusion):
the rendered heatmaps carry no more than the keypoints, so the cube only helps where it is fine
and where the views are weighted by what says which to trust.

Fallback to the robust points, per person-frame, counted by reason and logged: no robust point,
fewer than two cameras seeing the person, non-finite inputs (a used view with NaN coordinates), a
joint of the algebraic stage outside the :data:`CUBE_M` cube around the person's median point
(person partly outside; its points fall back to robust's, so a robust joint it kept counts);
per joint: where the algebraic stage fell back (its own checks) the cube is centred on the robust
point; a non-finite result, or one more than :data:`MAX_MOVE_M` from the centre (at the cube's
faces: the evidence lies outside the cube), keeps the algebraic point. Where robust left a point NaN it stays NaN. So the
volumetric mode is never NaN where robust had a point.
The learned mode's guard (``triangulate.learned_guard``) applies to the algebraic centres and
again to the refined points (margin :data:`GUARD_MARGIN`): a refined point consistently farther
than robust's from one of robust's inlier views keeps robust's point.

torch is imported by this module: import it lazily (``mocap.triangulation.people`` does).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mocap.errors import ModelError
from mocap.geometry import Rig
from mocap.geometry.camera import project_rig
from mocap.triangulation.dlt import Triangulation
from mocap.triangulation.features import learned_inputs, person_evidence
from mocap.triangulation.learned import (camera_bias_matrix, chunked_points, guard_applies,
                                         load_weights as load_algebraic, log_guard, one_torch_thread,
                                         read_weights_blob, robust_guard, triangulate_learned, weights_file)

log = logging.getLogger(__name__)

#: The weights shipped inside the package (``mocap train volumetric`` made them; README has the command).
SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "volumetric.pt"
#: Side (metres) of the person cube around its median point: a first point outside it -> fallback.
CUBE_M = 2.5
#: Side (metres) of each joint's fine cube around its algebraic point.
FINE_M = 0.24
#: Voxels per side of the fine cube (3 cm voxels).
RESOLUTION = 8
#: Heatmap Gaussian sigmas, in voxels as seen from each view at the cube centre (one channel each).
SIGMA_VOXELS = (1.0, 2.5)
#: Step (metres) of the central differences that linearise the projection at the cube centre.
JACOBIAN_STEP_M = 0.01
#: A refined point farther than this from its cube centre (near the cube's faces: the evidence lies
#: outside the cube, which the fine stage cannot resolve) keeps the algebraic point.
MAX_MOVE_M = 0.1
#: Points refined at a time (bounds the memory of the volumes).
CHUNK_POINTS = 1024
#: Format version of the weights file.
WEIGHTS_VERSION = 2
#: The guard's margin for the refined points (:func:`~mocap.triangulation.learned.robust_guard`; the
#: algebraic stage uses :data:`~mocap.triangulation.learned.GUARD_MARGIN`): chosen on held-out synthetic
#: captures and the balancing take (0.002 failed its cam_04 by 0.01 px, 0.001 cost 0.85x robust on 4 cameras).
GUARD_MARGIN = 0.003
#: Input channels of the network: the heatmaps of each sigma, the agreement, the weighted log-likelihood,
#: the distance to the centre, Gaussians around the anchors (:class:`JointViews`).
CHANNELS = len(SIGMA_VOXELS) + 5
#: Width (voxels) of the Gaussians around the anchor points (neighbouring frames' prediction, robust point).
ANCHOR_VOXELS = 2.0
#: The log-likelihood channel is clipped at this (in units of 10, voxels² / 2).
LOGLIK_FLOOR = -5.0


class VolumetricNet(torch.nn.Module):
    """Compact V2V-style 3D network shared by all joints: ``(B, CHANNELS, D, D, D)`` -> logits ``(B, D, D, D)``.

    An encoder (two 3x3x3 convolutions), one 2x down/up-sampling level with a skip connection,
    and a 1x1x1 head; the input channels, scaled by learned factors, are added to the logits (the
    network starts from the soft-argmax of the finer weighted heatmap plus the weighted
    log-likelihood, whose peak is the weighted least-squares point, and learns corrections)."""

    def __init__(self, width: int = 8, channels: int = CHANNELS):
        super().__init__()

        def block(a, b):
            return torch.nn.Sequential(torch.nn.Conv3d(a, b, 3, padding=1), torch.nn.GroupNorm(4, b), torch.nn.ReLU())

        self.width, self.channels = width, channels
        self.enc = torch.nn.Sequential(block(channels, width), block(width, width))
        self.down = torch.nn.Sequential(torch.nn.MaxPool3d(2), block(width, 2 * width), block(2 * width, 2 * width))
        self.up = torch.nn.ConvTranspose3d(2 * width, width, 2, stride=2)
        self.dec = block(width, width)
        self.head = torch.nn.Conv3d(width, 1, 1)
        gain = torch.zeros(channels)
        gain[0], gain[len(SIGMA_VOXELS) + 1] = 5.0, 10.0
        self.input_gain = torch.nn.Parameter(gain)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        e = self.enc(volumes)
        d = self.dec(e + self.up(self.down(e)))
        return self.head(d)[:, 0] + torch.einsum("c,bcijk->bijk", self.input_gain, volumes)


def soft_argmax(logits: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``logits (B, D, D, D)``, voxel centres ``coords (D³, 3)`` -> expected points ``(B, 3)``."""
    p = torch.softmax(logits.flatten(1), dim=-1)
    return p @ coords.to(p.dtype)


def cube_coords(resolution: int = RESOLUTION, side: float = FINE_M) -> np.ndarray:
    """Voxel centres ``(D³, 3)`` relative to the cube centre, metres (``[i, j, k]`` order, k fastest)."""
    t = (np.arange(resolution) + 0.5) / resolution * side - side / 2
    g = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1)
    return g.reshape(-1, 3)


@dataclass(frozen=True)
class JointViews:
    """What the fine cubes of ``N`` points are built from (numpy, ``C`` views).

    Attributes:
        residual: ``(N, C, 2)`` float32 px, the cube centre projected minus the detection.
        jacobian: ``(N, C, 2, 3)`` float32 px per metre, the projection's derivative at the centre.
        voxel_px: ``(N, C)`` float32, a voxel's size in px seen from each view at the centre.
        weight: ``(N, C)`` float32, the algebraic network's weights (0 where a view is not used).
        anchors: ``(N, 2, 3)`` float32 metres from the centre: the point the neighbouring frames
            predict and the robust point (far away where there is none).
    """

    residual: np.ndarray
    jacobian: np.ndarray
    voxel_px: np.ndarray
    weight: np.ndarray
    anchors: np.ndarray

    def tensors(self, idx=None) -> dict:
        """The arrays (rows ``idx``, None: all) as torch tensors, keyed by field name."""
        sel = slice(None) if idx is None else idx
        return {f.name: torch.from_numpy(np.ascontiguousarray(getattr(self, f.name)[sel])) for f in fields(self)}


def joint_views(rig: Rig, xy_px: np.ndarray, weight: np.ndarray, centers: np.ndarray,
                anchors: np.ndarray) -> JointViews:
    """:class:`JointViews` of ``N`` points: detections ``xy_px (N, C, 2)``, view weights ``weight
    (N, C)`` (0 = unused; renormalised to sum 1), cube centres ``centers (N, 3)`` and anchor points
    ``anchors (N, 2, 3)`` (NaN: none), world metres. The projection is linearised at the centre by
    central differences of :data:`JACOBIAN_STEP_M`. A view whose detection, projection or
    derivative is not finite gets weight 0."""
    h = JACOBIAN_STEP_M
    steps = np.concatenate([np.zeros((1, 3)), h * np.eye(3), -h * np.eye(3)])  # (7, 3)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        px = project_rig(rig, np.nan_to_num(centers)[:, None] + steps)  # (N, 7, C, 2)
        jac = np.moveaxis((px[:, 1:4] - px[:, 4:7]) / (2 * h), 1, -1)  # (N, C, 2, 3)
        res = px[:, 0] - xy_px
        vox = FINE_M / RESOLUTION * np.linalg.norm(jac, axis=(-2, -1)) / np.sqrt(2)
    ok = (weight > 0) & np.isfinite(res).all(-1) & np.isfinite(jac).all((-2, -1)) & (vox > 1e-6)
    ok &= np.isfinite(centers).all(-1)[:, None]
    w = np.where(ok, weight, 0.0)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    f32 = np.float32
    return JointViews(np.where(ok[..., None], res, 0.0).astype(f32),
                      np.where(ok[..., None, None], jac, 0.0).astype(f32), np.where(ok, vox, 1.0).astype(f32),
                      w.astype(f32), anchor_offsets(anchors, centers))


def anchor_offsets(anchors: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``anchors (N, A, 3)`` minus ``centers (N, 3)`` as float32, 1000 m where either is not finite."""
    with np.errstate(invalid="ignore"):
        off = anchors - centers[:, None]
    return np.where(np.isfinite(off).all(-1, keepdims=True), off, 1000.0).astype(np.float32)


def squared_distances(views: dict, coords: torch.Tensor) -> torch.Tensor:
    """``(B, C, V)``: squared distance, in voxels seen from the view, between each view's detection
    and the voxel offsets ``coords (V, 3)`` projected (linearised: ``|r + A o|²``, expanded as a
    quadratic form in ``o`` so that one matrix product gives all voxels)."""
    r, A = views["residual"], views["jacobian"]  # (B, C, 2), (B, C, 2, 3)
    q1 = 2 * torch.einsum("bci,bcij->bcj", r, A)
    Q = torch.einsum("bcij,bcik->bcjk", A, A)
    coeff = torch.cat([(r * r).sum(-1, keepdim=True), q1, Q[..., [0, 1, 2], [0, 1, 2]],
                       2 * Q[..., [0, 0, 1], [1, 2, 2]]], -1)  # (B, C, 10)
    x, y, z = coords.unbind(-1)
    basis = torch.stack([torch.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z], -1)  # (V, 10)
    return (coeff @ basis.T).clamp_min(0.0) / (views["voxel_px"][..., None] ** 2)


def joint_volumes(views: dict, coords: torch.Tensor) -> torch.Tensor:
    """The network's input ``(B, CHANNELS, D, D, D)`` from :meth:`JointViews.tensors` of ``B``
    points and the voxel offsets ``coords (D³, 3)`` metres: per sigma of :data:`SIGMA_VOXELS` the
    weighted mean over views of the Gaussian heatmaps read at the projected voxels; the share of
    used views whose widest heatmap covers the voxel; the weighted log-likelihood
    ``-sum_c w_c d_c² / 2`` (``d`` in voxels, /10, floored at :data:`LOGLIK_FLOOR`); the squared
    distance to the centre in half-sides; a Gaussian of :data:`ANCHOR_VOXELS` around each anchor."""
    w = views["weight"][:, None]  # (B, 1, C)
    d2 = squared_distances(views, coords)  # (B, C, V)
    chans = []
    for s in SIGMA_VOXELS:
        g = torch.exp(d2 * (-0.5 / (s * s)))
        chans.append(torch.bmm(w, g)[:, 0])
    used = (w > 0).to(d2.dtype)
    chans.append(torch.bmm(used, g)[:, 0] / used.sum(-1).clamp_min(1.0))
    chans.append((-0.05 * torch.bmm(w, d2)[:, 0]).clamp_min(LOGLIK_FLOOR))
    r2 = (coords * coords).sum(-1) / (FINE_M / 2) ** 2
    chans.append(r2.expand_as(chans[0]))
    width = ANCHOR_VOXELS * FINE_M / RESOLUTION
    a2 = ((coords[None, None] - views["anchors"][:, :, None]) ** 2).sum(-1) / width ** 2  # (B, A, V)
    chans += list(torch.exp(-0.5 * a2).unbind(1))
    D = round(coords.shape[0] ** (1 / 3))
    return torch.stack(chans, 1).reshape(-1, len(chans), D, D, D)


def refine(model: VolumetricNet, views: dict) -> torch.Tensor:
    """Offsets ``(B, 3)`` metres from the cube centres: the soft-argmax of the network's logits."""
    coords = torch.from_numpy(cube_coords().astype(np.float32))
    return soft_argmax(model(joint_volumes(views, coords)), coords)


def save_weights(model: VolumetricNet, path, meta: dict) -> None:
    """Write the weights and what made them (``meta``: plain values) to ``path`` (torch.save)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"version": WEIGHTS_VERSION, "width": model.width, "channels": model.channels, "resolution": RESOLUTION,
                "fine_m": FINE_M, "sigma_voxels": list(SIGMA_VOXELS), "state_dict": state, "meta": meta}, path)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> VolumetricNet:
    blob = read_weights_blob(path, "volumetric")
    if (blob.get("version") != WEIGHTS_VERSION or blob.get("resolution") != RESOLUTION
            or blob.get("fine_m") != FINE_M or blob.get("sigma_voxels") != list(SIGMA_VOXELS)
            or blob.get("channels") != CHANNELS):
        raise ModelError(f"{path}: volumetric weights of another format or cube; "
                         f"train again with 'mocap train volumetric --out FILE'")
    model = VolumetricNet(int(blob["width"]), CHANNELS)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_weights(path=None) -> VolumetricNet:
    """The network from ``path`` (None or "": the shipped weights), loaded with ``weights_only=True``."""
    p = weights_file(path, SHIPPED_WEIGHTS, "volumetric", "volumetric_weights")
    return _load(str(p), p.stat().st_mtime)


def frame_checks(person: np.ndarray, points: np.ndarray, min_confidence: float) -> dict:
    """Per person-frame fallback reasons of ``person (N, C, J, 3)`` and its first points ``points
    (N, J, 3)`` (the algebraic stage's, robust's where it fell back): bool ``(N,)`` each, in order
    of precedence. Partly outside: a point outside the :data:`CUBE_M` cube around the person's
    median point (each joint's cube needs no pelvis: a missing hip does not stop the others)."""
    conf = np.nan_to_num(person[..., 2])
    finite_xy = np.isfinite(person[..., :2]).all(-1)
    used = conf >= min_confidence
    have = np.isfinite(points).all(-1).any(-1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # person-frames without points
        centers = np.nanmedian(points, axis=1)
        outside = np.any(np.abs(points - centers[:, None]) > CUBE_M / 2, axis=(1, 2))
    views = (used & finite_xy).any(-1).sum(-1)
    reasons = {"no robust points": ~have}
    reasons["fewer than 2 cameras"] = have & ((views < 2) | (person.shape[1] < 2))
    taken = reasons["no robust points"] | reasons["fewer than 2 cameras"]
    reasons["NaN inputs"] = ~taken & (used & ~finite_xy).any((1, 2))
    reasons["partly outside the cube"] = ~taken & ~reasons["NaN inputs"] & outside
    return reasons


def algebraic_stage(rig: Rig, person: np.ndarray, robust: Triangulation, joint_names, config,
                    temporal: bool) -> tuple[np.ndarray, ...]:
    """The learned algebraic points and their view weights over the flattened leading axes of
    ``person (..., C, J, 3)``: ``(centres (N, J, 3) world, with its fallbacks to robust; weights
    (N, J, C); relabelled detections (N, C, J, 3); anchors (N, J, 2, 3): the point the
    neighbouring frames predict (NaN: none) and the robust point)``."""
    C, J = len(rig), robust.points.shape[-2]
    algebraic = triangulate_learned(rig, person, robust, joint_names, config, temporal)
    relabelled, reference = learned_inputs(rig, person, robust.points, joint_names, config, temporal)
    model = load_algebraic(config.learned_weights)
    _, W, ok, _ = chunked_points(model, person_evidence(rig, relabelled, robust.points, robust.inliers,
                                                        config.min_confidence, reference, 32768),
                                 camera_bias_matrix(model, rig.names, joint_names))  # the studio's camera bias, if any
    W = np.where(ok[:, None], W, 0.0)
    X0 = robust.points.reshape(-1, J, 3)
    ref = np.full_like(X0, np.nan) if reference is None else reference.reshape(-1, J, 3)
    return (algebraic.points.reshape(-1, J, 3), W.reshape(-1, J, C), relabelled.reshape(-1, C, J, 3),
            np.stack([ref, X0], axis=-2))


def fine_points(model: VolumetricNet, rig: Rig, xy_px: np.ndarray, weight: np.ndarray, centers: np.ndarray,
                anchors: np.ndarray) -> np.ndarray:
    """Refined world points ``(N, 3)`` of ``N`` points (detections ``(N, C, 2)``, weights ``(N, C)``,
    cube centres ``(N, 3)``, anchors ``(N, 2, 3)``), in chunks of :data:`CHUNK_POINTS`; NaN where the centre is NaN."""
    out = np.full(centers.shape, np.nan)
    with torch.no_grad(), one_torch_thread():
        for s in range(0, len(centers), CHUNK_POINTS):
            sl = slice(s, s + CHUNK_POINTS)
            views = joint_views(rig, xy_px[sl], weight[sl], centers[sl], anchors[sl])
            out[sl] = centers[sl] + refine(model, views.tensors()).numpy().astype(np.float64)
    return out


def triangulate_volumetric(rig: Rig, person: np.ndarray, robust: Triangulation, joint_names, config,
                           temporal: bool = False) -> Triangulation:
    """Volumetric triangulation of people given per view, around their learned algebraic triangulation.

    Args:
        rig: the calibration (``C`` cameras).
        person: ``(..., C, J, 3)`` x px, y px, confidence; NaN where not seen.
        robust: their :func:`~mocap.triangulation.triangulate_robust` result over ``(..., J)``.
        joint_names: ``(J,)`` names (for the left/right relabelling).
        config: the :class:`~mocap.triangulation.people.TriangulateConfig` (``min_confidence``,
            ``learned_weights``, ``volumetric_weights``: weights files, "" for the shipped ones).
        temporal: axis 0 is consecutive frames (the algebraic stage's neighbouring-frame evidence).

    Returns:
        :class:`Triangulation` over ``(..., J)``: volumetric points where they pass the checks,
        the robust ones elsewhere; ``inliers``/``views_used`` are robust's;
        ``reproj_error_px`` against the given detections.
    """
    model = load_weights(config.volumetric_weights)
    lead, C, J = robust.points.shape[:-2], len(rig), robust.points.shape[-2]
    X0 = robust.points.reshape(-1, J, 3)
    flat = person.reshape((-1, C, J, 3))
    centres, W, relabelled, anchors = algebraic_stage(rig, person, robust, joint_names, config, temporal)
    reasons = frame_checks(flat, centres, config.min_confidence)
    use = ~np.any(list(reasons.values()), axis=0)
    X, kept = X0.copy(), 0
    if use.any():
        xy = np.moveaxis(relabelled[use, ..., :2], 1, 2).reshape(-1, C, 2)
        Xu = fine_points(model, rig, xy, W[use].reshape(-1, C), centres[use].reshape(-1, 3),
                         anchors[use].reshape(-1, 2, 3)).reshape(-1, J, 3)
        with np.errstate(invalid="ignore"):
            edge = ~(np.linalg.norm(Xu - centres[use], axis=-1) <= MAX_MOVE_M)  # NaN too
        X[use] = np.where(edge[..., None], centres[use], Xu)
        kept = int((edge & np.isfinite(centres[use]).all(-1)).sum())
    had = np.isfinite(X0).all(-1)
    X = np.where(had[..., None] & np.isfinite(X).all(-1, keepdims=True), X, X0)
    if guard_applies(config):  # the refined point, too, keeps robust's inlier views
        refined = (had & use[:, None]).reshape(-1)
        guarded = refined & robust_guard(rig, relabelled.reshape(person.shape), X.reshape(lead + (J, 3)), robust,
                                         config.min_confidence, temporal, GUARD_MARGIN, say=False)  # said once, above
        log_guard("volumetric", guarded, refined)
        X = np.where(guarded.reshape(X.shape[:-1])[..., None], X0, X)
    counts = {k: int(v.sum()) for k, v in reasons.items()}
    frames_back = sum(counts.values())
    (log.info if frames_back else log.debug)(
        "volumetric triangulation: %d of %d person-frames refined; kept robust for %d (%s); kept the algebraic "
        "point for %d joints (non-finite or > %.2f m from it)", use.sum(), len(use), frames_back,
        ", ".join(f"{k}: {v}" for k, v in counts.items()), kept, MAX_MOVE_M)
    xy_all = np.moveaxis(flat[..., :2], 1, 2)  # (N, J, C, 2)
    with np.errstate(invalid="ignore"):
        reproj = np.linalg.norm(project_rig(rig, X) - xy_all, axis=-1)
    return Triangulation(X.reshape(lead + (J, 3)), robust.views_used, reproj.reshape(lead + (J, C)),
                         robust.inliers, None)
