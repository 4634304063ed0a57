"""Cross-view person matching: which 2D person in which view is the same human, frame by frame.

Two detections in views ``a`` and ``b`` are the same person when their joints lie on each other's
epipolar lines. The cost of a pair is the median, over the joints both detect with confidence,
of the symmetric point-to-epipolar-line distance (undistorted pixels), divided by the person's
size in the two views (the larger side of the box of its confident joints, averaged): a size-
relative cost works the same for a 4K close-up and a distant 720p camera. Groups are grown
greedily from the cheapest pair up, under two constraints: at most one detection per view, and
every comparable pair inside a group (sharing enough confident joints) within ``2 max_cost`` and
their mean within ``max_cost`` (a near-complete linkage), so that two people standing on one
epipolar line of some camera pair are told apart by the third view.

Appearance (the colour descriptors the detector stores) is not used here; it gives people back
their identity after an absence (:func:`mocap.track.linking.relink_by_appearance`). Several people lined
up in every camera pair at once would need it here too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mocap._checks import check_shape
from mocap.geometry import Rig, fundamental_matrix, undistort_points_rig
from mocap.skeleton.joints import left_right_permutation


@dataclass(frozen=True)
class AssociationConfig:
    """Settings of :func:`associate` (the ``match`` section of the config tree)."""

    multi_person: bool = True
    """Match detections across views and track every person (False: no matching; the most
    confident detection of each view is taken as the one performer)."""
    min_confidence: float = 0.3
    """Joints below this detector confidence are not used for matching."""
    max_cost: float = 0.08
    """Largest median epipolar distance over the person's size for two detections to be one
    person (0.08 of a 1.8 m person ≈ 14 cm off the epipolar line; calibration error and detector
    noise together are a few percent)."""
    min_common_joints: int = 4
    """Two detections sharing fewer confident joints are not compared (cost infinite)."""

    def __post_init__(self):
        if not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence: expected a value in [0, 1), got {self.min_confidence}")
        if not self.max_cost > 0:
            raise ValueError(f"max_cost: must be > 0, got {self.max_cost}")
        if self.min_common_joints < 1:
            raise ValueError(f"min_common_joints: must be >= 1, got {self.min_common_joints}")


def person_sizes(keypoints: np.ndarray, min_confidence: float) -> np.ndarray:
    """Larger side of the box of each person's confident joints: ``(..., J, 3)`` -> ``(...)`` px
    (NaN where no joint is confident)."""
    ok = keypoints[..., 2] >= min_confidence
    xy = np.where(ok[..., None], keypoints[..., :2], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slots
        return (np.nanmax(xy, axis=-2) - np.nanmin(xy, axis=-2)).max(axis=-1)


def epipolar_costs(rig: Rig, keypoints: np.ndarray, config: AssociationConfig | None = None,
                   joint_names=None) -> np.ndarray:
    """Matching cost of every pair of detections in every pair of views.

    Args:
        rig: the calibration, cameras in the order of axis ``C``.
        keypoints: ``(T, C, P, J, 3)`` x px, y px, confidence; NaN where a slot is empty.
        config: thresholds (defaults if None).
        joint_names: ``(J,)`` names; when given, each pair is also scored with one side's
            ``left_*``/``right_*`` labels exchanged and the lower cost kept (detectors flip the
            labels of people seen from behind; the flip is the same person).

    Returns:
        ``(T, C, C, P, P)``: ``cost[t, a, b, i, j]`` the median symmetric epipolar distance of
        person ``i`` in view ``a`` and person ``j`` in view ``b`` over their mean size; symmetric
        in ``(a, i) <-> (b, j)``; ``inf`` on the diagonal ``a == b`` and where the two share fewer
        than ``min_common_joints`` confident joints.
    """
    config = config or AssociationConfig()
    keypoints = check_shape(np.asarray(keypoints, dtype=np.float64), "T C P J 3", "keypoints")
    T, C, P, J, _ = keypoints.shape
    if C != len(rig):
        raise ValueError(f"keypoints: {C} cameras on axis 1, the calibration has {len(rig)}")
    conf_ok = np.nan_to_num(keypoints[..., 2]) >= config.min_confidence  # (T, C, P, J)
    xy = undistort_points_rig(rig, np.moveaxis(keypoints[..., :2], 1, -2))  # (T, P, J, C, 2)
    hom = np.concatenate([np.moveaxis(xy, -2, 1), np.ones((T, C, P, J, 1))], axis=-1)  # (T, C, P, J, 3)
    size = person_sizes(keypoints, config.min_confidence)  # (T, C, P)
    perms = [np.arange(J)]
    if joint_names is not None:
        if len(joint_names) != J:
            raise ValueError(f"joint_names: expected {J} names (axis -2 of keypoints), got {len(joint_names)}")
        mirror = left_right_permutation(joint_names)
        if (mirror != perms[0]).any():
            perms.append(mirror)
    cost = np.full((T, C, C, P, P), np.inf)
    for a in range(C):
        for b in range(a + 1, C):
            F = fundamental_matrix(rig.cameras[a], rig.cameras[b])  # x_b^T F x_a = 0
            lb = hom[:, a] @ F.T  # (T, P, J, 3) lines in b of a's joints
            c = np.full((T, P, P), np.inf)
            for perm in perms:
                c = np.minimum(c, _pair_cost(lb, hom[:, b][:, :, perm], F, conf_ok[:, a], conf_ok[:, b][:, :, perm],
                                             size[:, a], size[:, b], config.min_common_joints))
            cost[:, a, b] = c
            cost[:, b, a] = np.swapaxes(c, -1, -2)
    return cost


def _pair_cost(lb, hb, F, ok_a, ok_b, size_a, size_b, min_common: int) -> np.ndarray:
    """``(T, Pa, Pb)`` cost between view a's people (their epipolar lines ``lb (T, Pa, J, 3)`` in
    b) and view b's (homogeneous undistorted points ``hb (T, Pb, J, 3)``)."""
    la = hb @ F  # (T, Pb, J, 3) lines in a of b's joints
    num = np.abs(np.einsum("tijk,tqjk->tiqj", lb, hb))  # (T, Pa, Pb, J)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = num / np.linalg.norm(la[..., :2], axis=-1)[:, None]
        db = num / np.linalg.norm(lb[..., :2], axis=-1)[:, :, None]
    d = 0.5 * (da + db)
    both = ok_a[:, :, None] & ok_b[:, None, :] & np.isfinite(d)  # (T, Pa, Pb, J)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no common joint
        med = np.nanmedian(np.where(both, d, np.nan), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = med / (0.5 * (size_a[:, :, None] + size_b[:, None, :]))
    return np.where((both.sum(-1) >= min_common) & np.isfinite(c), c, np.inf)


def group_frame(cost: np.ndarray, present: np.ndarray, max_cost: float) -> np.ndarray:
    """Group the detections of one frame.

    Args:
        cost: ``(C, C, P, P)`` from :func:`epipolar_costs` (one frame).
        present: ``(C, P)`` bool, the slots holding a detection.
        max_cost: the largest cost inside a group.

    Returns:
        ``(C, P)`` int: group index per detection, groups numbered from 0 in order of their
        cheapest pair (groups of one view included, after the others); -1 for empty slots.
    """
    C, P = present.shape
    a, b, i, j = np.nonzero(np.triu(np.ones((C, C), bool), 1)[:, :, None, None] & (cost <= max_cost))
    order = np.argsort(cost[a, b, i, j], kind="stable")
    group = -np.ones((C, P), dtype=np.int64)
    members: list[list[tuple[int, int]]] = []
    for e in order:
        va, pa, vb, pb = a[e], i[e], b[e], j[e]
        ga, gb = group[va, pa], group[vb, pb]
        if ga >= 0 and ga == gb:
            continue
        A = members[ga] if ga >= 0 else [(va, pa)]
        B = members[gb] if gb >= 0 else [(vb, pb)]
        if {v for v, _ in A} & {v for v, _ in B}:
            continue  # one detection per view
        cross = np.array([cost[v, w, p, q] for v, p in A for w, q in B])
        cross = cross[np.isfinite(cross)]  # pairs sharing too few joints cannot be compared
        if cross.max() > 2 * max_cost or cross.mean() > max_cost:
            continue  # every comparable pair close, on average within max_cost
        merged = A + B
        target = ga if ga >= 0 else gb if gb >= 0 else len(members)
        if target == len(members):
            members.append(merged)
        else:
            members[target] = merged
        other = gb if target == ga else ga
        if other >= 0 and other != target:
            members[other] = []
        for v, p in merged:
            group[v, p] = target
    # renumber: multi-view groups first (by creation), then singletons
    out = -np.ones((C, P), dtype=np.int64)
    k = 0
    for m in members:
        if m:
            for v, p in m:
                out[v, p] = k
            k += 1
    for v, p in zip(*np.nonzero(present & (out < 0))):
        out[v, p] = k
        k += 1
    return out


def associate(rig: Rig, keypoints: np.ndarray, config: AssociationConfig | None = None,
              joint_names=None) -> np.ndarray:
    """Which detection in which view is the same person, per frame.

    Args:
        rig: the calibration, cameras in the order of axis ``C``.
        keypoints: ``(T, C, P, J, 3)`` (e.g. :attr:`Keypoints2D.data` after ``align_to_rig``).
        config: thresholds (defaults if None).
        joint_names: ``(J,)`` names: left/right-flipped detections then match too (recommended).

    Returns:
        ``(T, C, P)`` int64 group per detection (per frame: 0, 1, ... ; groups seen by several
        views come first); -1 for empty slots. Group numbers are not identities over time.
    """
    config = config or AssociationConfig()
    cost = epipolar_costs(rig, keypoints, config, joint_names)
    present = np.isfinite(keypoints[..., 0]).any(-1) & (np.nan_to_num(keypoints[..., 2]) >= config.min_confidence).any(-1)
    return np.stack([group_frame(cost[t], present[t], config.max_cost) for t in range(len(cost))])


def gather_groups(keypoints: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """2D joints of each group in each view: ``(T, C, P, J, 3)`` + ``(T, C, P)`` ->
    ``(T, K, C, J, 3)`` (``K`` the most groups in a frame; NaN where a view lacks the group)."""
    T, C, P, J, _ = keypoints.shape
    K = int(groups.max()) + 1 if groups.size and groups.max() >= 0 else 0
    out = np.full((T, K, C, J, 3), np.nan)
    t, c, p = np.nonzero(groups >= 0)
    out[t, groups[t, c, p], c] = keypoints[t, c, p]
    return out
