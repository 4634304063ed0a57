"""A 2D keypoint detector's errors, simulated on exact projections of ground-truth 3D joints.

Error sources (each switchable in :class:`~mocap.synthetic.config.SyntheticConfig`), in the
order applied, all vectorised over frames × cameras × people × joints:

1. Pixel noise, Gaussian, σ = ``noise_px`` × (person's box height / ``reference_height_px``)
   × a per-joint factor (COCO keypoint sigmas / their mean: the face is located more precisely
   than the hips), optionally AR(1)-correlated over frames.
2. Occlusion by other bodies (:mod:`mocap.synthetic.occlusion`): a joint hidden from the camera
   is dropped (NaN) or degraded (extra noise, lower confidence).
3. Confidence: OKS-like ``confidence_max · exp(-½ (error / (confidence_scale · box height))²)``
   with a relative jitter, so that bigger errors get lower confidence.
4. Out of frame: joints whose true projection is outside the image or behind the camera -> NaN.
5. Gross outliers: a reported joint thrown uniformly into 1.5× its person's box.
6. Left/right swaps of a whole detection. 7. Missed people. 8. Spurious (fake) people.
9. The detections of each view and frame are compacted and shuffled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from mocap.geometry.camera import Rig, project, world_to_cam
from mocap.synthetic.occlusion import occluded_by_others
from mocap.synthetic.rig import valid_normalized_radius

# COCO keypoint sigmas (Lin et al. 2014, OKS), extended to the other canonical joints by the
# nearest COCO joint; divided by the COCO-17 mean to give a relative noise factor.
_COCO_SIGMA = {"nose": .026, "eye": .025, "ear": .035, "shoulder": .079, "elbow": .072, "wrist": .062,
               "hip": .107, "knee": .087, "ankle": .089, "heel": .089, "toe": .089, "foot_index": .089,
               "pinky": .062, "index": .062, "thumb": .062, "mouth": .026, "head_top": .035,
               "neck": .079, "pelvis": .107}
_COCO_MEAN = np.mean([.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
                      .087, .087, .089, .089])


def joint_noise_factors(joint_names) -> np.ndarray:
    """Relative noise factor ``(J,)`` per canonical joint (1 = average COCO joint)."""
    out = []
    for name in joint_names:
        key = next(k for k in sorted(_COCO_SIGMA, key=len, reverse=True) if k in name)
        out.append(_COCO_SIGMA[key] / _COCO_MEAN)
    return np.array(out)


def mirror_index(joint_names) -> np.ndarray:
    """``(J,)`` index of each joint's left/right counterpart (itself for central joints)."""
    names = list(joint_names)

    def other(n: str) -> str:
        for a, b in (("left", "right"), ("right", "left")):
            if a in n:
                return n.replace(a, b)
        return n

    return np.array([names.index(other(n)) if other(n) in names else i for i, n in enumerate(names)])


@dataclass(frozen=True, eq=False)
class DetectionErrors:
    """Which errors the synthetic detector applied. ``P'`` is the output's detection axis.

    Attributes:
        out_of_frame: ``(T, C, P', J)`` true projection outside the image / behind the camera.
        occluded: ``(T, C, P', J)`` hidden behind another person in this view.
        occlusion_dropped: ``(T, C, P', J)`` occluded and reported missing (the rest degraded).
        outlier: ``(T, C, P', J)`` thrown to a random place.
        swapped: ``(T, C, P')`` left/right labels of the whole detection swapped.
        spurious: ``(T, C, P')`` a fake person (ground-truth index -1).
        noise_sigma_px: ``(T, C, P', J)`` σ (px) of the Gaussian noise applied; NaN in empty slots.
        person_visible: ``(T, C, P)`` ground-truth person p had at least one reportable joint in
            view c (before random misses), in ground-truth order.
        missed: ``(T, C, P)`` visible ground-truth person dropped at random, ground-truth order.
    """

    out_of_frame: np.ndarray
    occluded: np.ndarray
    occlusion_dropped: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    spurious: np.ndarray
    noise_sigma_px: np.ndarray
    person_visible: np.ndarray
    missed: np.ndarray


