"""Which joints are hidden behind *another* person's body, per camera (depth-ordered).

Each body is a set of capsules (segments between canonical joints with a radius, metres). A
joint X of person p is occluded in camera c when the line of sight from the camera centre to X
(stopped ``margin`` metres short of X) passes within a capsule of another person q. Because only
the part of the sight line in front of X counts, a person is never occluded by someone behind
them. Self-occlusion is not modelled: detectors infer a person's own hidden joints well.
"""

from __future__ import annotations

import numpy as np

from mocap.skeleton.joints import CANONICAL_JOINTS

#: (joint a, joint b, radius m): torso, head, arms, legs, feet of an adult.
BODY_CAPSULES: tuple[tuple[str, str, float], ...] = (
    ("neck", "pelvis", 0.13),
    ("left_shoulder", "left_hip", 0.08), ("right_shoulder", "right_hip", 0.08),
    ("left_shoulder", "right_shoulder", 0.06), ("left_hip", "right_hip", 0.08),
    ("left_ear", "right_ear", 0.09), ("neck", "nose", 0.06),
    ("left_shoulder", "left_elbow", 0.05), ("right_shoulder", "right_elbow", 0.05),
    ("left_elbow", "left_wrist", 0.04), ("right_elbow", "right_wrist", 0.04),
    ("left_hip", "left_knee", 0.075), ("right_hip", "right_knee", 0.075),
    ("left_knee", "left_ankle", 0.055), ("right_knee", "right_ankle", 0.055),
    ("left_heel", "left_foot_index", 0.04), ("right_heel", "right_foot_index", 0.04),
)


