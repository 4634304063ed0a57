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
weights (``anchor``), few steps and a small learning rate keep it near them. Seeded, full batch.
``trainable=last`` adapts the output layer only; ``validation_fraction`` keeps the last part of
the training frames apart and ends at the step with the lowest consistency loss there (early
stopping).

Only the first ``train_fraction`` of the frames is trained on; :func:`session_scores` reports
held-out-view reprojection and bone-length CV on the rest (or on another take) through the same
inference path as ``--triangulation learned`` (fallbacks to robust included).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from mocap.evaluate import BONES, bone_length_cv
from mocap.geometry import Rig, project_rig
from mocap.geometry.camera import pixel_to_normalized
from mocap.triangulation.features import learned_inputs, person_evidence
from mocap.triangulation.learned import ViewWeightNet, evidence_tensors, save_weights, solve_points
from mocap.triangulation.people import TriangulateConfig, triangulate_people

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of the session adaptation (``--adapt KEY=VALUE``)."""

    seed: int = 0
    """Seed of torch (the adaptation is full batch: nothing else is random)."""
    steps: int = 100
    """Adam steps."""
    lr: float = 1e-3
    """Adam learning rate."""
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
    trainable: str = "all"
    """Weights adapted: ``all`` or ``last`` (the output layer only: a re-weighting of the learned evidence)."""
    validation_fraction: float = 0.0
    """Share of the training frames (from their end) used only for early stopping (0: none, all steps kept)."""

    def __post_init__(self):
        if self.steps < 0 or self.frames < 0 or self.threads < 1:
            raise ValueError(f"adapt: steps and frames must be >= 0 and threads >= 1, got {self.steps}, "
                             f"{self.frames}, {self.threads}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"adapt.train_fraction: expected a value in (0, 1), got {self.train_fraction}")
        if self.trainable not in ("all", "last"):
            raise ValueError(f"adapt.trainable: expected all or last, got {self.trainable!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"adapt.validation_fraction: expected a value in [0, 1), got {self.validation_fraction}")
        if not (self.lr > 0 and self.anchor >= 0 and self.huber_px > 0 and self.bone_weight >= 0):
            raise ValueError("adapt: lr and huber_px must be > 0, anchor and bone_weight >= 0")


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
                       torch.from_numpy(target[idx, 2].copy()), float(cam.K[0, 0]))


def reprojection_loss(model: ViewWeightNet, view: HeldOutView, huber_px: float) -> torch.Tensor:
    """Confidence-weighted sum of the Huber reprojection errors (px) in the left-out camera."""
    Xc, _ = solve_points(model, view.features, view.valid, view.rows)
    X = torch.from_numpy(view.center) + Xc / view.scale
    cam = X @ view.R.T + view.t
    proj = cam[:, :2] / cam[:, 2:].clamp_min(1e-6)
    err = torch.linalg.vector_norm(proj - view.target, dim=-1) * view.focal
    loss = torch.nn.functional.huber_loss(err, torch.zeros_like(err), delta=huber_px, reduction="none")
    return (loss * view.weight).sum()


def bone_cv2(model: ViewWeightNet, full, robust_points: np.ndarray, shape: tuple[int, int], bones) -> torch.Tensor:
    """Mean squared CV of the bone lengths of one person's learned all-camera triangulation
    (robust points where the learned one does not apply)."""
    ok = torch.from_numpy(full.ok)
    feats, valid, rows = evidence_tensors(full)
    Xc, _ = solve_points(model, feats[ok], valid[ok], rows[ok])
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


def consistency_losses(model: ViewWeightNet, samples: list, bones, cfg: AdaptConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean confidence-weighted Huber reprojection px in the left-out views, mean bone CV²)`` of ``samples``."""
    weight_sum = sum(float(v.weight.sum()) for views, *_ in samples for v in views)
    reproj = sum(reprojection_loss(model, v, cfg.huber_px) for views, *_ in samples for v in views) / weight_sum
    cv2 = torch.stack([bone_cv2(model, full, pts, shape, bones) for _, full, pts, shape in samples]).mean()
    return reproj, cv2


def trainable_parameters(model: ViewWeightNet, which: str) -> list[torch.nn.Parameter]:
    """``"all"``: every weight; ``"last"``: the output layer only (its bias cancels in the softmax)."""
    if which == "last":
        return [model.body[-1].weight]
    return list(model.parameters())


