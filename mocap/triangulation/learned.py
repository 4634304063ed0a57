"""Learnable algebraic triangulation (Iskakov et al., ICCV 2019), on top of robust triangulation.

A small network (:class:`ViewWeightNet`, shared by all joints and views) turns each view ×
joint's evidence (:mod:`mocap.triangulation.features`: confidence, the person's size in the view,
ray geometry, agreement with the other views through the residual of a first robust estimate,
and, frames in order, agreement with the point the neighbouring frames predict) into a weight; the weights are normalised across the views of each point and feed a weighted
DLT solved in torch (:func:`weighted_dlt`: the 4x4 normal equations, inhomogeneous 3x3 solve,
differentiable and batched), trained end to end on the 3D error (:mod:`mocap.train.algebraic`).

Fallback to the robust point, counted and logged: where robust left a point NaN the point stays
NaN; points with fewer than two usable views, non-finite features, a non-finite result or one
farther than :data:`MAX_SHIFT_M` from the robust point and (frames in order) from the point the
neighbouring frames predict keep the robust point. So the learned mode is never NaN where robust
had a point.

The guard (``triangulate.learned_guard``, on by default for weights without a studio's camera bias,
:func:`guard_applies`; :func:`robust_guard`): where the learned
point is consistently farther than robust's from one of robust's inlier views (by more than
:data:`GUARD_MARGIN` of the person's size there, in at least :data:`GUARD_SHARE` of the frames of a
:data:`GUARD_WINDOW`-frame window), robust's point is kept and the count logged once; so it is for
every point of a person with a view whose confidences are all the same (:func:`flat_confidence`). The network,
trained on synthetic detector noise, sometimes treats a real view that robust keeps as faulty
(a systematic detector or calibration offset looks like an outlier to it); robust's inliers are
then the safer evidence. Chosen on held-out synthetic captures and the balancing take: keeping
robust's view set always (reweighting within it) lost most of the synthetic gain (4 cameras 0.92x
robust instead of 0.74x), the window rule keeps it (0.75x).

A studio's camera bias: weights adapted by ``mocap train algebraic --session`` (default
``trainable=camera_bias``) carry an optional ``camera_bias`` entry, a logit per camera name (or per
camera and joint name) added to the network's view logits before the softmax
(:attr:`ViewWeightNet.camera_bias`, :func:`camera_bias_matrix`; cameras it does not name get 0).
The shipped weights have none. The volumetric mode weighs its views with these softmax weights, so
it takes the bias too.

torch is imported by this module: import it lazily (``mocap.triangulation.people`` does).
"""

from __future__ import annotations

import logging
import pickle
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mocap.errors import ModelError
from mocap.geometry import Rig
from mocap.geometry.camera import project_rig
from mocap.triangulation.dlt import Triangulation
from mocap.triangulation.features import FEATURE_NAMES, ViewEvidence, flat_views, learned_inputs, person_evidence

log = logging.getLogger(__name__)

#: The weights shipped inside the package (``mocap train algebraic`` made them; README has the command).
SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "algebraic.pt"
#: Every usable view keeps at least this share of the weight (keeps the normal equations full rank).
WEIGHT_FLOOR = 1e-3
#: A learned point farther than this from the robust point, and from the point the neighbouring
#: frames predict, is a failure: the robust point is kept.
MAX_SHIFT_M = 0.5
#: Views with at least this fraction of a point's largest weight count as used (``inliers``).
USED_SHARE = 0.1
#: Points whose evidence is built and weighted at a time (bounds the memory on long takes).
CHUNK_POINTS = 32768
#: Format version of the weights file.
WEIGHTS_VERSION = 1
#: The guard (``triangulate.learned_guard``, :func:`robust_guard`): a learned point farther than robust's
#: from one of robust's inlier views by more than this fraction of the person's size in that view ...
GUARD_MARGIN = 0.002
#: ... in at least this share of the frames of a centred window of :data:`GUARD_WINDOW` frames that see
#: the joint there (at least :data:`GUARD_MIN_FRAMES` of them) is replaced by robust's point.
GUARD_SHARE = 0.6
GUARD_WINDOW = 15
GUARD_MIN_FRAMES = 5
#: The guard also keeps robust's points for a person with a view whose keypoints all carry one and
#: the same confidence (at least this many of them over the frames given; e.g. a keypoint source
#: without scores writing 1.0 throughout): the network weighs views by confidences it learned to
#: vary with the detector's error, and a constant one says nothing of that view's error.
FLAT_MIN_KEYPOINTS = 20


