"""Extrinsics from the performers: body keypoints seen by synchronised cameras as calibration targets.

Each camera's lens is held (from ``mocap calibrate intrinsics``). Every joint of the performer in
every frame is one unknown 3D point seen by several cameras, so a take of a person moving through
the volume gives thousands of correspondences (EpipolarPose, Kocabas et al. 2019, uses body joints
the same way; Pose2Sim's ``keypoints`` method too). The solve:

1. the performer in each view: the person whose confident joints span the tallest box (a
   bystander further away is smaller); mismatches left over are outliers for steps 2-4;
2. the camera pair sharing the most confident joints: essential matrix with RANSAC on undistorted
   normalised points (Hartley & Zisserman 9.6), its pose, the joints triangulated;
3. every other camera by PnP with RANSAC on those joints, then all joints triangulated again;
4. bundle adjustment of camera poses and joints (robust loss, each joint weighted by its detector
   confidence, intrinsics held), twice, dropping observations far off after the first solve;
5. metric scale from the performer's stated height, world Z up along the performer's body axis,
   origin on the floor under the performer's feet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
from scipy.optimize import least_squares

from mocap.calibration.report import triangulate_corners
from mocap.geometry import rotmat_to_rotvec, rotvec_to_rotmat
from mocap.geometry.camera import Camera, Rig, pixel_to_normalized
from mocap.geometry.lens import distort_normalized

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.4  # OpenPose joints below this are often on the wrong limb
RANSAC_PX = 4.0  # epipolar / PnP inlier threshold: OpenPose joints scatter by 3-10 px at 1080p
LOSS_SCALE_PX = 3.0  # soft_l1 scale of the bundle adjustment
CONFIDENCE_POWER = 2.0  # each joint's residual is scaled by its confidence to this power: OpenPose's
#                        scatter grows quickly as its confidence drops (Pose2Sim balancing take, checkerboard
#                        lenses: camera centres within 5.4 cm unweighted, 4.8 cm at power 1, 4.4 cm at 2)
MAX_RMS_PX = 25.0  # a camera whose joints reproject worse than this is placed wrong: OpenPose's own
#                   scatter gives 8-12 px per camera at 1080p on the Pose2Sim takes
FOOT_JOINTS = ("left_heel", "right_heel", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
               "left_ankle", "right_ankle")


@dataclass(frozen=True, eq=False)
class PeopleCalibrationResult:
    """Outcome of :func:`calibrate_from_people` (falsy when no rig could be solved).

    Attributes:
        rig: the cameras (world Z up, metres when a height was given); None on failure.
        camera_rms_px: ``{name: RMS reprojection px}`` over the inlier joints.
        inlier_share: ``{name: share of its confident joints kept}``.
        scale: metres per reconstruction unit applied (1.0 without a height).
        messages: what was done and any problem, one line each.
    """

    rig: Rig | None
    camera_rms_px: dict = field(default_factory=dict)
    inlier_share: dict = field(default_factory=dict)
    scale: float = 1.0
    messages: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.rig is not None


def select_performer(data: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """The performer's joints per view: ``(T, C, P, J, 3)`` -> ``(T, C, J, 3)`` (NaN below ``min_confidence``).

    Per frame and camera, the person whose confident joints span the tallest box.
    """
    conf_ok = data[..., 2] >= min_confidence
    y = np.where(conf_ok, data[..., 1], np.nan)
    enough = conf_ok.sum(-1) >= 5
    y = np.where(enough[..., None], y, 0.0)  # no all-NaN rows: span 0 for people with too few joints
    span = np.nanmax(y, -1) - np.nanmin(y, -1)  # (T, C, P)
    span = np.where(enough, span, -1.0)
    best = np.argmax(np.nan_to_num(span, nan=-1.0), axis=-1)  # (T, C)
    out = np.take_along_axis(data, best[..., None, None, None], axis=2)[:, :, 0]
    out[out[..., 2] < min_confidence] = np.nan
    out[~(np.take_along_axis(span, best[..., None], -1)[..., 0] > 0)] = np.nan
    return out


def _relative_pose(xn_a: np.ndarray, xn_b: np.ndarray, f_px: float):
    """b_from_a ``(R, t)`` with ``|t| = 1`` and the inlier mask from normalised points ``(N, 2)`` each."""
    import cv2

    E, mask = cv2.findEssentialMat(xn_a, xn_b, np.eye(3), method=cv2.RANSAC, prob=0.999,
                                   threshold=RANSAC_PX / f_px)
    if E is None:
        return None
    n, R, t, mask2 = cv2.recoverPose(E[:3], xn_a, xn_b, np.eye(3), mask=mask)
    return R, t.ravel(), mask2.ravel() > 0


def _triangulate(cams: list[Camera], xy: np.ndarray) -> np.ndarray:
    """Points ``(N, 3)`` from pixels ``xy (C, N, 2)`` of ``cams`` (DLT; NaN where seen by < 2)."""
    return triangulate_corners(Rig(tuple(cams)), xy[:, None])[0]


def _pose_camera(cam: Camera, R: np.ndarray, t: np.ndarray) -> Camera:
    return Camera(cam.name, cam.size, cam.K, cam.dist, R, np.asarray(t, float).ravel())


def _initial_rig(lenses: list[Camera], xy: np.ndarray, xn: np.ndarray, messages: list[str]) -> list[Camera] | None:
    """Steps 2-3: camera poses in the frame of the best pair's first camera (unit baseline)."""
    import cv2

    C = len(lenses)
    seen = np.isfinite(xn[..., 0])
    shared = np.array([[np.sum(seen[a] & seen[b]) if a != b else 0 for b in range(C)] for a in range(C)])
    a, b = np.unravel_index(np.argmax(shared), shared.shape)
    both = seen[a] & seen[b]
    f = float(np.mean([c.K[0, 0] for c in lenses]))
    rel = _relative_pose(xn[a, both], xn[b, both], f)
    if rel is None:
        messages.append(f"cameras {lenses[a].name} and {lenses[b].name}: no relative pose from {both.sum()} shared joints")
        return None
    R, t, _ = rel
    cams: list[Camera | None] = [None] * C
    cams[a] = _pose_camera(lenses[a], np.eye(3), np.zeros(3))
    cams[b] = _pose_camera(lenses[b], R, t)
    X = _triangulate([cams[a], cams[b]], xy[[a, b]])
    for c in [c for c in range(C) if cams[c] is None]:
        ok = seen[c] & np.isfinite(X[:, 0])
        if ok.sum() < 12:
            messages.append(f"camera {lenses[c].name}: shares only {ok.sum()} joints with cameras "
                            f"{lenses[a].name} and {lenses[b].name}; it cannot be placed")
            return None
        good, rv, tv, _ = cv2.solvePnPRansac(X[ok], xn[c, ok], np.eye(3), None, reprojectionError=RANSAC_PX / f,
                                             iterationsCount=500, flags=cv2.SOLVEPNP_EPNP)
        if not good:
            messages.append(f"camera {lenses[c].name}: no pose from its {ok.sum()} joints (PnP failed)")
            return None
        cams[c] = _pose_camera(lenses[c], cv2.Rodrigues(rv)[0], tv)
    messages.append(f"initial pair {lenses[a].name}-{lenses[b].name} ({both.sum()} shared joints), "
                    "the other cameras placed by PnP")
    return cams