def fit_session(model: ViewWeightNet, samples: list, bones, cfg: AdaptConfig,
                validation: list | None = None) -> tuple[list[tuple[float, float]], int]:
    """Adam on the consistency loss of ``samples`` (in place) -> (``(reprojection px, bone CV²)`` per
    step, the step the model ends at). With ``validation`` samples the model ends at the step (0 = the start) whose validation
    loss (the same objective, without the anchor) was lowest: early stopping."""
    params = trainable_parameters(model, cfg.trainable)
    start = [p.detach().clone() for p in params]
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    history, best = [], (float("inf"), -1, None)

    def checkpoint(step: int):
        nonlocal best
        if validation:
            with torch.no_grad():
                reproj, cv2 = consistency_losses(model, validation, bones, cfg)
            loss = float(reproj + cfg.bone_weight * cv2)
            if loss < best[0]:
                best = (loss, step, {k: v.clone() for k, v in model.state_dict().items()})

    model.train()
    for step in range(cfg.steps):
        checkpoint(step)
        optimizer.zero_grad(set_to_none=True)
        reproj, cv2 = consistency_losses(model, samples, bones, cfg)
        pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))
        (reproj + cfg.bone_weight * cv2 + cfg.anchor * pull).backward()
        optimizer.step()
        history.append((float(reproj.detach()), float(cv2.detach())))
    model.eval()
    checkpoint(cfg.steps)
    if best[2] is not None:
        model.load_state_dict(best[2])
        log.info("session adaptation: early stopping kept step %d of %d (validation loss %.3f)", best[1], cfg.steps, best[0])
    with torch.no_grad():
        reproj, cv2 = consistency_losses(model, samples, bones, cfg)
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
        history, kept = fit_session(model, samples, bones, cfg, validation)
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
            "held_out_after": after, "seconds": seconds}


def left_out_camera_errors(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig, camera: int,
                           min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Every person of ``people (T, P, C, J, 3)`` triangulated without ``camera`` -> (px ``(T, P, J)``
    from its projection into ``camera`` to that camera's detections, ``(T, P, J)`` where the
    detection's confidence is >= ``min_confidence``)."""
    seen = people.copy()
    seen[:, :, camera] = np.nan
    pts = triangulate_people(rig, seen, joint_names, config).points  # (T, P, J, 3)
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(project_rig(rig, pts)[..., camera, :] - people[:, :, camera, :, :2], axis=-1)
        use = people[:, :, camera, :, 2] >= min_confidence
    return err, use


def held_out_view_errors(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
                         min_confidence: float) -> tuple[list[float], float]:
    """Every camera left out in turn, every person of ``people (T, P, C, J, 3)`` triangulated from
    the others with ``config`` -> (median px per camera to the left-out detections with confidence
    >= ``min_confidence``, mean over people of the mean bone-length CV of the all-camera points)."""
    per_camera = []
    for c in range(len(rig)):
        err, use = left_out_camera_errors(rig, people, joint_names, config, c, min_confidence)
        err = err[use]
        per_camera.append(float(np.nanmedian(err)) if np.isfinite(err).any() else float("nan"))
    pts = triangulate_people(rig, people, joint_names, config).points
    cvs = [np.nanmean(list(bone_length_cv(pts[:, p], joint_names).values())) for p in range(pts.shape[1])
           if np.isfinite(pts[:, p]).all(-1).sum() >= 10]
    return per_camera, float(np.mean(cvs)) if cvs else float("nan")


def per_person_held_out_view_errors(rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
                                    min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`held_out_view_errors`, per person of ``people (T, P, C, J, 3)``: -> (median px
    ``(P, C)`` into each left-out camera, mean bone-length CV ``(P,)`` of the all-camera points)."""
    px = np.full((people.shape[1], len(rig)), np.nan)
    for c in range(len(rig)):
        err, use = left_out_camera_errors(rig, people, joint_names, config, c, min_confidence)
        for p in range(people.shape[1]):
            e = err[:, p][use[:, p]]
            px[p, c] = np.nanmedian(e) if np.isfinite(e).any() else np.nan
    pts = triangulate_people(rig, people, joint_names, config).points
    cv = [np.nanmean(list(bone_length_cv(pts[:, p], joint_names).values())) for p in range(pts.shape[1])]
    return px, np.asarray(cv, dtype=float)


def scores_of(model: ViewWeightNet, rig: Rig, people: np.ndarray, joint_names, config: TriangulateConfig,
              min_confidence: float = 0.3) -> dict:
    """:func:`held_out_view_errors` of the learned mode with ``model`` (through a temporary weights file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        save_weights(model, path, {})
        per_camera, cv = held_out_view_errors(rig, people, joint_names,
                                              replace(config, method="learned", learned_weights=str(path)),
                                              min_confidence)
    return {"held_out_view_px": float(np.nanmean(per_camera)), "per_camera_px": per_camera, "bone_cv": cv}


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