class ViewWeightNet(torch.nn.Module):
    """Per view × joint MLP: features ``(..., C, F)`` -> weights ``(..., C)`` summing to 1 over the valid views."""

    def __init__(self, num_features: int = len(FEATURE_NAMES), hidden: int = 32, layers: int = 2):
        super().__init__()
        dims = [num_features] + [hidden] * layers
        blocks = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [torch.nn.Linear(a, b), torch.nn.SiLU()]
        self.body = torch.nn.Sequential(*blocks, torch.nn.Linear(dims[-1], 1))
        self.hidden, self.layers = hidden, layers
        #: Per-camera logit bias of a studio (``mocap train algebraic --session``, ``trainable=camera_bias``):
        #: camera name -> a float (every joint) or {joint name: float}; see :func:`camera_bias_matrix`.
        self.camera_bias: dict = {}

    def forward(self, features: torch.Tensor, valid: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``bias``: optional ``(..., C)`` added to the views' logits (the studio's per-camera bias)."""
        logit = torch.full(valid.shape, float("-inf"), dtype=features.dtype)
        logit = logit.masked_scatter(valid, self.body(features[valid]).squeeze(-1))  # valid views only
        if bias is not None:
            logit = logit + bias.to(logit.dtype)
        w = torch.softmax(logit, dim=-1)
        w = torch.nan_to_num(w) + WEIGHT_FLOOR * valid
        return w / w.sum(-1, keepdim=True).clamp_min(1e-12)


def weighted_dlt(rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted DLT: ``rows (B, C, 2, 4)`` unit-norm (0 where unused), row weights ``(B, C)``
    -> points ``(B, 3)`` (conditioned frame). Minimises ``sum (w · a^T [X; 1])^2`` (the normal
    equations of the inhomogeneous system, a 3x3 solve per point: differentiable everywhere the
    views are not all on one ray)."""
    w2 = (weight * weight).to(rows.dtype)
    M = torch.einsum("bc,bcki,bckj->bij", w2, rows, rows)  # (B, 4, 4)
    return torch.linalg.solve(M[:, :3, :3], -M[:, :3, 3:]).squeeze(-1)