def project_joints(cams_K: np.ndarray, cams_dist: np.ndarray, pose: np.ndarray, X: np.ndarray, cam: np.ndarray,
                   pt: np.ndarray) -> np.ndarray:
    """Pixels ``(M, 2)`` of points ``X[pt]`` in cameras ``cam`` with poses ``(C, 6)`` (rotvec, t)."""
    R = rotvec_to_rotmat(pose[:, :3])
    Xc = np.einsum("mij,mj->mi", R[cam], X[pt]) + pose[cam, 3:]
    z = Xc[:, 2:3]
    xn = Xc[:, :2] / np.where(np.abs(z) < 1e-9, 1e-9, z)
    xd = distort_normalized(xn, cams_dist[cam])
    K = cams_K[cam]
    return np.stack([K[:, 0, 0] * xd[:, 0] + K[:, 0, 2], K[:, 1, 1] * xd[:, 1] + K[:, 1, 2]], -1)


def people_jacobian(K: np.ndarray, dist: np.ndarray, pose: np.ndarray, X: np.ndarray, cam: np.ndarray,
                    pt: np.ndarray, fixed: int) -> scipy.sparse.csr_matrix:
    """Analytic Jacobian ``(2M, 6 (C - 1) + 3N)`` of :func:`project_joints` over the free cameras' poses
    (all but ``fixed``, in order) and the points: each point is a "board" of one corner at its
    origin, so :func:`~mocap.calibration.bundle.projection_jacobians` gives both blocks."""
    from mocap.calibration.bundle import Observations, intrinsics_to_vector, projection_jacobians

    C, M = len(K), len(cam)
    obs = Observations(cam, pt, np.zeros(M, np.int64), np.zeros((M, 2)))
    board = np.concatenate([np.zeros((len(X), 3)), X], axis=1)  # identity rotation, translation = the point
    J_cam, J_pt, _ = projection_jacobians(obs, np.zeros((1, 3)), pose, board, intrinsics_to_vector(K, dist))
    col = np.full(C, -1)
    col[[c for c in range(C) if c != fixed]] = np.arange(C - 1) * 6
    rows = np.arange(2 * M).reshape(M, 2, 1)
    free = col[cam] >= 0
    r = [np.broadcast_to(rows[free], (free.sum(), 2, 6)).ravel(), np.broadcast_to(rows, (M, 2, 3)).ravel()]
    c = [np.broadcast_to((col[cam][free, None] + np.arange(6))[:, None], (free.sum(), 2, 6)).ravel(),
         np.broadcast_to((6 * (C - 1) + 3 * pt[:, None] + np.arange(3))[:, None], (M, 2, 3)).ravel()]
    v = [J_cam[free].ravel(), J_pt[:, :, 3:].ravel()]
    return scipy.sparse.csr_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                                   shape=(2 * M, 6 * (C - 1) + 3 * len(X)))


