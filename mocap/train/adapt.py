"""Adapting the learned algebraic triangulation to a studio's own takes, without 3D ground truth.

``mocap train algebraic --session DIR --calibration FILE``. The people come from our own
reconstruction (:func:`mocap.track.people.people_views`: cross-view matching and linking), so each
training sample holds the views of one tracked person, not the most confident detection of every
view. The signal is multi-view consistency: every camera is left out in turn, each person
triangulated from the others (robust first, then the learned weights, as at inference) and
reprojected into the left-out camera, whose detections are the target (Huber loss in pixels,
weighted by their confidence; detections below ``min_target_confidence`` are no targets).
Bone-length constancy (squared coefficient of variation of :data:`mocap.evaluate.BONES` of the
all-camera learned triangulation, per person) regularises it, and an L2 pull toward the starting
values (``anchor``) keeps it near them. Seeded, full batch.

What is adapted (``trainable``): by default (``camera_bias``) the net stays as shipped and only one
logit bias per camera (``groups=4``: per camera and joint group, :data:`JOINT_GROUPS`) is learned,
added to the net's view logits before the softmax; it is stored by camera name in the weights file
(:attr:`mocap.triangulation.learned.ViewWeightNet.camera_bias`), so it follows the camera, not its
index, and a camera it does not name gets 0. It is what a studio's take can teach without 3D ground
truth: which of *its* cameras is trustworthy (lens, calibration, viewpoint), not how to read the
evidence, which the synthetic training knows better. ``all`` fine-tunes every weight of the net
(and ``last`` the output layer): on the single Pose2Sim take this fitted its frames but did not
transfer to a new performer. The defaults were chosen on the adaptation take only, by
:func:`cross_validate` (3 blocks of its training frames, each held out in turn; ``mocap bench
triangulate --only-adaptation --adaptation-selection`` prints it; those settings with the plain mean
objective): the held-out-view px fell from 23.86 (shipped) to 21.40 with ``camera_bias`` (anchor 1)
against 23.89 with ``all`` and 23.76 with ``last``; ``groups=4`` was not better (21.16 / 21.63 against 21.34 / 21.40 at anchor 0.1 / 1) and
anchor 10 held it back (21.97).
The reprojection term leans on the worst left-out camera (``objective=worst``: each camera's mean
loss weighted by a softmax of them), chosen the same way by a rule fixed before the runs (its worst
camera's held-out px lower, its mean at most 0.2 px higher): 29.11 / 21.59 px against 29.19 / 21.40
for the plain mean over targets (``objective=mean``).
``validation_fraction`` keeps the last part of the training frames apart and ends at the step with
the lowest consistency loss there (early stopping).

Only the first ``train_fraction`` of the frames is trained on; :func:`mocap.train.session_scores.scores_of` reports
held-out-view reprojection and bone-length CV on the rest (or on another take) through the same
inference path as ``--triangulation learned`` (fallbacks to robust included).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from mocap.evaluate import BONES
from mocap.geometry import Rig
from mocap.geometry.camera import pixel_to_normalized
from mocap.triangulation.features import learned_inputs, person_evidence
from mocap.train.session_scores import scores_of
from mocap.triangulation.learned import ViewWeightNet, camera_bias_matrix, evidence_tensors, solve_points
from mocap.triangulation.people import TriangulateConfig, triangulate_people

log = logging.getLogger(__name__)


#: ``adapt.objective=worst``: softmax temperature over the left-out cameras' mean losses, as a share
#: of their mean (0.1: a camera 10 % worse than the mean weighs e ≈ 2.7 times a mean one).
WORST_TEMPERATURE = 0.1

#: Joint groups of ``adapt.groups=4`` (canonical names; joints named in none form one more group).
JOINT_GROUPS = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "neck", "head_top"),
    "arms": ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"),
    "legs": ("left_hip", "right_hip", "left_knee", "right_knee"),
    "feet": ("left_ankle", "right_ankle", "left_big_toe", "left_small_toe", "left_heel", "right_big_toe",
             "right_small_toe", "right_heel"),
}


#: Adam learning rate of each ``adapt.trainable`` mode when ``adapt.lr`` is 0. The bias is a logit
#: (converges within the 100 steps at 0.05: 0.01 ends at the same biases within 0.03); the net's
#: weights move at 1e-3.
DEFAULT_LR = {"camera_bias": 0.05, "all": 1e-3, "last": 1e-3}


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of the session adaptation (``--adapt KEY=VALUE``)."""

    seed: int = 0
    """Seed of torch (the adaptation is full batch: nothing else is random)."""
    steps: int = 100
    """Adam steps."""
    lr: float = 0.0
    """Adam learning rate; 0: the mode's own (:data:`DEFAULT_LR`: 0.05 for ``camera_bias``, 1e-3 for ``all`` and ``last``)."""
    anchor: float = 1.0
    """Weight of the squared distance of the parameters from the starting weights."""
    huber_px: float = 10.0
    """Reprojection errors beyond this many pixels count linearly (detector outliers)."""
    bone_weight: float = 10000.0
    """Weight of the bone-length term (squared CV, ~1e-3) against the reprojection term (Huber, pixels)."""
    min_target_confidence: float = 0.3
    """Left-out detections below this confidence are no targets (and not scored)."""
    train_fraction: float = 0.6
    """Share of the frames (from the start) trained on; the rest is held out for the report."""
    frames: int = 0
    """Use only the first this many frames of the take (0: all)."""
    min_targets: int = 50
    """A tracked person with fewer held-out-view targets in the training frames is skipped."""
    threads: int = 1
    """torch threads."""
    trainable: str = "camera_bias"
    """Weights adapted: ``camera_bias`` (the net frozen; one logit bias per camera and joint group, stored by camera name), ``all`` or ``last`` (the output layer only)."""
    groups: int = 1
    """Joint groups of ``trainable=camera_bias``: 1 (one bias per camera) or 4 (:data:`JOINT_GROUPS`)."""
    validation_fraction: float = 0.0
    """Share of the training frames (from their end) used only for early stopping (0: none, all steps kept)."""
    objective: str = "worst"
    """The reprojection term: ``mean`` over every left-out target, or ``worst``: each left-out
    camera's mean, weighted toward the worst (:func:`consistency_losses`)."""

    def __post_init__(self):
        if self.steps < 0 or self.frames < 0 or self.threads < 1:
            raise ValueError(f"adapt: steps and frames must be >= 0 and threads >= 1, got {self.steps}, "
                             f"{self.frames}, {self.threads}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"adapt.train_fraction: expected a value in (0, 1), got {self.train_fraction}")
        if self.objective not in ("mean", "worst"):
            raise ValueError(f"adapt.objective: expected mean or worst, got {self.objective!r}")
        if self.trainable not in ("all", "last", "camera_bias"):
            raise ValueError(f"adapt.trainable: expected all, last or camera_bias, got {self.trainable!r}")
        if self.groups not in (1, len(JOINT_GROUPS)):
            raise ValueError(f"adapt.groups: expected 1 or {len(JOINT_GROUPS)}, got {self.groups}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"adapt.validation_fraction: expected a value in [0, 1), got {self.validation_fraction}")
        if not (self.lr >= 0 and self.anchor >= 0 and self.huber_px > 0 and self.bone_weight >= 0):
            raise ValueError("adapt: huber_px must be > 0, lr (0: the mode's own), anchor and bone_weight >= 0")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the mode's own (:data:`DEFAULT_LR`) when it is 0."""
        return self.lr or DEFAULT_LR[self.trainable]


def parse_adapt(items) -> AdaptConfig:
    """``["steps=20", "lr=1e-4"]`` -> :class:`AdaptConfig`; one clear line for an unknown key or bad value."""
    types = {f.name: type(f.default) for f in fields(AdaptConfig)}
    values = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"--adapt {item}: expected KEY=VALUE with KEY one of {', '.join(types)}")
        try:
            values[key] = types[key](value)
        except ValueError:
            raise ValueError(f"--adapt {item}: {value!r} is not a {types[key].__name__}") from None
    return AdaptConfig(**values)


def joint_groups(joint_names, groups: int) -> np.ndarray:
    """Group index ``(J,)`` of each joint: all 0 for ``groups=1``; by :data:`JOINT_GROUPS` otherwise
    (joints named in none: one more group)."""
    if groups == 1:
        return np.zeros(len(joint_names), dtype=np.int64)
    of = {j: g for g, names in enumerate(JOINT_GROUPS.values()) for j in names}
    return np.array([of.get(j, len(JOINT_GROUPS)) for j in joint_names], dtype=np.int64)


class CameraBias(torch.nn.Module):
    """Logit bias ``(G, C)`` of the rig's cameras per joint group, added to the net's view logits
    (``trainable=camera_bias``); starts from the model's own :attr:`ViewWeightNet.camera_bias`
    (0 where it has none; per group its mean over the group's joints)."""

    def __init__(self, model: ViewWeightNet, camera_names, joint_names, group: np.ndarray):
        super().__init__()
        self.cameras, self.joints = [str(c) for c in camera_names], list(joint_names)
        self.group = torch.from_numpy(np.asarray(group, dtype=np.int64))
        start = camera_bias_matrix(model, self.cameras, self.joints)
        value = np.zeros((int(group.max()) + 1, len(self.cameras)))
        if start is not None:
            for g in range(len(value)):
                value[g] = start[group == g].mean(0)
        self.value = torch.nn.Parameter(torch.from_numpy(value))

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        """Joint indices ``(n,)`` -> their bias ``(n, C)``."""
        return self.value[self.group[joint]]

    def as_map(self) -> dict:
        """The ``camera_bias`` entry of the weights file: camera name -> float (one group) or {joint name: float}."""
        v = self.value.detach().numpy()
        if len(v) == 1:
            return {c: float(v[0, i]) for i, c in enumerate(self.cameras)}
        g = self.group.numpy()
        return {c: {j: float(v[g[k], i]) for k, j in enumerate(self.joints)} for i, c in enumerate(self.cameras)}


def bias_of(bias: CameraBias | None, joint: torch.Tensor) -> torch.Tensor | None:
    """``bias(joint)``, or None without a bias."""
    return None if bias is None else bias(joint)


@dataclass(frozen=True, eq=False)
class HeldOutView:
    """Tensors of one left-out camera of one person: the evidence of the other views' points and the target."""

    features: torch.Tensor
    valid: torch.Tensor
    rows: torch.Tensor
    center: np.ndarray
    scale: float
    R: torch.Tensor  # (3, 3)
    t: torch.Tensor  # (3,)
    target: torch.Tensor  # (n, 2) undistorted normalised coordinates in the left-out camera
    weight: torch.Tensor  # (n,) target confidence
    focal: float
    joint: torch.Tensor  # (n,) joint index of each point
    camera: int = -1  # the left-out camera's index in the rig


def evidence_of(rig: Rig, person: np.ndarray, joint_names, config: TriangulateConfig):
    """Robust triangulation + learned evidence of ``person (T, C, J, 3)`` -> ``(ViewEvidence, flat robust points)``."""
    tri = triangulate_people(rig, person, joint_names, config, temporal=True)
    relabelled, ref = learned_inputs(rig, person, tri.points, joint_names, config, True)
    [(_, ev)] = person_evidence(rig, relabelled, tri.points, tri.inliers, config.min_confidence, ref)
    return ev, tri.points.reshape(-1, 3)


def held_out_view(rig: Rig, person: np.ndarray, joint_names, c: int, cfg: AdaptConfig,
                  config: TriangulateConfig) -> HeldOutView | None:
    """The evidence of ``person (T, C, J, 3)`` with camera ``c`` left out, camera ``c``'s detections
    as targets; None without targets."""
    others = person.copy()
    others[:, c] = np.nan
    ev, _ = evidence_of(rig, others, joint_names, config)
    target = person[:, c].reshape(-1, 3)
    with np.errstate(invalid="ignore"):
        use = ev.ok & np.isfinite(target).all(-1) & (target[:, 2] >= cfg.min_target_confidence)
    idx = np.flatnonzero(use)
    if not idx.size:
        return None
    cam = rig.cameras[c]
    feats, valid, rows = evidence_tensors(ev, idx)
    return HeldOutView(feats, valid, rows, ev.center, ev.scale, torch.from_numpy(cam.R.copy()), torch.from_numpy(cam.t.copy()),
                       torch.from_numpy(pixel_to_normalized(cam, target[idx, :2])),
                       torch.from_numpy(target[idx, 2].copy()), float(cam.K[0, 0]),
                       torch.from_numpy(idx % person.shape[-2]), c)


def reprojection_loss(model: ViewWeightNet, view: HeldOutView, huber_px: float,
                      bias: CameraBias | None = None) -> torch.Tensor:
    """Confidence-weighted sum of the Huber reprojection errors (px) in the left-out camera."""
    Xc, _ = solve_points(model, view.features, view.valid, view.rows, bias_of(bias, view.joint))
    X = torch.from_numpy(view.center) + Xc / view.scale
    cam = X @ view.R.T + view.t
    proj = cam[:, :2] / cam[:, 2:].clamp_min(1e-6)
    err = torch.linalg.vector_norm(proj - view.target, dim=-1) * view.focal
    loss = torch.nn.functional.huber_loss(err, torch.zeros_like(err), delta=huber_px, reduction="none")
    return (loss * view.weight).sum()


def bone_cv2(model: ViewWeightNet, full, robust_points: np.ndarray, shape: tuple[int, int], bones,
             bias: CameraBias | None = None) -> torch.Tensor:
    """Mean squared CV of the bone lengths of one person's learned all-camera triangulation
    (robust points where the learned one does not apply)."""
    ok = torch.from_numpy(full.ok)
    feats, valid, rows = evidence_tensors(full)
    joint = torch.arange(len(ok)) % shape[1]
    Xc, _ = solve_points(model, feats[ok], valid[ok], rows[ok], bias_of(bias, joint[ok]))
    X = torch.from_numpy(np.nan_to_num(robust_points)).clone()
    X[ok] = torch.from_numpy(full.center) + Xc / full.scale
    X = X.reshape(*shape, 3)
    seen = torch.from_numpy(np.isfinite(robust_points).all(-1).reshape(shape))
    out = []
    for a, b in bones:
        both = seen[:, a] & seen[:, b]
        if int(both.sum()) >= 3:
            length = torch.linalg.vector_norm(X[both, a] - X[both, b], dim=-1)
            out.append(length.var() / length.mean() ** 2)
    return torch.stack(out).mean() if out else torch.zeros((), dtype=torch.float64)


def session_samples(rig: Rig, people: np.ndarray, joint_names, cfg: AdaptConfig, config: TriangulateConfig) -> list:
    """Per tracked person of ``people (T, P, C, J, 3)`` with enough targets: ``(held-out views,
    full evidence, robust points, (T, J))``."""
    names = list(joint_names)
    out = []
    for p in range(people.shape[1]):
        person = people[:, p]
        views = [v for c in range(len(rig)) if (v := held_out_view(rig, person, names, c, cfg, config)) is not None]
        n = sum(len(v.weight) for v in views)
        if n < cfg.min_targets:
            log.info("session adaptation: person %d skipped (%d held-out-view targets < %d)", p, n, cfg.min_targets)
            continue
        full, robust_points = evidence_of(rig, person, names, config)
        if full.ok.any():
            out.append((views, full, robust_points, (person.shape[0], person.shape[-2])))
    return out


def consistency_losses(model: ViewWeightNet, samples: list, bones, cfg: AdaptConfig,
                       bias: CameraBias | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(confidence-weighted Huber reprojection px in the left-out views, mean bone CV²)`` of
    ``samples``: the mean over all targets, or (``objective=worst``) the cameras' means weighted
    by a softmax of them (:data:`WORST_TEMPERATURE`), which leans on the worst left-out camera."""
    views = [v for vs, *_ in samples for v in vs]
    loss = torch.stack([reprojection_loss(model, v, cfg.huber_px, bias) for v in views])
    weight = torch.tensor([float(v.weight.sum()) for v in views], dtype=loss.dtype)
    if cfg.objective == "mean":
        reproj = loss.sum() / weight.sum()
    else:
        camera = torch.tensor([v.camera for v in views])
        per = torch.stack([loss[camera == c].sum() / weight[camera == c].sum() for c in camera.unique()])
        lean = torch.softmax(per.detach() / (WORST_TEMPERATURE * per.detach().mean()), 0)
        reproj = (lean * per).sum()
    cv2 = torch.stack([bone_cv2(model, full, pts, shape, bones, bias) for _, full, pts, shape in samples]).mean()
    return reproj, cv2


def trainable_parameters(model: ViewWeightNet, which: str, bias: CameraBias | None = None) -> list[torch.nn.Parameter]:
    """``"all"``: every weight; ``"last"``: the output layer only (its bias cancels in the softmax);
    ``"camera_bias"``: the per-camera logit bias only."""
    if which == "camera_bias":
        if bias is None:
            raise ValueError("adapt.trainable=camera_bias: no CameraBias given")
        return [bias.value]
    if which == "last":
        return [model.body[-1].weight]
    return list(model.parameters())


def fit_session(model: ViewWeightNet, samples: list, bones, cfg: AdaptConfig, validation: list | None = None,
                bias: CameraBias | None = None) -> tuple[list[tuple[float, float]], int]:
    """Adam on the consistency loss of ``samples`` (in place: ``model`` or, ``trainable=camera_bias``,
    ``bias``) -> (``(reprojection px, bone CV²)`` per step, the step the model ends at). With ``validation``
    samples the model ends at the step (0 = the start) whose validation loss (the same objective,
    without the anchor) was lowest: early stopping."""
    params = trainable_parameters(model, cfg.trainable, bias)
    start = [p.detach().clone() for p in params]
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
    history, best = [], (float("inf"), -1, None)
    modules = torch.nn.ModuleList([model] + ([bias] if bias is not None else []))

    def checkpoint(step: int):
        nonlocal best
        if validation:
            with torch.no_grad():
                reproj, cv2 = consistency_losses(model, validation, bones, cfg, bias)
            loss = float(reproj + cfg.bone_weight * cv2)
            if loss < best[0]:
                best = (loss, step, {k: v.clone() for k, v in modules.state_dict().items()})

    model.train()
    for step in range(cfg.steps):
        checkpoint(step)
        optimizer.zero_grad(set_to_none=True)
        reproj, cv2 = consistency_losses(model, samples, bones, cfg, bias)
        pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))
        (reproj + cfg.bone_weight * cv2 + cfg.anchor * pull).backward()
        optimizer.step()
        history.append((float(reproj.detach()), float(cv2.detach())))
    model.eval()
    checkpoint(cfg.steps)
    if best[2] is not None:
        modules.load_state_dict(best[2])
        log.info("session adaptation: early stopping kept step %d of %d (validation loss %.3f)", best[1], cfg.steps, best[0])
    with torch.no_grad():
        reproj, cv2 = consistency_losses(model, samples, bones, cfg, bias)
    history.append((float(reproj), float(cv2)))
    return history, best[1] if best[2] is not None else cfg.steps


def split_frames(people: np.ndarray, cfg: AdaptConfig) -> tuple[np.ndarray, np.ndarray]:
    """``people (T, ...)`` -> (training frames, held-out frames) by ``cfg.frames`` and ``cfg.train_fraction``."""
    if cfg.frames:
        people = people[: cfg.frames]
    cut = int(round(cfg.train_fraction * people.shape[0]))
    if cut < 10 or people.shape[0] - cut < 10:
        raise ValueError(f"session: {people.shape[0]} frames; the adaptation needs at least 10 frames to train on "
                         f"and 10 held out (adapt.frames / adapt.train_fraction)")
    return people[:cut], people[cut:]


#: Settings compared by :func:`cross_validate` for the defaults (``KEY=VALUE`` items of :func:`parse_adapt`):
#: the trainable parts, groups and anchors with the plain mean objective (as they were chosen), then the
#: objective with the chosen ones.
SELECTION_GRID = tuple([f"trainable=camera_bias groups={g} anchor={a} objective=mean" for g in (1, 4)
                        for a in (0.1, 1.0, 10.0)]
                       + ["trainable=all objective=mean", "trainable=last objective=mean",
                          "trainable=camera_bias groups=1 anchor=1.0 objective=worst"])


def cross_validate(model: ViewWeightNet, rig: Rig, people: np.ndarray, joint_names, grid=SELECTION_GRID,
                   folds: int = 3, config: TriangulateConfig | None = None) -> dict:
    """Model selection on the adaptation take alone: its training frames (``train_fraction`` of
    ``people (T, P, C, J, 3)``) cut into ``folds`` blocks; each block held out in turn, every setting
    of ``grid`` (space-separated ``KEY=VALUE`` items) adapted from ``model`` on the other blocks and
    scored on it -> ``{setting: {"held_out_view_px": mean over cameras per fold, "per_camera_px": the
    cameras' per fold, "bone_cv": per fold}}``
    (``"shipped"``: ``model`` as it is)."""
    config = config or TriangulateConfig()
    names = list(joint_names)
    bones = [(names.index(a), names.index(b)) for a, b in BONES if a in names and b in names]
    train, _ = split_frames(people, AdaptConfig())
    blocks = np.array_split(np.arange(train.shape[0]), folds)
    samples = [session_samples(rig, train[b], names, AdaptConfig(), config) for b in blocks]
    out = {}
    for f, block in enumerate(blocks):
        for setting in ("shipped",) + tuple(grid):
            adapted = copy.deepcopy(model)
            if setting != "shipped":
                cfg = parse_adapt(setting.split())
                bias = session_bias(adapted, rig, names, cfg)
                fit_session(adapted, [s for k in range(folds) if k != f for s in samples[k]], bones, cfg, None, bias)
                if cfg.trainable == "camera_bias":
                    adapted.camera_bias = bias.as_map()
            score = scores_of(adapted, rig, train[block], names, config)
            row = out.setdefault(setting, {"held_out_view_px": [], "per_camera_px": [], "bone_cv": []})
            row["held_out_view_px"].append(score["held_out_view_px"])
            row["per_camera_px"].append([float(v) for v in score["per_camera_px"]])
            row["bone_cv"].append(score["bone_cv"])
    return out


def session_bias(model: ViewWeightNet, rig: Rig, joint_names, cfg: AdaptConfig) -> CameraBias | None:
    """The camera bias trained (``trainable=camera_bias``) or held as it is (a model that has one)
    during the adaptation; None: neither."""
    if cfg.trainable == "camera_bias":
        return CameraBias(model, rig.names, joint_names, joint_groups(joint_names, cfg.groups))
    if not model.camera_bias:
        return None
    bias = CameraBias(model, rig.names, joint_names, np.arange(len(joint_names)))
    bias.value.requires_grad_(False)
    return bias


def adapt_to_session(model: ViewWeightNet, rig: Rig, people: np.ndarray, joint_names,
                     cfg: AdaptConfig | None = None, config: TriangulateConfig | None = None) -> dict:
    """Fine-tune ``model`` in place on the training frames of ``people (T, P, C, J, 3)`` (every
    tracked person's views) -> a summary with the held-out-view scores before and after on the
    held-out frames (:func:`session_scores`)."""
    cfg, config = cfg or AdaptConfig(), config or TriangulateConfig()
    if len(rig) < 3:
        raise ValueError(f"session adaptation: needs at least 3 cameras (one left out, two to triangulate), got {len(rig)}")
    names = list(joint_names)
    bones = [(names.index(a), names.index(b)) for a, b in BONES if a in names and b in names]
    train, held = split_frames(people, cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        before = scores_of(model, rig, held, names, config, cfg.min_target_confidence)
        cut = train.shape[0] - int(round(cfg.validation_fraction * train.shape[0]))
        samples = session_samples(rig, train[:cut], names, cfg, config)
        if not samples:
            raise ValueError("session: no tracked person has enough held-out-view targets in the training frames; "
                             "check the calibration and the keypoint format")
        validation = session_samples(rig, train[cut:], names, cfg, config) if cut < train.shape[0] else None
        bias = session_bias(model, rig, names, cfg)
        history, kept = fit_session(model, samples, bones, cfg, validation, bias)
        if cfg.trainable == "camera_bias":
            model.camera_bias = bias.as_map()
        after = scores_of(model, rig, held, names, config, cfg.min_target_confidence)
    finally:
        torch.set_num_threads(threads)
    seconds = round(time.perf_counter() - t0, 1)
    log.info("session adaptation (%d people, %d steps, %.1f s): training Huber loss %.2f -> %.2f, bone CV^2 %.5f -> %.5f; "
             "held-out frames: held-out-view reprojection %.2f -> %.2f px, bone-length CV %.4f -> %.4f",
             len(samples), cfg.steps, seconds, *history[0][:1], history[-1][0], history[0][1], history[-1][1],
             before["held_out_view_px"], after["held_out_view_px"], before["bone_cv"], after["bone_cv"])
    return {"adapt": asdict(cfg), "people": len(samples), "frames_trained": int(train.shape[0]),
            "frames_held_out": int(held.shape[0]), "frames_validation": int(train.shape[0] - cut),
            "steps_kept": kept, "train_huber_loss": [history[0][0], history[-1][0]],
            "train_bone_cv2": [history[0][1], history[-1][1]], "held_out_before": before,
            "held_out_after": after, "seconds": seconds, "camera_bias": model.camera_bias}


def session_people(session, calibration, keypoint_format: str = "body_25b", fps: float = 60.0):
    """``(rig, people (T, P, C, J, 3), joint_names)`` of a take: keypoints from ``session`` (its
    ``pose/`` folder when it has one: OpenPose JSON per camera or ``mocap detect``'s .npz) and every
    person's views from our own matching and linking (:func:`mocap.track.people.people_views`)."""
    from mocap.calibration.io import load_calibration
    from mocap.config import ProcessConfig
    from mocap.io.openpose import align_to_rig
    from mocap.pipeline import load_keypoints
    from mocap.track.people import people_views

    session = Path(session)
    if not session.is_dir():
        raise FileNotFoundError(f"--session {session}: not a folder; give the take's folder (with pose/ or the keypoints)")
    folder = session / "pose" if (session / "pose").is_dir() else session
    rig = load_calibration(calibration)
    kp = align_to_rig(load_keypoints(folder, keypoint_format), rig)
    config = ProcessConfig()
    people = people_views(kp, rig, kp.fps or fps, config.match, config.triangulate, config.link)
    if people.shape[1] == 0:
        raise ValueError(f"--session {session}: no person is seen by two cameras in any frame; check the calibration")
    return rig, people, list(kp.joint_names)