def solve_points(model: ViewWeightNet, features: torch.Tensor, valid: torch.Tensor,
                 rows: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X (B, 3) conditioned frame, weights (B, C))`` of a batch of evidence (``bias``: ``(B, C)``
    logit bias of the studio's cameras, or None)."""
    w = model(features, valid, bias)
    return weighted_dlt(rows, w), w


def save_weights(model: ViewWeightNet, path, meta: dict) -> None:
    """Write the weights and what made them (``meta``: plain values) to ``path`` (torch.save)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    blob = {"version": WEIGHTS_VERSION, "features": list(FEATURE_NAMES), "hidden": model.hidden,
            "layers": model.layers, "state_dict": state, "meta": meta}
    if model.camera_bias:  # optional: only session-adapted weights have it
        blob["camera_bias"] = model.camera_bias
    torch.save(blob, path)


def checked_camera_bias(value, path) -> dict:
    """The ``camera_bias`` entry of a weights file: ``{camera name: float | {joint name: float}}``."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

    ok = isinstance(value, dict) and all(
        isinstance(k, str) and (number(v) or (isinstance(v, dict) and all(isinstance(j, str) and number(b)
                                                                          for j, b in v.items())))
        for k, v in value.items())
    if not ok:
        raise ModelError(f"{path}: camera_bias must map camera names to finite numbers or to {{joint name: number}}; "
                         f"adapt again with 'mocap train algebraic --session DIR --calibration FILE --out FILE'")
    return value


def camera_bias_matrix(model: ViewWeightNet, camera_names, joint_names) -> np.ndarray | None:
    """The studio's logit bias ``(J, C)`` of a rig's cameras and joints (None: the model has none).
    Cameras not in ``model.camera_bias`` get 0, and so do joints a per-joint entry does not name."""
    if not model.camera_bias:
        return None
    out = np.zeros((len(joint_names), len(camera_names)))
    for c, name in enumerate(camera_names):
        value = model.camera_bias.get(str(name), 0.0)
        if isinstance(value, dict):
            out[:, c] = [float(value.get(j, 0.0)) for j in joint_names]
        else:
            out[:, c] = float(value)
    return out


def weights_file(path, shipped: Path, kind: str, setting: str) -> Path:
    """The weights file ``path`` (None or "": ``shipped``), resolved; a missing one says how to make it
    (``mocap train <kind>``) or which setting (``triangulate.<setting>``) names another."""
    p = Path(path) if path else shipped
    if not p.is_file():
        raise ModelError(f"{p}: weights file not found; make one with 'mocap train {kind} --out {p.name}' "
                         f"or set triangulate.{setting}")
    return p.resolve()


def read_weights_blob(path: str, kind: str) -> dict:
    """The dict a ``mocap train <kind>`` run saved in ``path``, loaded with ``weights_only=True``."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"{path}: not a readable weights file ({type(exc).__name__}); "
                         f"make one with 'mocap train {kind} --out FILE'") from None
    if not isinstance(blob, dict):
        raise ModelError(f"{path}: not a weights file of 'mocap train {kind}'; train again with "
                         f"'mocap train {kind} --out FILE'")
    return blob


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> ViewWeightNet:
    blob = read_weights_blob(path, "algebraic")
    if blob.get("version") != WEIGHTS_VERSION or blob.get("features") != list(FEATURE_NAMES):
        raise ModelError(f"{path}: weights for other features or an older format; "
                         f"train again with 'mocap train algebraic --out FILE'")
    model = ViewWeightNet(len(FEATURE_NAMES), int(blob["hidden"]), int(blob["layers"]))
    model.load_state_dict(blob["state_dict"])
    model.camera_bias = checked_camera_bias(blob.get("camera_bias", {}), path)
    return model.eval()


def load_weights(path=None) -> ViewWeightNet:
    """The network from ``path`` (None or "": the shipped weights), loaded with ``weights_only=True``."""
    p = weights_file(path, SHIPPED_WEIGHTS, "algebraic", "learned_weights")
    return _load(str(p), p.stat().st_mtime)


def evidence_tensors(ev: ViewEvidence, idx: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    """``(features float32, valid bool, rows float64)`` tensors of the points ``idx`` (None: all)."""
    sel = slice(None) if idx is None else idx
    return (torch.from_numpy(np.ascontiguousarray(ev.features[sel])), torch.from_numpy(ev.valid[sel]),
            torch.from_numpy(np.ascontiguousarray(ev.rows[sel])))


@contextmanager
def one_torch_thread():
    """Run torch on one thread inside: the per-point products are small, and on a loaded machine
    torch's waiting threads make them several times slower (0.7 s -> 0.1 s for 7500 points x 8
    views with 2 threads on 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def learned_points(model: ViewWeightNet, ev: ViewEvidence,
                   bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World points ``(N, 3)`` (NaN where not ``ev.ok``) and weights ``(N, C)`` of all points
    (``bias``: ``(N, C)`` logit bias of the studio's cameras, or None)."""
    idx = np.flatnonzero(ev.ok)
    X = np.full((len(ev.ok), 3), np.nan)
    W = np.zeros(ev.valid.shape)
    if idx.size:
        with torch.no_grad(), one_torch_thread():
            b = None if bias is None else torch.from_numpy(bias[idx])
            Xc, w = solve_points(model, *evidence_tensors(ev, idx), b)
        X[idx] = ev.center + Xc.numpy() / ev.scale
        W[idx] = w.numpy()
    return X, W


def chunked_points(model: ViewWeightNet, chunks, bias: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """:func:`learned_points` of every chunk of :func:`~mocap.triangulation.features.person_evidence`
    -> ``(X (N, 3), W (N, C), ok (N,), valid views (N,))``. ``bias``: the studio's logit bias ``(J, C)``
    (:func:`camera_bias_matrix`; the flattened points are ``(..., J)`` in C order) or None."""
    parts = []
    for sl, ev in chunks:
        X, W = learned_points(model, ev, None if bias is None else bias[np.arange(sl.start, sl.stop) % len(bias)])
        parts.append((X, W, ev.ok, ev.valid.sum(-1)))
    return tuple(np.concatenate(a) for a in zip(*parts))


def moving_sum(a: np.ndarray, window: int) -> np.ndarray:
    """Centred moving sum of ``a (T, ...)`` along axis 0 over ``window`` frames (fewer at the ends)."""
    c = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
    t = np.arange(len(a))
    return c[np.minimum(t + window // 2 + 1, len(a))] - c[np.maximum(t - window // 2, 0)]


def consistently_worse(r_net: np.ndarray, r_robust: np.ndarray, inliers: np.ndarray, margin: np.ndarray,
                       window: int) -> np.ndarray:
    """``(T, M)`` points whose network point reprojects into one of robust's inlier views farther than
    robust's point by more than ``margin`` (px) in at least :data:`GUARD_SHARE` of the frames of a
    centred ``window`` that see it there (at least :data:`GUARD_MIN_FRAMES`, fewer if the window is
    shorter). ``r_net``, ``r_robust``, ``inliers``, ``margin``: ``(T, M, C)``, frames first."""
    both = inliers & np.isfinite(r_net) & np.isfinite(r_robust)
    with np.errstate(invalid="ignore"):
        worse = both & (r_net - r_robust > margin)
    n_both, n_worse = moving_sum(both.astype(np.float64), window), moving_sum(worse.astype(np.float64), window)
    consistent = (n_both >= min(GUARD_MIN_FRAMES, window)) & (n_worse >= GUARD_SHARE * n_both)
    return (consistent & both).any(-1)


def robust_guard(rig: Rig, person: np.ndarray, points: np.ndarray, robust: Triangulation, min_confidence: float,
                 temporal: bool, margin: float = GUARD_MARGIN, say: bool = True) -> np.ndarray:
    """The inference-time guard of the learned modes: ``(N,)`` bool over the flattened ``(..., J)``, the
    points ``points (..., J, 3)`` that are consistently farther than robust's from one of robust's
    inlier views (:func:`consistently_worse`: by more than ``margin`` (:data:`GUARD_MARGIN`) of the
    person's size in that view; per person x joint over :data:`GUARD_WINDOW` frames when ``temporal``,
    else per point), and every point of a person with a view whose confidences are all the same
    (:func:`flat_confidence`, logged when ``say``); there robust's point is kept. ``person``:
    ``(..., C, J, 3)`` the detections (relabelled as the learned mode sees them)."""
    C = len(rig)
    xy, size = flat_views(person, min_confidence)
    with np.errstate(invalid="ignore"):
        r_net, r_rob = (np.linalg.norm(project_rig(rig, P.reshape(-1, 3)) - xy, axis=-1)
                        for P in (points, robust.points))
    T = robust.points.shape[0] if temporal and robust.points.ndim > 2 else 1
    flat = (T, -1, C)
    worse = consistently_worse(r_net.reshape(flat), r_rob.reshape(flat), robust.inliers.reshape(flat),
                               margin * size.reshape(flat), GUARD_WINDOW if T > 1 else 1).reshape(-1)
    return worse | flat_confidence(person, min_confidence, T > 1, say)


def flat_confidence(person: np.ndarray, min_confidence: float, temporal: bool, say: bool = True) -> np.ndarray:
    """``(N,)`` bool over the flattened ``(..., J)`` of ``person (..., C, J, 3)``: the points of a
    person with a view whose keypoints (seen, confidence at least ``min_confidence``; over all frames,
    axis 0, when ``temporal``) number at least :data:`FLAT_MIN_KEYPOINTS` and all carry the same
    confidence; logged (``say``) where there are any."""
    conf = person[..., 2]  # (..., C, J)
    with np.errstate(invalid="ignore"):
        seen = np.isfinite(conf) & (conf >= min_confidence) & np.isfinite(person[..., :2]).all(-1)
    hi, lo = np.where(seen, conf, -np.inf).max(-1), np.where(seen, conf, np.inf).min(-1)  # (..., C)
    n = seen.sum(-1)
    if temporal:
        hi, lo, n = hi.max(0, keepdims=True), lo.min(0, keepdims=True), n.sum(0, keepdims=True)
    views = (n >= FLAT_MIN_KEYPOINTS) & (hi - lo <= 1e-6)
    if say and views.any():
        log.info("triangulation guard: %d view(s) of %d people give every keypoint the same confidence (e.g. %.3f): "
                 "robust kept for those people (the learned weights need detector confidences)",
                 views.sum(), views.any(-1).sum(), hi[views][0])
    person_flat = views.any(-1)  # (...,) without C
    return np.broadcast_to(person_flat[..., None], person.shape[:-3] + (person.shape[-2],)).reshape(-1)


def guard_applies(config) -> bool:
    """Whether the guard runs: ``config.learned_guard`` and weights without a studio's camera bias
    (weights adapted by ``mocap train algebraic --session`` were fitted and scored on the studio's own
    takes by the same multi-view consistency; the guard would undo their choice of views)."""
    return bool(config.learned_guard) and not load_weights(config.learned_weights).camera_bias


def log_guard(mode: str, guarded: np.ndarray, refined: np.ndarray) -> None:
    """One log line (info when it acted) of how many points the guard gave back to robust."""
    (log.info if guarded.any() else log.debug)(
        "%s triangulation guard: kept robust for %d of %d points (consistently farther than robust's point from "
        "one of robust's inlier views over %d frames, or a person whose view gives every keypoint one confidence; "
        "triangulate.learned_guard: false turns it off)",
        mode, guarded.sum(), refined.sum(), GUARD_WINDOW)


def triangulate_learned(rig: Rig, person: np.ndarray, robust: Triangulation, joint_names, config,
                        temporal: bool = True) -> Triangulation:
    """Learned algebraic triangulation of people given per view, from their robust triangulation.

    Args:
        rig: the calibration (``C`` cameras).
        person: ``(..., C, J, 3)`` x px, y px, confidence; NaN where not seen.
        robust: their :func:`~mocap.triangulation.triangulate_robust` result over ``(..., J)``.
        joint_names: ``(J,)`` names (for the left/right relabelling).
        config: the :class:`~mocap.triangulation.people.TriangulateConfig` (``min_confidence``,
            the left/right check settings, ``learned_weights``: a weights file, "" for the shipped ones,
            ``learned_guard``: :func:`robust_guard`).
        temporal: axis 0 is consecutive frames: the evidence includes the agreement of each view
            with the points predicted from the neighbouring frames.

    Returns:
        :class:`Triangulation` over ``(..., J)``: learned points where they pass the checks, the
        robust ones elsewhere; ``inliers`` the views with at least :data:`USED_SHARE` of the
        largest weight; ``reproj_error_px`` against the given detections.
    """
    model = load_weights(config.learned_weights)
    lead = robust.points.shape[:-1]
    C = len(rig)
    person, reference = learned_inputs(rig, person, robust.points, joint_names, config, temporal)
    X, W, ok, n_valid = chunked_points(model, person_evidence(rig, person, robust.points, robust.inliers,
                                                              config.min_confidence, reference, CHUNK_POINTS),
                                       camera_bias_matrix(model, rig.names, joint_names))
    X0 = robust.points.reshape(-1, 3)
    had = np.isfinite(X0).all(-1)
    finite = np.isfinite(X).all(-1)
    with np.errstate(invalid="ignore"):
        far = finite & ~(np.linalg.norm(X - X0, axis=-1) <= MAX_SHIFT_M)
        if reference is not None:  # robust may be the wrong one: the neighbouring frames decide
            far &= ~(np.linalg.norm(X - reference.reshape(-1, 3), axis=-1) <= MAX_SHIFT_M)
    good = ok & finite & ~far
    few = had & ~ok & (n_valid < 2)
    (log.info if (had & ~good).any() else log.debug)(
        "learned triangulation: %d of %d robust points refined; kept robust for %d (fewer than 2 views: %d, "
        "NaN features: %d, failed or > %.1f m from robust and the neighbouring frames: %d)", good.sum(), had.sum(), (had & ~good).sum(),
        few.sum(), (had & ~ok & ~few).sum(), MAX_SHIFT_M, (had & ok & ~good).sum())
    if guard_applies(config):
        guarded = good & robust_guard(rig, person, X, robust, config.min_confidence, temporal)
        log_guard("learned", guarded, good)
        good &= ~guarded
    points = np.where(good[:, None], X, X0)
    used = np.where(good[:, None], (W > 0) & (W >= USED_SHARE * W.max(-1, keepdims=True)),
                    robust.inliers.reshape(-1, C))
    xy = np.moveaxis(person[..., :2], -3, -2).reshape(-1, C, 2)
    with np.errstate(invalid="ignore"):
        reproj = np.linalg.norm(project_rig(rig, points) - xy, axis=-1)
    views = np.where(good, used.sum(-1), robust.views_used.reshape(-1))
    return Triangulation(points.reshape(lead + (3,)), views.reshape(lead), reproj.reshape(lead + (C,)),
                         used.reshape(lead + (C,)), None)