def project_rig_points(rig: Rig, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(T, C, P, J, 2)`` of points ``(T, P, J, 3)`` in every camera, and a mask
    ``(T, C, P, J)`` of those in the image: in front of the camera, inside the lens model's
    monotonic range (where the projection is meaningful) and within the image bounds."""
    xy, inside = [], []
    for cam in rig.cameras:
        uv = project(cam, points_world)
        pc = world_to_cam(cam, points_world)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.linalg.norm(pc[..., :2], axis=-1) / pc[..., 2]
        W, H = cam.size
        ok = (pc[..., 2] > 1e-6) & (r <= valid_normalized_radius(cam.dist))
        ok &= (uv[..., 0] >= -0.5) & (uv[..., 0] <= W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] <= H - 0.5)
        xy.append(uv)
        inside.append(ok)
    return np.stack(xy, axis=1), np.stack(inside, axis=1)


def _box_height(uv: np.ndarray) -> np.ndarray:
    """Bounding-box height ``(...)`` px of points ``(..., J, 2)`` (NaN if none is finite)."""
    v = uv[..., 1]
    finite = np.isfinite(v)
    hi = np.where(finite, v, -np.inf).max(axis=-1)
    lo = np.where(finite, v, np.inf).min(axis=-1)
    return np.where(finite.any(axis=-1), hi - lo, np.nan)


def simulate_detections(rig: Rig, body_world: np.ndarray, body_names, joint_names, config,
                        rng: np.random.Generator):
    """Simulate a detector on people ``body_world (T, P, Jb, 3)`` (canonical ``body_names``).

    Returns ``(data (T, C, P', J, 3), gt_person_index (T, C, P'), errors, gt_xy (T, C, P, J, 2))``:
    x px, y px, confidence (NaN missing) for ``joint_names``; the ground-truth person of each
    detection (-1 spurious, -2 empty slot); a :class:`DetectionErrors`; the exact projections.
    """
    # The random draws happen in the order of the module docstring's steps; keep it so a seed
    # gives the same detections.
    cfg = config
    J = len(joint_names)
    idx = np.array([list(body_names).index(n) for n in joint_names])
    uv_body, inside_body = project_rig_points(rig, body_world)
    gt_xy, inside = uv_body[..., idx, :], inside_body[..., idx]
    height = _box_height(uv_body)                                     # (T, C, P)
    scale = height / cfg.reference_height_px
    factors = joint_noise_factors(joint_names) if cfg.per_joint_noise else np.ones(J)
    sigma = cfg.noise_px * scale[..., None] * factors                 # (T, C, P, J)

    err = _pixel_noise(sigma, cfg, rng)
    occluded, dropped, err = _occlusion(err, scale, body_world, idx, body_names, rig, cfg, rng)
    xy = gt_xy + err
    conf = _confidence(err, height, occluded & ~dropped, cfg, rng)

    out_of_frame = ~inside if cfg.out_of_frame else ~np.isfinite(gt_xy).all(axis=-1)
    missing = dropped | out_of_frame
    xy = np.where(missing[..., None], np.nan, xy)
    conf = np.where(missing, np.nan, conf)
    xy, conf, outlier = _throw_outliers(xy, conf, uv_body, rig, cfg, rng)

    data = np.concatenate([xy, conf[..., None]], axis=-1)             # (T, C, P, J, 3)
    visible = np.isfinite(data[..., 0]).any(axis=-1)                  # (T, C, P)
    swapped = visible & (rng.uniform(size=visible.shape) < cfg.swap_rate)
    mirror = mirror_index(joint_names)
    per_joint = {"data": data, "out_of_frame": out_of_frame, "occluded": occluded, "occlusion_dropped": dropped,
                 "outlier": outlier, "noise_sigma_px": sigma}
    per_joint = {k: np.where(swapped.reshape(swapped.shape + (1,) * (a.ndim - 3)), a[:, :, :, mirror], a)
                 for k, a in per_joint.items()}
    missed = visible & (rng.uniform(size=visible.shape) < cfg.miss_rate)

    fake, fake_sigma = _spurious(gt_xy, visible, height, factors, rig, cfg, rng)   # (T, C, J, 3)
    data, gt_index, errors = _fill_slots(per_joint, swapped, visible, missed, fake, fake_sigma, cfg.shuffle, rng)
    return data, gt_index, errors, gt_xy


def _pixel_noise(sigma: np.ndarray, cfg, rng: np.random.Generator) -> np.ndarray:
    """Step 1: Gaussian pixel error ``(T, C, P, J, 2)`` of σ ``sigma (T, C, P, J)``, AR(1) over frames."""
    white = rng.standard_normal(sigma.shape + (2,))
    if cfg.noise_correlation > 0 and len(sigma) > 1:
        rho = cfg.noise_correlation
        gain = np.sqrt(1 - rho * rho)
        # y_t = rho y_{t-1} + gain w_t with y_0 = w_0 keeps unit variance at every frame.
        white = lfilter([gain], [1.0, -rho], white, axis=0, zi=((1 - gain) * white[:1]))[0]
    return sigma[..., None] * white


def _occlusion(err: np.ndarray, scale: np.ndarray, body_world: np.ndarray, idx: np.ndarray, body_names, rig: Rig,
               cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: joints hidden by other bodies ``occluded (T, C, P, J)``, those of them reported
    missing ``dropped``, and ``err`` with extra noise on the rest (degraded)."""
    T, C, P, J = err.shape[:4]
    occluded = np.zeros((T, C, P, J), dtype=bool)
    dropped = np.zeros_like(occluded)
    if cfg.occlusion and P > 1:
        occluded = occluded_by_others(body_world[:, :, idx], body_world, rig.centers, body_names)
        dropped = occluded & (rng.uniform(size=occluded.shape) < cfg.occlusion_drop_rate)
        degrade = occluded & ~dropped
        extra = cfg.occluded_noise_px * scale[..., None, None] * rng.standard_normal((T, C, P, J, 2))
        err = np.where(degrade[..., None], err + extra, err)
    return occluded, dropped, err


def _confidence(err: np.ndarray, height: np.ndarray, degraded: np.ndarray, cfg,
                rng: np.random.Generator) -> np.ndarray:
    """Step 3: OKS-like confidence ``(T, C, P, J)`` of pixel errors ``err (T, C, P, J, 2)``,
    scaled down where the joint is ``degraded`` (occluded but reported)."""
    err_rel = np.linalg.norm(err, axis=-1) / (cfg.confidence_scale * height[..., None])
    err_rel = np.where(np.linalg.norm(err, axis=-1) == 0, 0.0, err_rel)
    conf = cfg.confidence_max * np.exp(-0.5 * err_rel ** 2)
    if cfg.confidence_jitter > 0:
        conf = conf * (1 + cfg.confidence_jitter * rng.standard_normal(conf.shape))
    conf = np.where(degraded, conf * cfg.occluded_confidence_scale, conf)
    return np.clip(conf, 0.01, 1.0)


def _throw_outliers(xy: np.ndarray, conf: np.ndarray, uv_body: np.ndarray, rig: Rig, cfg,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 5: gross outliers among the reported joints, thrown into 1.5x the person's true box;
    returns ``xy``, ``conf`` and the ``outlier (T, C, P, J)`` mask."""
    finite = np.isfinite(xy).all(axis=-1)
    outlier = finite & (rng.uniform(size=finite.shape) < cfg.outlier_rate)
    lo, hi = _box_limits(uv_body, rig)
    where = lo[..., None, :] + rng.uniform(size=xy.shape) * (hi - lo)[..., None, :]
    xy = np.where(outlier[..., None], where, xy)
    conf = np.where(outlier, rng.uniform(*cfg.outlier_confidence, size=conf.shape), conf)
    return xy, conf, outlier


def _fill_slots(per_joint: dict[str, np.ndarray], swapped: np.ndarray, visible: np.ndarray, missed: np.ndarray,
                fake: np.ndarray, fake_sigma: np.ndarray, shuffle: bool,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, DetectionErrors]:
    """Step 9: the detections of each view and frame (people not missed, then the fake one)
    compacted into slots ``P'``, in random order when ``shuffle``, empty slots last.

    ``per_joint`` holds ``data (T, C, P, J, 3)`` and the :class:`DetectionErrors` fields of shape
    ``(T, C, P, J)``; returns ``(data (T, C, P', J, 3), gt_person_index (T, C, P'), errors)``.
    """
    T, C, P = visible.shape
    J = per_joint["data"].shape[3]
    has_fake = np.isfinite(fake[..., 0]).any(axis=-1)
    present = np.concatenate([visible & ~missed, has_fake[..., None]], axis=2)      # (T, C, P+1)
    cand_index = np.broadcast_to(np.append(np.arange(P), -1), present.shape)
    fake_slot = {"data": fake, "noise_sigma_px": fake_sigma}  # the fake person has no error flags
    none = np.zeros((T, C, 1, J), dtype=bool)
    cand = {k: np.concatenate([a, fake_slot[k][:, :, None] if k in fake_slot else none], axis=2)
            for k, a in per_joint.items()}
    cand_swapped = np.concatenate([swapped, np.zeros((T, C, 1), dtype=bool)], axis=2)

    # Present detections first (in random order if shuffling), then empty slots.
    keys = rng.uniform(size=present.shape) if shuffle else np.broadcast_to(np.arange(P + 1) / (P + 2), present.shape)
    keys = np.where(present, keys, 2.0 + np.arange(P + 1))
    n_slots = int(present.sum(axis=2).max()) if present.size else 0
    order = np.argsort(keys, axis=2, kind="stable")[:, :, :n_slots]
    filled = np.take_along_axis(present, order, axis=2)

    def gather(a, fill):
        o = order.reshape(order.shape + (1,) * (a.ndim - 3))
        g = np.take_along_axis(a, o, axis=2)
        return np.where(filled.reshape(filled.shape + (1,) * (a.ndim - 3)), g, fill)

    gt_index = np.where(filled, np.take_along_axis(cand_index, order, axis=2), -2)
    errors = DetectionErrors(
        out_of_frame=gather(cand["out_of_frame"], False), occluded=gather(cand["occluded"], False),
        occlusion_dropped=gather(cand["occlusion_dropped"], False), outlier=gather(cand["outlier"], False),
        swapped=gather(cand_swapped, False), spurious=gt_index == -1,
        noise_sigma_px=gather(cand["noise_sigma_px"], np.nan), person_visible=visible, missed=missed)
    return gather(cand["data"], np.nan), gt_index, errors


def _box_limits(uv_body: np.ndarray, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Corners ``(T, C, P, 2)`` of each person's true box enlarged 1.5×, clipped to the image."""
    finite = np.isfinite(uv_body).all(axis=-1, keepdims=True)
    hi = np.where(finite, uv_body, -np.inf).max(axis=-2)
    lo = np.where(finite, uv_body, np.inf).min(axis=-2)
    centre, half = 0.5 * (hi + lo), 0.75 * (hi - lo)
    size = rig.sizes[None, :, None, :].astype(np.float64)
    lo = np.clip(centre - half, -0.5, size - 0.5)
    hi = np.clip(centre + half, -0.5, size - 0.5)
    return lo, hi


def _spurious(gt_xy, visible, height, factors, rig: Rig, cfg, rng):
    """One fake person ``(T, C, J, 3)`` per view and frame with probability ``spurious_rate``
    (NaN elsewhere): a real detected pose from a random view/frame/person, rescaled by
    0.6–1.2 and pasted at a random place in the image, with noise and reduced confidence."""
    T, C, P, J, _ = gt_xy.shape
    fake = np.full((T, C, J, 3), np.nan)
    sigma = np.full((T, C, J), np.nan)
    src = np.argwhere(visible)
    want = rng.uniform(size=(T, C)) < cfg.spurious_rate
    tt, cc = np.nonzero(want)
    if src.size == 0 or tt.size == 0:
        return fake, sigma
    pick = src[rng.integers(0, len(src), tt.size)]
    pose = gt_xy[pick[:, 0], pick[:, 1], pick[:, 2]]                  # (N, J, 2)
    finite = np.isfinite(pose).all(axis=-1, keepdims=True)
    centre = np.where(finite, pose, 0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    s = rng.uniform(0.6, 1.2, (tt.size, 1, 1))
    size = rig.sizes[cc].astype(np.float64)
    target = size * rng.uniform(0.1, 0.9, (tt.size, 2))
    xy = (pose - centre[:, None]) * s + target[:, None]
    sig = cfg.noise_px * (s[..., 0] * height[pick[:, 0], pick[:, 1], pick[:, 2], None] / cfg.reference_height_px) * factors
    xy = xy + sig[..., None] * rng.standard_normal(xy.shape)
    W, H = size[:, None, 0], size[:, None, 1]
    inside = (xy[..., 0] >= -0.5) & (xy[..., 0] <= W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] <= H - 0.5)
    inside &= finite[..., 0]
    conf = cfg.confidence_max * cfg.spurious_confidence_scale * np.ones((tt.size, J))
    if cfg.confidence_jitter > 0:
        conf = conf * (1 + cfg.confidence_jitter * rng.standard_normal(conf.shape))
    conf = np.clip(conf, 0.01, 1.0)
    fake[tt, cc] = np.where(inside[..., None], np.concatenate([xy, conf[..., None]], axis=-1), np.nan)
    sigma[tt, cc] = sig
    return fake, sigma
