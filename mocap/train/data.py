"""Synthetic training and held-out sets for the learned triangulation (numpy).

Training draws scenes from a distribution of rigs (4-12 cameras, ring radius, heights, focal
lengths), noise levels, outlier and swap rates and CMU clips; the held-out set of
``mocap bench triangulate`` (clip ``131_01``, ring rig of seed 0, noise 2 and 5 px, outliers
0 / 10 / 20 %, swaps 0 / 10 %) shares none of them: :data:`TRAIN_CLIPS`, :data:`TRAIN_NOISE_PX`,
:data:`TRAIN_OUTLIERS`, :data:`TRAIN_SWAPS` and the seeds from :data:`TRAIN_SEED_BASE` up.
"""

from __future__ import annotations

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


def pad_views(a: np.ndarray, C: int, fill=0) -> np.ndarray:
    """Pad axis 1 (views) of ``a`` to ``C`` with ``fill``."""
    pad = [(0, 0)] * a.ndim
    pad[1] = (0, C - a.shape[1])
    return np.pad(a, pad, constant_values=fill)


def evidence_set(scenarios: list[Scenario], config: TriangulateConfig | None = None) -> dict:
    """Robust triangulation + evidence of every scenario, points concatenated, views padded to
    :data:`MAX_CAMERAS`: ``features (N, C, F)``, ``valid``, ``rows``, ``gt_cond (N, 3)`` (the
    truth in each scene's conditioned frame), ``scale (N,)``, ``robust_err (N,)`` metres.
    Only points with a truth and a robust point and usable evidence are kept."""
    config = config or TriangulateConfig()
    parts = []
    for sc in scenarios:
        scene, person, gt = scenario_person(sc)
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