def bundle_people(cams: list[Camera], X: np.ndarray, cam: np.ndarray, pt: np.ndarray, xy: np.ndarray,
                  fixed: int, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refine camera poses ``(C, 6)`` and points ``X (N, 3)`` over observations (``cam``, ``pt``, ``xy (M, 2)``).

    Intrinsics held; camera ``fixed`` stays put (the gauge; the overall scale is fixed later).
    ``weight (M,)`` scales each observation's residual (None: all 1). Analytic Jacobian.
    """
    C, N = len(cams), len(X)
    K = np.stack([c.K for c in cams])
    dist = np.stack([c.dist for c in cams])
    pose = np.stack([np.concatenate([rotmat_to_rotvec(c.R), c.t]) for c in cams])
    free = np.array([c for c in range(C) if c != fixed])
    w = np.ones(len(cam)) if weight is None else np.asarray(weight, float).ravel()
    W = scipy.sparse.diags(np.repeat(w, 2))

    def unpack(x):
        p = pose.copy()
        p[free] = x[: 6 * len(free)].reshape(-1, 6)
        return p, x[6 * len(free):].reshape(N, 3)

    def fun(x):
        p, P = unpack(x)
        return ((project_joints(K, dist, p, P, cam, pt) - xy) * w[:, None]).ravel()

    def jac(x):
        p, P = unpack(x)
        return (W @ people_jacobian(K, dist, p, P, cam, pt, fixed)).tocsr()

    x0 = np.concatenate([pose[free].ravel(), X.ravel()])
    sol = least_squares(fun, x0, jac=jac, method="trf", loss="soft_l1", f_scale=LOSS_SCALE_PX, x_scale="jac",
                        tr_solver="lsmr", max_nfev=100)
    return unpack(sol.x)


def _solve_rig(lenses: list[Camera], xy: np.ndarray, messages: list[str], conf: np.ndarray | None = None):
    """Steps 2-4 on pixels ``xy (C, N, 2)`` with confidences ``conf (C, N)``: cameras, points ``(N, 3)``,
    per-observation arrays, inliers."""
    xn = np.stack([pixel_to_normalized(c, xy[i]) for i, c in enumerate(lenses)])
    cams = _initial_rig(lenses, xy, xn, messages)
    if cams is None:
        return None
    X = _triangulate(cams, xy)
    ok_pt = np.isfinite(X[:, 0])
    cam, pt = np.nonzero(np.isfinite(xy[..., 0]) & ok_pt[None])
    X = np.where(ok_pt[:, None], X, 0.0)  # points nobody triangulated: no observations, no effect
    keep = np.ones(len(cam), bool)
    fixed = next(c for c, k in enumerate(cams) if np.allclose(k.R, np.eye(3)) and not k.t.any())
    for _ in range(2):
        wt = None if conf is None else conf[cam[keep], pt[keep]] ** CONFIDENCE_POWER
        pose, X = bundle_people(cams, X, cam[keep], pt[keep], xy[cam[keep], pt[keep]], fixed, wt)
        cams = [_pose_camera(c, rotvec_to_rotmat(pose[i, :3]), pose[i, 3:]) for i, c in enumerate(cams)]
        K, dist = np.stack([c.K for c in cams]), np.stack([c.dist for c in cams])
        err = np.linalg.norm(project_joints(K, dist, pose, X, cam, pt) - xy[cam, pt], axis=-1)
        keep = err <= max(5 * 1.4826 * np.median(err[keep]), 2 * RANSAC_PX)
    return cams, X, cam, pt, err, keep


# floor -> head top as a chain of (segments, percentile of its length over the take): heel -> ankle
# stands in for the ankle's height above the floor, then shank, thigh (median lengths: rigid, so bent
# knees or a lifted foot do not shorten them), hip centre -> neck, neck -> head top. The trunk (hip
# centre -> neck) is not rigid: leaning or bending shortens it and nothing lengthens it, and stature is
# a standing height, so it counts at its upper quartile. Pose2Sim balancing take through Qualisys's
# calibration: the performer leans 27 deg from vertical in the median frame, the trunk length falls as
# the lean grows (correlation -0.77), median 0.544 m over every frame, 0.565 m over the frames leaning
# under 20 deg, upper quartile 0.556 m; the head segment shows no such trend (0.278 m / 0.273 m)
STATURE_CHAIN = (((("left_heel", "left_ankle"), ("right_heel", "right_ankle")), 50),
                 ((("left_ankle", "left_knee"), ("right_ankle", "right_knee")), 50),
                 ((("left_knee", "left_hip"), ("right_knee", "right_hip")), 50),
                 (((("left_hip", "right_hip"), "neck"),), 75),
                 ((("neck", "head_top"),), 50))


def stature(points: np.ndarray, joint_names: tuple) -> float:
    """The performer's height from ``points (T, J, 3)``: the sum of :data:`STATURE_CHAIN`'s segment
    lengths, each at its percentile over the take (left and right averaged); NaN when a segment is
    never seen."""
    idx = {n: i for i, n in enumerate(joint_names)}

    def at(name):
        if isinstance(name, tuple):  # midpoint of two joints
            return 0.5 * (points[:, idx[name[0]]] + points[:, idx[name[1]]])
        return points[:, idx[name]]

    total = 0.0
    for sides, q in STATURE_CHAIN:
        try:
            lengths = [np.nanpercentile(np.linalg.norm(at(a) - at(b), axis=-1), q) for a, b in sides]
        except KeyError:
            return np.nan
        total += float(np.nanmean(lengths))
    return total


def _world_from_people(cams: list[Camera], X: np.ndarray, joint_names: tuple, T: int, height_m: float | None,
                       messages: list[str]):
    """ref_from_world ``(4, 4)`` (Z along the body axis, origin on the floor under the feet) and the scale."""
    J = len(joint_names)
    P = X.reshape(T, J, 3)
    idx = {n: i for i, n in enumerate(joint_names)}
    feet = [idx[n] for n in FOOT_JOINTS if n in idx]
    hips = [idx[n] for n in ("left_hip", "right_hip") if n in idx]
    top = idx.get("neck", idx.get("nose"))
    with np.errstate(invalid="ignore"):
        body = P[:, top] - np.mean(P[:, hips], 1)  # (T, 3) hip centre -> neck
        up = np.nanmedian(body / np.linalg.norm(body, axis=-1, keepdims=True), axis=0)
    up /= np.linalg.norm(up)
    scale = 1.0
    if height_m:
        h = stature(P, joint_names)
        scale = height_m / h
        messages.append(f"scale from the stated height {height_m:.2f} m: the performer measures {h:.4f} units "
                        "(segment lengths heel-ankle-knee-hip-neck-head top, the trunk at its upper quartile)")
    else:
        messages.append("no --height given: the rig is not in metres (unit = the first camera pair's baseline)")
    foot_h = np.nanmin(P[:, feet] @ up, axis=1)  # lowest foot point per frame, along up
    floor = np.nanpercentile(foot_h, 5)
    centre = np.nanmedian(np.nanmean(P[:, feet], 1), axis=0)
    origin = centre - up * ((centre @ up) - floor)
    x = cams[0].R[0] - up * (cams[0].R[0] @ up)  # the first camera's x axis, levelled
    x /= np.linalg.norm(x)
    ref_from_world = np.eye(4)
    ref_from_world[:3, :3] = np.stack([x, np.cross(up, x), up], axis=1)
    ref_from_world[:3, 3] = origin
    return ref_from_world, scale


def calibrate_from_people(keypoints, lenses: dict[str, Camera], height_m: float | None = None,
                          min_confidence: float = MIN_CONFIDENCE) -> PeopleCalibrationResult:
    """Camera poses from the performers' 2D keypoints, lenses held.

    Args:
        keypoints: :class:`~mocap.io.keypoints.Keypoints2D` ``data (T, C, P, J, 3)`` of synchronised
            cameras (frames with the same index are simultaneous).
        lenses: ``{name: Camera}`` intrinsics per camera (matched by normalised name).
        height_m: the performer's height in metres (sets the metric scale); None: unit baseline.
        min_confidence: joints below this confidence are ignored.

    Returns:
        :class:`PeopleCalibrationResult` (falsy with messages when no rig could be solved).
    """
    from mocap.geometry.camera import normalize_camera_name

    messages: list[str] = []
    by_key = {normalize_camera_name(n): c for n, c in lenses.items()}
    missing = [n for n in keypoints.camera_names if normalize_camera_name(n) not in by_key]
    if missing:
        from mocap.errors import CalibrationError

        raise CalibrationError(f"camera {missing[0]}: no intrinsics for it; run `mocap calibrate intrinsics` for it first")
    cams = [by_key[normalize_camera_name(n)] for n in keypoints.camera_names]
    cams = [Camera(n, c.size, c.K, c.dist, np.eye(3), np.zeros(3)) for n, c in zip(keypoints.camera_names, cams)]
    perf = select_performer(keypoints.data, min_confidence)  # (T, C, J, 3)
    T, C, J, _ = perf.shape
    xy = np.moveaxis(perf[..., :2], 1, 0).reshape(C, T * J, 2)
    solved = _solve_rig(cams, xy, messages, np.moveaxis(perf[..., 2], 1, 0).reshape(C, T * J))
    if solved is None:
        return PeopleCalibrationResult(None, messages=messages)
    cams, X, cam, pt, err, keep = solved
    X = np.where(np.bincount(pt[keep], minlength=T * J)[:, None] >= 2, X, np.nan)
    ref_from_world, scale = _world_from_people(cams, X, keypoints.joint_names, T, height_m, messages)
    out = []
    for c in cams:
        R = c.R @ ref_from_world[:3, :3]
        t = (c.R @ ref_from_world[:3, 3] + c.t) * scale
        out.append(Camera(c.name, c.size, c.K, c.dist, R, t))
    seen = np.bincount(cam, minlength=C)
    rms = {c.name: float(np.sqrt(np.mean(err[keep & (cam == i)] ** 2))) for i, c in enumerate(cams)}
    share = {c.name: float((keep & (cam == i)).sum() / max(seen[i], 1)) for i, c in enumerate(cams)}
    out = [Camera(c.name, c.size, c.K, c.dist, c.R, c.t, rms[c.name]) for c in out]
    rig = Rig(tuple(out), {"world": "Z along the performer's body axis, origin on the floor under the feet"})
    return PeopleCalibrationResult(rig, rms, share, scale, messages)


def join_takes(takes: list, frame_step: int = 1):
    """One :class:`~mocap.io.keypoints.Keypoints2D` of several takes' frames in a row (``--people PATH ...``).

    The takes must have the same cameras; every ``frame_step``-th frame is kept.
    """
    from dataclasses import replace

    from mocap.errors import CalibrationError

    if frame_step < 1:
        raise CalibrationError(f"--frame-step must be >= 1, got {frame_step}")
    names = takes[0].camera_names
    for i, k in enumerate(takes):
        if k.camera_names != names:
            raise CalibrationError(f"--people take {i + 1}: cameras {', '.join(k.camera_names)} differ from the first "
                                   f"take's ({', '.join(names)})")
    P = max(k.data.shape[2] for k in takes)
    data = np.concatenate([np.pad(k.data, ((0, 0), (0, 0), (0, P - k.data.shape[2]), (0, 0), (0, 0)),
                                  constant_values=np.nan) for k in takes])[::frame_step]
    return replace(takes[0], data=data, frame_indices=None, extras={})
