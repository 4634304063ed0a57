"""Synthetic training and held-out sets for the learned triangulation (numpy).

Training draws scenes from a distribution of rigs (4-12 cameras, ring radius, heights, focal
lengths), noise levels, outlier and swap rates and CMU clips; the held-out set of
``mocap bench triangulate`` (clip ``131_01``, ring rig of seed 0, noise 2 and 5 px, outliers
0 / 10 / 20 %, swaps 0 / 10 %) shares none of them: :data:`TRAIN_CLIPS`, :data:`TRAIN_NOISE_PX`,
:data:`TRAIN_OUTLIERS`, :data:`TRAIN_SWAPS` and the seeds from :data:`TRAIN_SEED_BASE` up.

The synthetic detector's confidences are calibrated (they fall as its error grows); real ones are
not (OpenPose on the Pose2Sim two-person take gives one performer 1.0 at every joint, 10-30 px
off). Two options of ``mocap train`` (off in the shipped weights) change the training captures:
``calibration_rate``, the share whose views' confidences go through a random monotone or
degenerate map (:func:`recalibrate_confidence`), so that the network learns to lean on the
agreement between views where confidence says nothing; ``bias_rate``, the share with a
systematic detector error (:func:`add_view_bias`); ``detector_bias_rate``, the share whose
detections get a detector's viewpoint-dependent bias (a joint group shifted together in a view,
slowly varying, more when seen from the side, confidence untouched:
:func:`mocap.synthetic.detector_bias.add_detector_bias`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mocap.triangulation.features import FEATURE_NAMES, learned_inputs, person_evidence
from mocap.triangulation.people import TriangulateConfig, triangulate_people

TRAIN_CLIPS = ("01_01", "131_03")
TRAIN_NOISE_PX = (1.0, 3.0, 4.0, 7.0)
TRAIN_OUTLIERS = (0.0, 0.05, 0.15)
TRAIN_SWAPS = (0.0, 0.05)
#: Training scene seeds start here (the benchmark's scenes use seeds below it).
TRAIN_SEED_BASE = 10_000
#: Views are padded to this many (the training rigs' largest).
MAX_CAMERAS = 12
#: Mixed with a scenario's seed to draw its confidence re-calibration.
CALIBRATION_SEED = 7
#: Mixed with a scenario's seed to draw its systematic detector error.
BIAS_SEED = 11
#: Mixed with a scenario's seed to draw its viewpoint-dependent detector bias.
DETECTOR_BIAS_SEED = 13


@dataclass(frozen=True)
class Scenario:
    """One synthetic capture of one performer (the ground-truth detection per view is given)."""

    cameras: int
    noise_px: float
    outlier_rate: float
    swap_rate: float
    frames: int
    seed: int
    clip: str = "131_01"
    other_clip: str | None = None
    rig_radius: float = 4.5
    camera_height: float = 2.2
    focal_range: tuple[float, float] = (900.0, 1800.0)
    temporal: bool = True
    """Frames are consecutive: the temporal checks and features are used."""

    def synthetic_config(self):
        from mocap.synthetic import SyntheticConfig

        clips = (self.clip,) if self.other_clip is None else (self.clip, self.other_clip)
        return SyntheticConfig(seed=self.seed, num_frames=self.frames, num_people=len(clips), clips=clips,
                               num_cameras=self.cameras, noise_px=self.noise_px, outlier_rate=self.outlier_rate,
                               swap_rate=self.swap_rate, rig_radius=self.rig_radius,
                               camera_height=self.camera_height, focal_range=self.focal_range)


def scenario_person(sc: Scenario):
    """``(scene, person (T, C, J, 3), gt (T, J, 3))``: person 0's detection in every view
    (NaN where it was missed), as the benchmark gives it."""
    from mocap.synthetic import make_scene

    scene = make_scene(sc.synthetic_config())
    is_p0 = scene.gt_person_index == 0  # (T, C, P')
    pick = np.argmax(is_p0, axis=-1)
    data = np.take_along_axis(scene.keypoints.data, pick[..., None, None, None], axis=2)[:, :, 0]
    data[~is_p0.any(-1)] = np.nan
    return scene, data, scene.gt_positions[:, 0]


def training_scenarios(count: int, frames: int, seed: int = 0) -> list[Scenario]:
    """``count`` scenarios drawn from the training distribution (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        clip = TRAIN_CLIPS[i % len(TRAIN_CLIPS)]
        other = TRAIN_CLIPS[(i + 1) % len(TRAIN_CLIPS)] if rng.uniform() < 0.5 else None
        f_lo = float(rng.uniform(600, 1200))
        out.append(Scenario(
            cameras=int(rng.integers(4, MAX_CAMERAS + 1)), noise_px=float(rng.choice(TRAIN_NOISE_PX)),
            outlier_rate=float(rng.choice(TRAIN_OUTLIERS)), swap_rate=float(rng.choice(TRAIN_SWAPS)),
            frames=frames, seed=TRAIN_SEED_BASE + 1000 * seed + i, clip=clip, other_clip=other,
            rig_radius=float(rng.uniform(3.2, 6.5)), camera_height=float(rng.uniform(1.3, 3.2)),
            focal_range=(f_lo, f_lo + float(rng.uniform(200, 1000))), temporal=bool(rng.uniform() < 0.8)))
    return out


#: The maps of :func:`recalibrate_confidence`, drawn with equal chances.
CALIBRATION_MAPS = ("saturated", "constant", "gamma", "affine", "offset")


def confidence_map(kind: str, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Confidences ``c`` through a random map of kind ``kind`` (one of :data:`CALIBRATION_MAPS`):
    all 1.0, one constant, ``c ** gamma`` (gamma 0.2-5), ``a c + b`` clipped, ``c`` plus an offset."""
    if kind == "saturated":
        return np.ones_like(c)
    if kind == "constant":
        return np.full_like(c, rng.uniform(0.3, 1.0))
    if kind == "gamma":
        return c ** np.exp(rng.uniform(np.log(0.2), np.log(5.0)))
    if kind == "affine":
        return np.clip(rng.uniform(0.3, 2.0) * c + rng.uniform(-0.8, 0.3), 0.0, 1.0)
    if kind == "offset":
        return np.clip(c + rng.uniform(-0.4, 0.1), 0.0, 1.0)
    raise ValueError(f"confidence map {kind!r}: expected one of {', '.join(CALIBRATION_MAPS)}")


def recalibrate_confidence(person: np.ndarray, rng: np.random.Generator, min_confidence: float,
                           rate: float) -> np.ndarray:
    """``person (T, C, J, 3)`` with, with probability ``rate``, its confidences re-calibrated: one
    map of :data:`CALIBRATION_MAPS` for every view (one detector) or, as often, a map drawn per
    view, each view left as it is with probability 0.3. The joints that reach ``min_confidence``
    stay above it (the map changes what the confidence says, not which joints are seen)."""
    out = person.copy()
    if rng.uniform() >= rate:
        return out
    C = person.shape[1]
    shared = rng.uniform() < 0.5
    kinds = [CALIBRATION_MAPS[rng.integers(len(CALIBRATION_MAPS))]] * C if shared else \
        [CALIBRATION_MAPS[rng.integers(len(CALIBRATION_MAPS))] if rng.uniform() < 0.7 else None for _ in range(C)]
    floor = min(1.0, min_confidence + 0.01)
    for c, kind in enumerate(kinds):
        if kind is None:
            continue
        conf = person[:, c, :, 2]
        seen = np.isfinite(conf) & (np.nan_to_num(conf) >= min_confidence)
        new = np.maximum(confidence_map(kind, np.clip(np.nan_to_num(conf), 0.0, 1.0), rng), floor)
        out[:, c, :, 2] = np.where(seen, new, conf)
    return out


def add_view_bias(person: np.ndarray, rng: np.random.Generator, min_confidence: float, rate: float) -> np.ndarray:
    """``person (T, C, J, 3)`` with, with probability ``rate``, a systematic detector error: each
    view × joint moved by one offset for the whole capture (normal, a random 0.5-3 % of the
    person's median size in that view per axis), as a real detector places a joint differently
    seen from different sides."""
    from mocap.match.epipolar import person_sizes

    out = person.copy()
    if rng.uniform() >= rate:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a view that never sees the person
        size = np.nan_to_num(np.nanmedian(person_sizes(person, min_confidence), axis=0))  # (C,)
    offset = rng.normal(0.0, 1.0, person.shape[1:3] + (2,)) * rng.uniform(0.005, 0.03) * size[:, None, None]
    out[..., :2] += offset[None]
    return out


def pad_views(a: np.ndarray, C: int, fill=0) -> np.ndarray:
    """Pad axis 1 (views) of ``a`` to ``C`` with ``fill``."""
    pad = [(0, 0)] * a.ndim
    pad[1] = (0, C - a.shape[1])
    return np.pad(a, pad, constant_values=fill)


def training_detections(scene, person: np.ndarray, gt: np.ndarray, seed: int, min_confidence: float,
                        calibration_rate: float = 0.0, bias_rate: float = 0.0,
                        detector_bias_rate: float = 0.0) -> np.ndarray:
    """``person (T, C, J, 3)`` of a training scenario of seed ``seed`` through the training error
    options, each drawn from its own generator (the same scenario gets the same draws whatever the
    other options are): :func:`recalibrate_confidence` (``calibration_rate``), :func:`add_view_bias`
    (``bias_rate``), :func:`~mocap.synthetic.detector_bias.add_detector_bias` (``detector_bias_rate``,
    from the truth ``gt (T, J, 3)``)."""
    from mocap.synthetic.detector_bias import DetectorBias, add_detector_bias

    person = recalibrate_confidence(person, np.random.default_rng([CALIBRATION_SEED, seed]), min_confidence,
                                    calibration_rate)
    person = add_view_bias(person, np.random.default_rng([BIAS_SEED, seed]), min_confidence, bias_rate)
    return add_detector_bias(person, scene.rig, gt, scene.joint_names, np.random.default_rng([DETECTOR_BIAS_SEED, seed]),
                             detector_bias_rate, DetectorBias(fps=float(scene.fps)))


def evidence_set(scenarios: list[Scenario], config: TriangulateConfig | None = None,
                 calibration_rate: float = 0.0, bias_rate: float = 0.0, detector_bias_rate: float = 0.0) -> dict:
    """Robust triangulation + evidence of every scenario, points concatenated, views padded to
    :data:`MAX_CAMERAS`: ``features (N, C, F)``, ``valid``, ``rows``, ``gt_cond (N, 3)`` (the
    truth in each scene's conditioned frame), ``scale (N,)``, ``robust_err (N,)`` metres.
    Only points with a truth and a robust point and usable evidence are kept. A share
    ``calibration_rate`` of the scenarios has its confidences re-calibrated
    (:func:`recalibrate_confidence`, drawn from the scenario's seed) before the robust stage, and a
    share ``bias_rate`` gets a systematic detector error (:func:`add_view_bias`), and a share
    ``detector_bias_rate`` a viewpoint-dependent detector bias (:func:`training_detections`)."""
    config = config or TriangulateConfig()
    parts = []
    for sc in scenarios:
        scene, person, gt = scenario_person(sc)
        person = training_detections(scene, person, gt, sc.seed, config.min_confidence, calibration_rate, bias_rate,
                                     detector_bias_rate)
        tri = triangulate_people(scene.rig, person, scene.joint_names, config, temporal=sc.temporal)
        person, ref = learned_inputs(scene.rig, person, tri.points, scene.joint_names, config, sc.temporal)
        [(_, ev)] = person_evidence(scene.rig, person, tri.points, tri.inliers, config.min_confidence, ref)
        gt = gt.reshape(-1, 3)
        keep = ev.ok & np.isfinite(gt).all(-1)
        parts.append(dict(
            features=pad_views(ev.features[keep], MAX_CAMERAS), valid=pad_views(ev.valid[keep], MAX_CAMERAS, False),
            rows=pad_views(ev.rows[keep], MAX_CAMERAS), gt_cond=(gt[keep] - ev.center) * ev.scale,
            scale=np.full(keep.sum(), ev.scale),
            robust_err=np.linalg.norm(tri.points.reshape(-1, 3)[keep] - gt[keep], axis=-1)))
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    assert out["features"].shape[-1] == len(FEATURE_NAMES)
    return out