def _segment_distance_sq(a, e, b, c, f, rr):
    """Squared distance between segments ``O + s d1`` and ``A + t d2`` (s, t in [0, 1]) from
    the scalar products ``a = d1·d1, e = d2·d2, b = d1·d2, c = d1·r, f = d2·r, rr = r·r`` with
    ``r = O - A`` (Ericson, *Real-Time Collision Detection*, 5.1.9), all broadcast together."""
    denom = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 1e-12, np.clip((b * f - c * e) / denom, 0.0, 1.0), 0.0)
        t = (b * s + f) / e
        s = np.where(t < 0, np.clip(-c / a, 0.0, 1.0), np.where(t > 1, np.clip((b - c) / a, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    # |r + s d1 - t d2|^2 expanded, so that only scalar fields are ever materialised.
    return rr + s * s * a + t * t * e + 2 * s * c - 2 * t * f - 2 * s * t * b


def occluded_by_others(points_world: np.ndarray, body_world: np.ndarray, camera_centers: np.ndarray,
                       body_names=CANONICAL_JOINTS, margin: float = 0.03,
                       capsules=BODY_CAPSULES, chunk: int = 4096) -> np.ndarray:
    """Occlusion of each person's joints by the other people's bodies.

    Args:
        points_world: ``(T, P, J, 3)`` joints to test, metres.
        body_world: ``(T, P, Jb, 3)`` the same people's canonical joints (``body_names``), from
            which the capsules are built. NaN joints give no capsule.
        camera_centers: ``(C, 3)`` camera centres, metres.
        margin: the sight line stops this far short of the joint (metres), so that a joint
            touching another body from the front is not occluded by it.
        capsules: ``(joint a, joint b, radius)`` triples.
        chunk: person pairs culled at once (bounds memory).

    Returns:
        ``(T, C, P, J)`` bool: True where the joint is hidden from the camera by another person.
    """
    T, P, J, _ = points_world.shape
    C = camera_centers.shape[0]
    out = np.zeros((T, C, P, J), dtype=bool)
    if P < 2:
        return out
    ia = [body_names.index(a) for a, _, _ in capsules]
    ib = [body_names.index(b) for _, b, _ in capsules]
    radius = np.array([r for _, _, r in capsules])
    t, c, p, q, centre, rad = _candidate_pairs(points_world, body_world, camera_centers, radius.max())
    A_all = np.ascontiguousarray(body_world[:, :, ia])            # (T, P, S, 3) capsule starts
    D2_all = body_world[:, :, ib] - A_all                         # (T, P, S, 3) capsule axes
    e_all = np.maximum(np.einsum("tpsk,tpsk->tps", D2_all, D2_all), 1e-12)
    for k0 in range(0, t.size, chunk):
        k = slice(k0, k0 + chunk)
        O = camera_centers[c[k]][:, None]                         # (K, 1, 3)
        D1 = points_world[t[k], p[k]] - O                         # (K, J, 3) sight lines
        length = np.sqrt(np.einsum("kjx,kjx->kj", D1, D1))[..., None]
        D1 = D1 * np.clip(1.0 - margin / np.maximum(length, 1e-12), 0.0, 1.0)
        # Joint-level cull: the sight line must pass through q's bounding sphere.
        Cq = centre[t[k], q[k]][:, None] - O                      # (K, 1, 3)
        a = np.maximum(np.einsum("kjx,kjx->kj", D1, D1), 1e-12)   # (K, J)
        s_star = np.clip(np.einsum("kjx,kjx->kj", D1, np.broadcast_to(Cq, D1.shape)) / a, 0.0, 1.0)
        off = D1 * s_star[..., None] - Cq
        near = np.einsum("kjx,kjx->kj", off, off) < rad[t[k], q[k]][:, None] ** 2
        kk, jj = np.nonzero(near)
        if kk.size == 0:
            continue
        kk = kk + k0
        d1 = D1[kk - k0, jj]                                      # (N, 3)
        D2, e = D2_all[t[kk], q[kk]], e_all[t[kk], q[kk]]        # (N, S, 3), (N, S)
        R = camera_centers[c[kk]][:, None] - A_all[t[kk], q[kk]]  # (N, S, 3)
        f = np.einsum("nsk,nsk->ns", D2, R)
        rr = np.einsum("nsk,nsk->ns", R, R)
        b = np.einsum("nk,nsk->ns", d1, D2)
        cc = np.einsum("nk,nsk->ns", d1, R)
        aa = np.einsum("nk,nk->n", d1, d1)[:, None]
        hit = (_segment_distance_sq(aa, e, b, cc, f, rr) < radius ** 2).any(axis=-1)  # NaN -> False
        out[t[kk[hit]], c[kk[hit]], p[kk[hit]], jj[hit]] = True
    return out


def _candidate_pairs(points_world, body_world, camera_centers, max_radius):
    """Broad phase: ``(t, c, p, q)`` index arrays where person q could hide part of person p
    from camera c: their bounding cones from the camera overlap and q is not wholly behind p."""
    T, P = body_world.shape[:2]
    everything = np.concatenate([body_world, points_world], axis=2)
    finite = np.isfinite(everything).all(axis=-1)
    centre = np.where(finite[..., None], everything, 0).sum(axis=2) / np.maximum(finite.sum(axis=2), 1)[..., None]
    spread = np.where(finite, np.linalg.norm(everything - centre[:, :, None], axis=-1), 0).max(axis=2)
    rad = spread + max_radius                                          # (T, P) bounding sphere
    v = centre[:, None] - camera_centers[None, :, None]               # (T, C, P, 3)
    dist = np.linalg.norm(v, axis=-1)
    half_angle = np.arcsin(np.clip(rad[:, None] / np.maximum(dist, 1e-9), 0.0, 1.0))
    u = v / np.maximum(dist, 1e-9)[..., None]
    angle = np.arccos(np.clip(np.einsum("tcpk,tcqk->tcpq", u, u), -1.0, 1.0))
    overlap = angle < half_angle[..., :, None] + half_angle[..., None, :]
    overlap &= (dist[..., None, :] - rad[:, None, None, :]) < (dist[..., :, None] + rad[:, None, :, None])
    overlap &= ~np.eye(P, dtype=bool)
    overlap &= finite.any(axis=2)[:, None, :, None] & finite.any(axis=2)[:, None, None, :]
    t, c, p, q = np.nonzero(overlap)
    return t, c, p, q, centre, rad
