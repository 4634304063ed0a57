"""Every person's joints filtered on the 2D evidence itself: an unscented Kalman filter per joint
(:mod:`mocap.track.ukf`) whose measurements are the keypoints of each camera, then a backward
RTS pass (offline) or a fixed-lag one (online).

A joint starts, and restarts, from the per-frame triangulation (two views or more); from then on
every camera that sees it updates it through the full camera model, so a joint that only one
camera sees for a while is still held on that camera's ray instead of being lost, and a view
whose keypoint lies outside the gate (an outlier, a left/right swap, someone else's joint) is
left out. Where the triangulation found the joint, only the views it kept are measurements
(its robust view selection judges outliers better than a prediction can), with the left/right
labels it used (:func:`unswapped`). The 2D noise of a keypoint is ``noise_fraction`` of the
person's size in that view over the square root of its confidence (as the triangulation
covariance of the ``kalman`` smoother, :func:`mocap.track.smoothing.smooth_people`). A joint
the triangulation lacks is also held at its bone's length from its parent joint and from each
child joint the triangulation has (soft constraints, :func:`bone_update`), which fixes the depth
one camera leaves open; of the two places where that camera's ray meets the bone's sphere about
the parent, the filter keeps the one the motion model and the children's bones find likelier
(:func:`choose_branch`: the filter no longer follows the sphere's far side after a grazing ray);
the RTS pass does not link across a frame where it moved there (a reflection, no Gaussian step).
Offline, each such run of one-camera frames is then fitted as a whole (:mod:`mocap.track.one_view`,
``one_view_fit``).
Before each update, a view whose left/right labels fit the prediction better all exchanged (a
detector's swap the triangulation did not catch) is relabelled (:func:`swap_views`). A joint that no camera
updates for longer than ``max_gap_s`` ends; one the triangulation finds farther than
``restart_m`` from the filter (a teleport, a foot that stopped dead, a track that followed the
wrong limb) restarts there: at once where the triangulated joint keeps its bone's length from
its parent, after ``restart_frames`` frames where it does not (the triangulation took a wrong
joint for a frame or two, which the filter should not follow).

The tracker runs the compiled twin of the filter (:mod:`mocap.track.ukf_compiled`): one compiled
loop over the frames per person, people on parallel threads, in chunks of people that keep the
stored states within :data:`MEMORY_BUDGET`. :func:`forward_filter` is the same forward pass
batched in numpy over people × joints, the reference the tests hold the compiled one to.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np

from mocap._checks import check_choice, check_shape
from mocap.geometry import Rig
from mocap.geometry.lens import distort_normalized
from mocap.match.epipolar import person_sizes
from mocap.skeleton.joints import left_right_permutation
from mocap.triangulation import left_right_limbs, limb_pairs, limb_starts
from mocap.track.one_view import GapEvidence, children, fit_one_view_gaps, gap_motion
from mocap.track.smoothing import SmoothConfig, smooth_people, within_short_gaps
from mocap.threads import run_blocks
from mocap.track.ukf_compiled import MAX_CHILDREN, SWAP_PENALTY, camera_table, forward_kernel, smooth_kernel
from mocap.track.ukf import DIM, SigmaWeights, constant_velocity, predict, rts_smooth, sigma_points, ukf_update

log = logging.getLogger(__name__)

#: ``track.mode`` values: the UKF on the 2D evidence, the online (fixed-lag) UKF, the linear
#: Kalman/RTS smoother of the triangulated 3D (:mod:`mocap.track.smoothing`), or nothing.
MODES = ("ukf", "online", "kalman", "off")

#: Parent of each joint whose bone length holds it where only one camera sees it: the limbs
#: outwards from the torso, the feet from the ankle, the face from the nose.
BONES = {
    "left_elbow": "left_shoulder", "right_elbow": "right_shoulder", "left_wrist": "left_elbow",
    "right_wrist": "right_elbow", "left_knee": "left_hip", "right_knee": "right_hip", "left_ankle": "left_knee",
    "right_ankle": "right_knee", "left_heel": "left_ankle", "right_heel": "right_ankle",
    "left_big_toe": "left_ankle", "right_big_toe": "right_ankle", "left_small_toe": "left_ankle",
    "right_small_toe": "right_ankle", "left_foot_index": "left_ankle", "right_foot_index": "right_ankle",
    "left_eye": "nose", "right_eye": "nose", "left_ear": "nose", "right_ear": "nose",
    "left_pinky": "left_wrist", "right_pinky": "right_wrist", "left_index": "left_wrist",
    "right_index": "right_wrist", "left_thumb": "left_wrist", "right_thumb": "right_wrist",
}

#: A triangulated joint whose bone to its parent (same frame) is within this fraction of the
#: bone's length is taken for right where the filter disagrees with it (the filter lags: a
#: foot that stopped dead) and restarts it at once; one off by more (a wrong joint), or without
#: a bone to check, only after ``restart_frames`` frames in a row. The real two-person take has
#: wrong joints with bones at 0.2x and 3-4x their length for a frame or two; a correct
#: triangulation errs by 1-3 cm on 20-45 cm bones (at most 0.15x).
ODD_BONE = 0.4

#: Acceleration uncertainty m/s² of a joint's first frame in the constant-acceleration model
#: (:func:`mocap.track.ukf.constant_acceleration`, measured against the tracker's constant velocity).
START_ACCELERATION_SIGMA = 10.0

#: ``online``: the bone lengths are the median over this many frames up to each frame (10 s at
#: 30 fps; a live run knows only the past), the take's median otherwise.
BONE_WINDOW = 300

#: ``track.identities`` values (see :class:`TrackConfig`).
IDENTITIES = ("centres", "images")

#: Bytes the stored filtered states may take at once (``(T, N, 6, 6)`` float64 and its twin).
MEMORY_BUDGET = 256e6


@dataclass(frozen=True)
class TrackConfig:
    """How each person's joints are followed over time once their views are known."""

    mode: str = "kalman"
    """``kalman``: linear Kalman/RTS smoother of the triangulated 3D (the ``smooth`` section);
    ``ukf``: unscented Kalman filter on every camera's 2D keypoints + RTS smoother; ``online``:
    the same filter with a fixed-lag smoother (each frame final ``lag_frames`` later) and bone
    lengths from the past frames only (:data:`BONE_WINDOW`); ``off``: the per-frame
    triangulation (as is ``smooth.enabled: false``, ``--no-smooth``, in every mode). In ``mocap
    bench track`` (synthetic crossings) ``ukf`` has 6-8 % lower joint error and 26-28 % less
    jitter than ``kalman``, a 99th percentile within 2 mm of it, and about half its wall time
    per frame (0.39-0.82 against 0.70-1.17 ms since ``kalman``'s gate runs both ways in time).
    ``kalman`` stays the default: ``ukf`` is not better on the real takes with our own
    (BlazePose) detections, bone-length CV 0.042 against 0.037 on the balancing take and 0.056 /
    0.073 against 0.056 / 0.046 on the two-person take (with their OpenPose JSON 0.043 against
    0.044, and 0.043 / 0.006 against 0.044 / 0.006). Every mode runs long takes in chunks, the
    same as one pass (:mod:`mocap.runtime.chunked`)."""
    identities: str = "centres"
    """How people are followed from frame to frame: ``centres``: the per-frame cross-view groups
    linked by body centre and pose (:mod:`mocap.track.linking`); ``images``: every view's 2D
    people first matched to the tracks' predicted projections, the rest grouped across views
    (:mod:`mocap.track.affinity`; 2-7x slower, the same identities on the synthetic crossings)."""
    acceleration_sigma: float = 20.0
    """White-noise acceleration of a joint, m/s² (process noise; smaller smooths more). Measured
    on one performer, 4 cameras, 2 seeds: 12 gives 5.8-6.3 mm mean but a 23-26 mm 99th
    percentile (fast feet lag), 20 gives 5.9-6.3 / 18-21 mm, 30 gives 6.1-6.6 / 17-19 mm."""
    noise_fraction: float = 0.01
    """2D noise (standard deviation) of a confidence-1 keypoint as a fraction of the person's size
    in that view, divided by the square root of the confidence."""
    min_noise_px: float = 0.5
    """Floor of the 2D noise, pixels."""
    gate: float = 5.0
    """A view whose keypoint is farther than this many standard deviations from the predicted one
    (Mahalanobis, 2 dof) is left out of the update."""
    max_gap_s: float = 0.2
    """A joint no camera updates for longer than this ends (restarting at its next triangulation);
    gaps up to this long are filled by the smoother."""
    max_untriangulated_s: float = 0.2
    """A joint the triangulation lacks (one camera, or none) is reported for runs up to this
    long between two triangulated frames; longer runs stay NaN. One camera leaves the depth to
    the motion model and the bone length, which can take the wrong side of the bone: with 0.2 s
    the filled joints err 14 mm on average (the Kalman smoother's gap filling: 18 mm), with 0.5 s
    more are filled at 24-28 mm, 5 % of them over 8 cm (3 performers, 4 cameras)."""
    restart_frames: int = 3
    """A joint restarts from the triangulation where the triangulation found it but the filter
    disagrees (the gate refused every view, or the joint as this frame's update and bones left it
    lies farther than ``restart_m`` from the triangulated joint; measuring from the prediction
    instead gave 123 / 126 / 126 of 128 one-camera runs against 124 / 125 / 125, seeds 1-8 /
    9-16 / 17-24, a one-off build): at once where the triangulated joint lies within
    :data:`ODD_BONE` of its bone's length from its parent (the parent's filtered position), else
    after this many such frames in a row (a wrong joint, or one without a bone to check). On
    the real two-person take the triangulation takes a wrong joint for a frame or two now and
    then; following it at once left the second performer's bone-length CV at 0.19 (now 0.060),
    and on the synthetic crossings this rule measured 6.33 / 6.01 mm against 6.63 / 6.12 mm
    (3 people x 4 cameras, 4 x 5, 300 frames)."""
    restart_m: float = 0.08
    """See ``restart_frames``, metres (robust triangulation errs by 1-3 cm, a wrong limb by 20+;
    a foot that stops dead leaves the constant-velocity prediction 10-30 cm behind, and
    restarting at once measured 5.9 mm mean against 6.9 mm after 3 frames of 15 cm)."""
    max_sigma_m: float = 0.05
    """A joint is reported (not NaN) only where the smoothed uncertainty of its position is at
    most this, metres (largest standard deviation): one camera with a drifting depth is not."""
    bone_sigma_m: float = 0.02
    """A joint without a triangulation this frame (one camera, or none) is held at its bone's
    length from its parent joint, and at its children's bones' lengths from those the
    triangulation has (the medians over the take), within this standard deviation, m."""
    start_velocity_sigma: float = 2.0
    """Velocity uncertainty of a joint's first frame, m/s (it starts at rest)."""
    one_view_fit: bool = True
    """``ukf`` (offline): after the smoother, each run of frames where the triangulation lacks a
    joint that one camera sees is fitted as a whole (:mod:`mocap.track.one_view`: the camera's
    ray, the bones, a motion prior relative to the parent joint learned from real motion capture
    and loosened where the limb moves fast, a Viterbi choice of the bone's side). A joint seen by
    one camera for 0.5 s stays within 5 cm in 124 of 128 runs (``mocap bench track
    --one-camera-only``, seeds 1-8), 125 (9-16) and 125 (17-24), against 115, 117 and 118 without
    (``--no-one-view-fit``). The live tracker (:class:`mocap.track.online.OnlineTracker`) fits
    the run so far, its end free: 119 and 123 of 128 (``--live``) against 108 and 114 (measured
    before the limb-wise relabelling of :func:`unswapped`). The offline ``online`` mode does not
    fit."""
    lag_frames: int = 5
    """``online``: each frame's estimate is smoothed with this many frames after it (final this
    many frames late). Measured on 3 crossing performers: 0 (the filter alone) 9.2 mm, 1: 6.8,
    3: 6.6, 5 and more: 6.6 mm = the whole-take smoother."""

    @property
    def fits_one_view_gaps(self) -> bool:
        """Offline ``ukf`` with ``one_view_fit``: the one-view gaps are fitted."""
        return self.mode == "ukf" and self.one_view_fit

    def __post_init__(self):
        check_choice(self.mode, MODES, "mode")
        check_choice(self.identities, IDENTITIES, "identities")
        for name in ("acceleration_sigma", "noise_fraction", "min_noise_px", "gate", "start_velocity_sigma",
                     "restart_m", "bone_sigma_m", "max_sigma_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.max_gap_s < 0 or self.max_untriangulated_s < 0 or self.restart_frames < 1 or self.lag_frames < 0:
            raise ValueError(f"max_gap_s, restart_frames, lag_frames: expected >= 0, >= 1, >= 0, got "
                             f"{self.max_gap_s}, {self.restart_frames}, {self.lag_frames}")


@dataclass(frozen=True, eq=False)
class FilterEvidence:
    """One chunk of points' inputs, frames first (``N`` = people × joints)."""

    z: np.ndarray
    """``(T, N, C, 2)`` keypoints, pixels."""
    var: np.ndarray
    """``(T, N, C)`` per-axis noise variance, px²."""
    observed: np.ndarray
    """``(T, N, C)`` bool: confident, finite keypoints."""
    start: np.ndarray
    """``(T, N, 3)`` per-frame triangulation (NaN where under two views), metres."""
    parent: np.ndarray
    """``(N,)`` int: index of each point's parent joint (same person), -1 for none."""
    bone: np.ndarray
    """``(T, N)`` length of the bone to the parent per frame, metres (NaN: no constraint)."""
    mirror: np.ndarray | None = None
    """``(J,)`` each joint's left/right twin within a person (itself: none), for the swapped
    labels hypothesis of :func:`swap_views`; None: no such hypothesis."""
    motion: np.ndarray | None = None
    """``(N, 2)`` each point's motion prior for the one-view gap fit
    (:func:`mocap.track.one_view.gap_motion`); None: no gap fit."""

    def part(self, lo: int, hi: int) -> FilterEvidence:
        """Points ``lo:hi`` (whole people: parents stay inside)."""
        return FilterEvidence(self.z[:, lo:hi], self.var[:, lo:hi], self.observed[:, lo:hi], self.start[:, lo:hi],
                              np.where(self.parent[lo:hi] >= 0, self.parent[lo:hi] - lo, -1), self.bone[:, lo:hi],
                              self.mirror, None if self.motion is None else self.motion[lo:hi])


def people_evidence(person: np.ndarray, points: np.ndarray, config: TrackConfig, min_confidence: float,
                    inliers: np.ndarray | None = None, joint_names=None) -> FilterEvidence:
    """The filter's inputs for people given per view.

    Args:
        person: ``(T, P, C, J, 3)`` x px, y px, confidence; NaN where not seen.
        points: ``(T, P, J, 3)`` per-frame triangulation, metres (NaN where it failed).
        config: the noise model.
        min_confidence: keypoints below this confidence (or NaN) are not measurements.
        inliers: optional ``(T, P, J, C)`` bool, the views the triangulation kept: where it
            found the joint, only those are measurements (its view selection is robust to
            outliers a prediction cannot judge); elsewhere every confident view is.
        joint_names: ``(J,)`` names, for the bones (:func:`bone_lengths`); None: none.

    Returns:
        :class:`FilterEvidence` over ``N = P * J`` points (person-major).
    """
    T, P, C, J, _ = person.shape
    size = np.nan_to_num(person_sizes(person, min_confidence), nan=1.0)  # (T, P, C)
    conf = np.moveaxis(person[..., 2], -1, -2)  # (T, P, J, C)
    xy = np.moveaxis(person[..., :2], 2, 3)  # (T, P, J, C, 2)
    with np.errstate(invalid="ignore"):
        observed = (conf >= min_confidence) & np.isfinite(xy).all(-1)
    if inliers is not None:
        observed &= inliers | ~np.isfinite(points).all(-1)[..., None]
    sigma = config.noise_fraction * size[:, :, None, :] / np.sqrt(np.clip(np.nan_to_num(conf), 0.05, None))
    var = np.maximum(sigma, config.min_noise_px) ** 2
    parent, bone = bone_lengths(points, joint_names, causal=config.mode == "online")  # (J,), (T, P, J)
    parents = np.where(parent >= 0, parent + J * np.arange(P)[:, None], -1)  # (P, J) flat indices
    mirror = left_right_permutation(joint_names) if joint_names is not None else None
    fit = joint_names is not None and config.fits_one_view_gaps
    motion = np.tile(gap_motion(joint_names), (P, 1)) if fit else None
    return FilterEvidence(xy.reshape(T, P * J, C, 2), var.reshape(T, P * J, C), observed.reshape(T, P * J, C),
                          points.reshape(T, P * J, 3), parents.ravel(), bone.reshape(T, P * J), mirror, motion)


def bone_lengths(points: np.ndarray, joint_names=None, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's parent in :data:`BONES` and its bone's length per frame: the median over the
    take, or (``causal``, what a live run knows) over the last :data:`BONE_WINDOW` frames up to
    and including that frame.

    Args:
        points: ``(T, P, J, 3)`` per-frame triangulation, metres.
        joint_names: ``(J,)`` names; None: no bones.
        causal: the running median instead of the take's.

    Returns:
        ``(parent (J,), length (T, P, J))``: parent index (-1: none) and metres (NaN: no bone,
        or not yet triangulated with its parent).
    """
    T, P, J, _ = points.shape
    names = list(joint_names) if joint_names is not None else []
    parent = np.array([names.index(BONES[n]) if n in BONES and BONES[n] in names else -1 for n in names] or [-1] * J)
    with np.errstate(invalid="ignore"):
        per_frame = np.where(parent >= 0, np.linalg.norm(points - points[:, :, np.maximum(parent, 0)], axis=-1), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # joints never seen with their parent
        if not causal:
            return parent, np.broadcast_to(np.nanmedian(per_frame, axis=0), (T, P, J))
        padded = np.concatenate([np.full((BONE_WINDOW - 1, P, J), np.nan), per_frame])
        windows = np.lib.stride_tricks.sliding_window_view(padded, BONE_WINDOW, axis=0)  # (T, P, J, W), a view
        length = np.empty((T, P, J))
        for lo in range(0, T, 64):  # the windows' medians 64 frames at a time (bounded memory)
            length[lo:lo + 64] = np.nanmedian(windows[lo:lo + 64], axis=-1)
    return parent, length


def unswapped(rig: Rig, person: np.ndarray, points: np.ndarray, joint_names) -> np.ndarray:
    """``person (T, P, C, J, 3)`` with a view's left and right limb exchanged where the exchanged
    labels lie less than half as far from the triangulated points' projections ``points (T, P, J,
    3)`` as the given ones, summed over the limb's pairs seen on both sides: the robust
    triangulation relabels such views for itself, a whole limb at once
    (:data:`~mocap.triangulation.LIMB_GROUPS`), and its kept views
    refer to the relabelled keypoints, so the filter must see them the same way. A pair seen on
    one side only follows its limb (a view that shows only the left knee, at the right knee's
    place, beside swapped hips and ankles, saw the right knee); a mirrored pair in no limb group
    decides for itself."""
    L, R, limb = limb_pairs(mirror_groups(joint_names))
    if not len(L):
        return person
    proj = rig_measure(rig)(points)  # (T, P, J, C, 2)
    xy = np.moveaxis(person[..., :2], 2, 3)  # (T, P, J, C, 2)
    with np.errstate(invalid="ignore"):
        same = np.linalg.norm(xy[:, :, L] - proj[:, :, L], axis=-1) + np.linalg.norm(xy[:, :, R] - proj[:, :, R], axis=-1)
        cross = np.linalg.norm(xy[:, :, L] - proj[:, :, R], axis=-1) + np.linalg.norm(xy[:, :, R] - proj[:, :, L], axis=-1)
    both = np.isfinite(same) & np.isfinite(cross)  # (T, P, pairs, C)
    starts = limb_starts(limb)
    same_l = np.add.reduceat(np.where(both, same, 0.0), starts, axis=2)  # (T, P, limbs, C)
    cross_l = np.add.reduceat(np.where(both, cross, 0.0), starts, axis=2)
    seen = np.add.reduceat(both, starts, axis=2) > 0
    flip = (seen & (cross_l < 0.5 * same_l))[:, :, limb]  # (T, P, pairs, C)
    t, p, k, c = np.nonzero(flip)
    out = person.copy()
    out[t, p, c, L[k]] = person[t, p, c, R[k]]
    out[t, p, c, R[k]] = person[t, p, c, L[k]]
    return out


def mirror_groups(joint_names) -> list[list[tuple[int, int]]]:
    """The left/right pairs of ``joint_names`` grouped as the triangulation's limbs
    (:func:`~mocap.triangulation.left_right_limbs`), then each mirrored pair in no
    limb as a group of its own."""
    limbs = left_right_limbs(joint_names)
    grouped = {j for pairs in limbs for pair in pairs for j in pair}
    mirror = left_right_permutation(joint_names)
    alone = [[(j, int(mirror[j]))] for j in range(len(mirror))
             if mirror[j] != j and j not in grouped and str(joint_names[j]).startswith("left_")]
    return limbs + alone


def rig_measure(rig: Rig):
    """``points_world (..., 3) -> (..., C, 2)`` pixels in every camera of ``rig``: the model of
    :func:`mocap.geometry.project` (one lens model, :func:`mocap.geometry.lens.distort_normalized`)
    for all cameras in one pass (the filter projects every sigma point of every joint into every
    camera each frame; per-camera calls cost 3x more). NaN at or behind a camera."""
    R, t, K, dist = rig.R, rig.t, rig.K, rig.dist  # (C, 3, 3), (C, 3), (C, 3, 3), (C, 5)
    distorted = np.array([c.has_distortion for c in rig.cameras])

    def measure(points):
        pc = np.einsum("...k,cjk->...cj", points, R) + t  # (..., C, 3)
        z = pc[..., 2:3]
        with np.errstate(invalid="ignore", divide="ignore"):
            xy = np.where(z > 1e-9, pc[..., :2] / z, np.nan)
        if distorted.any():
            xy = np.where(distorted[:, None], distort_normalized(xy, dist), xy)
        u = K[:, 0, 0] * xy[..., 0] + K[:, 0, 1] * xy[..., 1] + K[:, 0, 2]
        v = K[:, 1, 1] * xy[..., 1] + K[:, 1, 2]
        return np.stack([u, v], axis=-1)

    return measure


def filter_people(rig: Rig, person: np.ndarray, points: np.ndarray, fps: float, config: TrackConfig | None = None,
                  min_confidence: float = 0.2, inliers: np.ndarray | None = None,
                  joint_names=None, motion: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """People's joints filtered on their 2D keypoints and smoothed.

    Args:
        rig: the calibration (cameras in the order of axis ``C``).
        person: ``(T, P, C, J, 3)`` the people's 2D evidence per view (x px, y px, confidence).
        points: ``(T, P, J, 3)`` their per-frame triangulation, metres: where joints start.
        fps: frames per second.
        config: filter settings (``mode`` ``online`` smooths with a fixed lag, else the whole take).
        min_confidence: weaker keypoints are not measurements.
        inliers: optional ``(T, P, J, C)`` views the triangulation kept (:func:`people_evidence`).
        joint_names: ``(J,)`` names: views whose left/right labels the triangulation exchanged
            are exchanged for the filter too (:func:`unswapped`); None: no check.
        motion: ``(F, Q)`` of one frame step of another motion model (e.g.
            :func:`mocap.track.ukf.constant_acceleration`), run by the numpy reference filter
            (:func:`reference_points`; slower, for measurements); None: the tracker's compiled
            constant-velocity filter.

    Returns:
        ``(positions (T, P, J, 3), views (T, P, J))``: metres, NaN before a joint's first
        triangulation, after its last update and in gaps over ``max_gap_s``; the number of
        cameras that updated each joint.
    """
    config = config or TrackConfig()
    person = check_shape(np.asarray(person, dtype=np.float64), "T P C J 3", "person")
    T, P, C, J, _ = person.shape
    points = check_shape(np.asarray(points, dtype=np.float64), f"{T} {P} {J} 3", "points")
    if len(rig) != C:
        raise ValueError(f"person: expected {len(rig)} cameras (the rig's) on axis 2, got {C}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number, got {fps}")
    if joint_names is not None:
        person = unswapped(rig, person, points, joint_names)
    ev = people_evidence(person, points, config, min_confidence, inliers, joint_names)
    N = P * J
    out, views = np.full((T, N, 3), np.nan), np.zeros((T, N), dtype=np.int64)
    n = DIM if motion is None else len(motion[0])
    chunk = J * max(1, int(MEMORY_BUDGET // (max(T, 1) * 2 * 8 * (n * n + n) * J)))  # whole people
    for lo in range(0, N, chunk):
        part = slice(lo, min(lo + chunk, N))
        sub = ev.part(lo, min(lo + chunk, N))
        out[:, part], views[:, part] = (filter_points(rig, sub, J, fps, config) if motion is None
                                        else reference_points(rig, sub, fps, config, *motion))
    return out.reshape(T, P, J, 3), views.reshape(T, P, J)


def compiled_forward(rig: Rig, ev: FilterEvidence, joints: int, F: np.ndarray, Q: np.ndarray,
                     config: TrackConfig) -> ForwardPass:
    """:func:`forward_filter` compiled (:func:`mocap.track.ukf_compiled.forward_kernel`): the
    same states to rounding (tested), people of ``joints`` points each on parallel threads;
    ``Q (N, 6, 6)`` per point."""
    T, N = ev.start.shape[:2]
    w = SigmaWeights.merwe()
    xs, Ps = np.full((T, N, DIM), np.nan), np.full((T, N, DIM, DIM), np.nan)
    linked, views = np.zeros((T, N), bool), np.zeros((T, N), np.int64)
    settings = (float(config.gate), int(np.floor(config.max_gap_s / abs(F[0, 3]))), float(config.restart_m),
                int(config.restart_frames), float(config.bone_sigma_m), float(config.start_velocity_sigma), ODD_BONE)
    evt = (np.array(ev.z, order="C"), np.array(ev.var, order="C"), np.array(ev.observed, order="C"),  # copies:
           np.ascontiguousarray(ev.start), ev.parent.astype(np.int64),  # the kernel relabels swapped views
           np.ascontiguousarray(ev.bone, dtype=np.float64))
    mirror = np.arange(joints) if ev.mirror is None else ev.mirror.astype(np.int64)
    run_blocks(forward_kernel, N // joints, joints, evt, camera_table(rig), F, np.ascontiguousarray(Q),
               (w.wm, w.wc, w.lam), settings, (xs, Ps, linked, views), mirror)
    return ForwardPass(xs, Ps, linked, views)


def smoothed(fwd: ForwardPass, F: np.ndarray, Q: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The backward pass (:func:`mocap.track.ukf_compiled.smooth_kernel`; ``lag < 0``: the whole
    take): ``(positions (T, N, 3), largest position standard deviation (T, N))``."""
    T, N = fwd.views.shape
    positions, sd = np.full((T, N, 3), np.nan), np.full((T, N), np.nan)
    run_blocks(smooth_kernel, N, fwd.xs, fwd.Ps, F, Q, fwd.linked, lag, positions, sd, min_block=16)
    return positions, sd


def filter_points(rig: Rig, ev: FilterEvidence, joints: int, fps: float,
                  config: TrackConfig) -> tuple[np.ndarray, np.ndarray]:
    """Forward UKF over ``ev``'s points (people of ``joints`` points each), then the RTS pass
    (whole take, or fixed lag when ``config.mode == "online"``), compiled
    (:mod:`mocap.track.ukf_compiled`), then the one-view gap fit. Returns ``(positions (T, N,
    3), views (T, N))``."""
    fwd, positions, sd = forward_and_smoothed(rig, ev, joints, fps, config)
    positions, sd = one_view_gaps(rig, ev, fwd, positions, sd, fps, config)
    return reported(positions, sd, fwd.views, ev, fps, config), fwd.views


def forward_and_smoothed(rig: Rig, ev: FilterEvidence, joints: int, fps: float,
                         config: TrackConfig) -> tuple[ForwardPass, np.ndarray, np.ndarray]:
    """:func:`filter_points` up to the gap fit: ``(forward pass, smoothed positions (T, N, 3),
    their largest standard deviation (T, N))``."""
    N = ev.start.shape[1]
    F, Q = constant_velocity(1.0 / fps, config.acceleration_sigma)
    Qn = np.ascontiguousarray(np.broadcast_to(Q, (N, DIM, DIM)))
    fwd = compiled_forward(rig, ev, joints, F, Qn, config)
    positions, sd = smoothed(fwd, F, Qn, config.lag_frames if config.mode == "online" else -1)
    return fwd, positions, sd


def reference_points(rig: Rig, ev: FilterEvidence, fps: float, config: TrackConfig, F: np.ndarray,
                     Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`filter_points` through the numpy reference (:func:`forward_filter`, then
    :func:`~mocap.track.ukf.rts_smooth` or :func:`fixed_lag_smooth`) with any motion model ``F``,
    ``Q`` whose state starts with position and velocity (``(n, n)``, ``n`` = 6 or 9)."""
    fwd = forward_filter(rig_measure(rig), ev, F, Q, config, rig_centres(rig))
    if config.mode == "online":
        xs, Ps = fixed_lag_smooth(fwd.xs, fwd.Ps, F, Q, fwd.linked, config.lag_frames)
    else:
        xs, Ps = rts_smooth(fwd.xs, fwd.Ps, F, Q, fwd.linked)
    alive = np.isfinite(xs[..., :3]).all(-1)
    sd = np.full(alive.shape, np.nan)
    sd[alive] = np.sqrt(np.maximum(np.linalg.eigvalsh(Ps[alive][:, :3, :3])[:, -1], 0.0))
    positions, sd = one_view_gaps(rig, ev, fwd, xs[..., :3], sd, fps, config)
    return reported(positions, sd, fwd.views, ev, fps, config), fwd.views


def one_view_gaps(rig: Rig, ev: FilterEvidence, fwd: ForwardPass, positions: np.ndarray, sd: np.ndarray,
                  fps: float, config: TrackConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mocap.track.one_view.fit_one_view_gaps` where ``ev`` asks for it (its ``motion``: offline
    ``ukf``, :attr:`TrackConfig.fits_one_view_gaps`), else ``(positions, sd)`` as they are."""
    if ev.motion is None:
        return positions, sd
    return fit_one_view_gaps(rig, gap_evidence(ev, fwd), positions, sd, fps,
                             int(np.floor(config.max_untriangulated_s * fps)))


def gap_evidence(ev: FilterEvidence, fwd: ForwardPass) -> GapEvidence:
    """What :mod:`mocap.track.one_view` reads of the filter's inputs and forward pass."""
    return GapEvidence(ev.z, ev.var, ev.observed, np.isfinite(ev.start).all(-1), ev.parent, ev.bone, ev.motion,
                       fwd.xs[..., :3], fwd.views)


def reported(positions: np.ndarray, sd: np.ndarray, views: np.ndarray, ev: FilterEvidence, fps: float,
             config: TrackConfig) -> np.ndarray:
    """``positions (T, N, 3)`` NaN where no camera updated a joint for over ``max_gap_s``, where
    the triangulation lacked it for over ``max_untriangulated_s``, or where the evidence no longer
    pins it down (one camera and a drifting depth: the largest standard deviation ``sd`` over
    ``max_sigma_m``): such a joint is reported missing rather than guessed."""
    keep = within_short_gaps(views > 0, int(np.floor(config.max_gap_s * fps)))
    keep &= within_short_gaps(np.isfinite(ev.start).all(-1), int(np.floor(config.max_untriangulated_s * fps)))
    keep &= sd <= config.max_sigma_m
    return np.where(keep[..., None], positions, np.nan)


@dataclass(frozen=True, eq=False)
class ForwardPass:
    """What the forward filter leaves for the backward pass (``N`` points)."""

    xs: np.ndarray
    """``(T, N, 6)`` filtered states, NaN where a joint is not alive."""
    Ps: np.ndarray
    """``(T, N, 6, 6)`` their covariances."""
    linked: np.ndarray
    """``(T, N)`` bool: frame ``t`` was predicted from frame ``t - 1`` of the same run."""
    views: np.ndarray
    """``(T, N)`` int: cameras that updated the joint (at a start: that saw it)."""


def forward_filter(measure, ev: FilterEvidence, F: np.ndarray, Q: np.ndarray, config: TrackConfig,
                   centres: np.ndarray) -> ForwardPass:
    """The forward pass over ``ev``'s points with motion model ``F``, ``Q``, batched in numpy (the
    reference of :func:`compiled_forward`, which the tracker runs); ``centres (C, 3)``: the
    cameras' centres (:func:`rig_centres`)."""
    T, N = ev.start.shape[:2]
    n = len(F)  # 6: position and velocity; 9: and acceleration (it starts at zero, :data:`START_ACCELERATION_SIGMA`)
    kids, cam1 = children_table(ev.parent), np.full(N, -1)
    weights = SigmaWeights.merwe(n)
    x, P = np.zeros((N, n)), np.zeros((N, n, n))
    alive, last, strikes = np.zeros(N, bool), np.zeros(N, np.int64), np.zeros(N, np.int64)
    xs, Ps = np.full((T, N, n), np.nan), np.full((T, N, n, n), np.nan)
    linked, views = np.zeros((T, N), bool), np.zeros((T, N), np.int64)
    max_gap = int(np.floor(config.max_gap_s / abs(F[0, 3])))
    P0 = np.diag([0.0] * 3 + [config.start_velocity_sigma ** 2] * 3 + [START_ACCELERATION_SIGMA ** 2] * (n - 6))
    ev = replace(ev, z=ev.z.copy(), var=ev.var.copy(), observed=ev.observed.copy())  # relabelled below
    for t in range(T):
        alive &= t - last <= max_gap + 1
        x[alive], P[alive] = predict(x[alive], P[alive], F, Q)
        if ev.mirror is not None:
            swap_views(ev, t, x, P, alive, measure, weights, config.gate)
        prior = (x[:, :3].copy(), P[:, :3, :3].copy())  # the prediction, for the side of a bone
        has_start = np.isfinite(ev.start[t]).all(-1)
        upd = alive & ev.observed[t].any(-1)
        if upd.any():
            x[upd], P[upd], used = ukf_update(x[upd], P[upd], ev.z[t, upd], ev.var[t, upd], ev.observed[t, upd],
                                              measure, weights, config.gate)
            views[t, upd] = used.sum(-1)
            cam1[upd] = np.where(used.any(-1), used.argmax(-1), -1)
        x_upd, alive_upd = x[:, :3].copy(), alive.copy()  # each parent as the camera update left it
        cameras = (x_upd, P[:, :3, :3].copy(), alive_upd, views[t], cam1, centres)
        x, P, flipped = hold_on_bones(ev, t, x, P, cameras, prior, kids, config.bone_sigma_m)
        refused = (views[t] == 0) & ev.observed[t].any(-1)
        with np.errstate(invalid="ignore"):
            refused |= np.linalg.norm(x[:, :3] - ev.start[t], axis=-1) > config.restart_m
        refused &= alive & has_start
        strikes = np.where(refused, strikes + 1, 0)
        with np.errstate(invalid="ignore", divide="ignore"):  # a wrong joint: its bone far off its length
            ref = np.where(alive_upd[np.maximum(ev.parent, 0), None], x_upd[np.maximum(ev.parent, 0)],
                           ev.start[t, np.maximum(ev.parent, 0)])  # the parent's filtered position, if alive
            tri_bone = np.linalg.norm(ev.start[t] - ref, axis=-1)
            odd = ~((ev.parent >= 0) & (np.abs(tri_bone / ev.bone[t] - 1) <= ODD_BONE))  # or no bone to check
        new = has_start & (~alive | (strikes >= np.where(odd, config.restart_frames, 1)))
        linked[t] = alive & ~new & ~flipped  # a reflected state is no Gaussian step: no RTS across it
        x[new] = np.concatenate([ev.start[t, new], np.zeros((new.sum(), n - 3))], axis=1)
        P[new] = P0
        P[new, :3, :3] = np.eye(3) * _start_variance(ev, t, new)[:, None, None]
        views[t, new] = np.maximum(views[t, new], ev.observed[t, new].sum(-1))
        alive |= new
        strikes[new] = 0
        last = np.where(views[t] > 0, t, last)
        xs[t, alive], Ps[t, alive] = x[alive], P[alive]
    return ForwardPass(xs, Ps, linked, views)


def swap_views(ev: FilterEvidence, t: int, x: np.ndarray, P: np.ndarray, alive: np.ndarray, measure,
               weights: SigmaWeights, gate: float) -> None:
    """Left/right swap hypotheses of frame ``t``: a view whose labels, all exchanged (a detector
    that took a person's left for their right), fit the predicted joints ``x, P`` better than
    as given has them exchanged in ``ev``'s keypoints, variances and masks (in place) before the
    update. Each view of each person is scored under both labellings by the unscented
    prediction of its keypoints (-2 log-likelihood: Mahalanobis distance², capped at ``gate²``
    for an outlier, plus log det), over the keypoints whose joint and twin are alive; the
    exchanged labels must win by :data:`~mocap.track.ukf_compiled.SWAP_PENALTY` (a swap's prior
    odds). The triangulation relabels the swapped views it recognises (:func:`unswapped`); this
    catches those it does not (side-on views, where left and right project close, whose
    keypoints it may keep as inliers) and those of joints it lacks."""
    N, C = ev.observed.shape[1:]
    J = len(ev.mirror)
    twin = (ev.mirror[None] + J * np.arange(N // J)[:, None]).ravel()  # (N,)
    pok = alive & alive[twin] & (twin != np.arange(N))
    pred, S = np.full((N, C, 2), np.nan), np.full((N, C, 3), np.nan)
    if pok.any():
        sig = sigma_points(x[pok], P[pok], weights.lam)  # (n, S, 6)
        zs = measure(sig[..., :3])  # (n, S, C, 2)
        mean = np.tensordot(weights.wm, zs, axes=(0, 1))  # (n, C, 2)
        d = zs - mean[:, None]
        pred[pok] = mean
        S[pok] = np.stack([np.tensordot(weights.wc, d[..., 0] * d[..., 0], axes=(0, 1)),
                           np.tensordot(weights.wc, d[..., 0] * d[..., 1], axes=(0, 1)),
                           np.tensordot(weights.wc, d[..., 1] * d[..., 1], axes=(0, 1))], -1)
    ok = ev.observed[t] & np.isfinite(ev.z[t]).all(-1) & np.isfinite(pred).all(-1) & np.isfinite(pred[twin]).all(-1)

    def cost(m, Sm):  # (N, C)
        a, b, d = Sm[..., 0] + ev.var[t], Sm[..., 1], Sm[..., 2] + ev.var[t]
        det = a * d - b * b
        v = ev.z[t] - m
        with np.errstate(invalid="ignore", divide="ignore"):
            d2 = (d * v[..., 0] ** 2 - 2 * b * v[..., 0] * v[..., 1] + a * v[..., 1] ** 2) / det
            return np.where(ok, np.minimum(d2, gate ** 2) + np.log(det), 0.0)

    same = cost(pred, S).reshape(-1, J, C).sum(1)  # (people, C)
    cross = cost(pred[twin], S[twin]).reshape(-1, J, C).sum(1)
    flip = ok.reshape(-1, J, C).any(1) & (cross + SWAP_PENALTY < same)
    flip = np.repeat(flip, J, axis=0)  # (N, C)
    for a in (ev.z, ev.var, ev.observed):
        a[t] = np.where(flip.reshape(flip.shape + (1,) * (a.ndim - 3)), a[t, twin], a[t])


def rig_centres(rig: Rig) -> np.ndarray:
    """``(C, 3)`` the cameras' centres ``-Rᵀ t``, metres."""
    return -np.einsum("cki,ck->ci", rig.R, rig.t)


def children_table(parent: np.ndarray) -> np.ndarray:
    """``(N, MAX_CHILDREN)`` each point's children in :data:`BONES` (flat indices, ascending; -1:
    none), as :func:`mocap.track.ukf_compiled.children` lists them."""
    kids = children(parent)[:, :MAX_CHILDREN]
    return np.pad(kids, ((0, 0), (0, MAX_CHILDREN - kids.shape[1])), constant_values=-1)


def hold_on_bones(ev: FilterEvidence, t: int, x: np.ndarray, P: np.ndarray, cameras: tuple, prior: tuple,
                  kids: np.ndarray, sigma_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``t``'s bones: each joint alive without a triangulation is held at its bone's length
    from its parent and from each child the triangulation has (:func:`bone_update`), on the
    likelier side of the parent (:func:`choose_branch`) where one camera updated it.

    Args:
        ev: the evidence; ``x (N, 6)``, ``P (N, 6, 6)`` the states after the camera update.
        cameras: ``(positions (N, 3), covariances (N, 3, 3), alive (N,), views (N,), camera (N,),
            centres (C, 3))`` after the camera update (the one camera where ``views == 1``).
        prior: ``(positions (N, 3), covariances (N, 3, 3))`` predicted.
        kids: :func:`children_table`; ``sigma_m``: a bone's standard deviation, metres.

    Returns:
        ``(x, P, flipped (N,))``: ``flipped`` where :func:`choose_branch` reflected the state.
    """
    pos, cov, alive, views, cam, centres = cameras
    has_start = np.isfinite(ev.start[t]).all(-1)
    par = np.maximum(ev.parent, 0)
    held = alive & ~has_start & np.isfinite(ev.bone[t]) & (ev.parent >= 0) & alive[par]
    k = np.maximum(kids, 0)
    kid_ok = (kids >= 0) & alive[k] & has_start[k] & np.isfinite(ev.bone[t, k])  # (N, K)
    one, flipped = held & (views == 1), np.zeros(len(x), bool)
    if one.any():
        x[one], P[one], flipped[one] = choose_branch(
            x[one], P[one], pos[par[one]], centres[cam[one]], (prior[0][one], prior[1][one]),
            (pos[k[one]], ev.bone[t, k[one]], cov[k[one]], kid_ok[one]), sigma_m)
    if held.any():
        x[held], P[held] = bone_update(x[held], P[held], pos[par[held]], cov[par[held]], ev.bone[t, held], sigma_m)
    for i in range(kids.shape[1]):
        ok = held & kid_ok[:, i]
        if ok.any():
            x[ok], P[ok] = bone_update(x[ok], P[ok], pos[kids[ok, i]], cov[kids[ok, i]], ev.bone[t, kids[ok, i]],
                                       sigma_m)
    return x, P, flipped


def branch_cost(h: np.ndarray, prior: tuple, kids: tuple, sigma_m: float) -> np.ndarray:
    """``(n,)`` how unlikely joints at ``h (n, 3)`` are: the Mahalanobis distance² from their
    predicted positions ``prior (positions (n, 3), covariances (n, 3, 3))`` plus, for each child
    the triangulation has, its bone's misfit² over ``sigma_m²`` and the child's mean position
    variance. ``kids``: ``(positions (n, K, 3), lengths (n, K), covariances (n, K, 3, 3), ok (n, K))``."""
    d = h - prior[0]
    cost = np.einsum("ni,ni->n", d, np.linalg.solve(prior[1], d[..., None])[..., 0])
    pos, length, cov, ok = kids
    with np.errstate(invalid="ignore"):
        misfit = (np.linalg.norm(h[:, None] - pos, axis=-1) - length) ** 2
        var = sigma_m ** 2 + np.trace(cov, axis1=-2, axis2=-1) / 3
    return cost + np.where(ok, misfit / var, 0.0).sum(-1)


def choose_branch(x: np.ndarray, P: np.ndarray, parent: np.ndarray, centre: np.ndarray, prior: tuple, kids: tuple,
                  sigma_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two places where one camera's ray meets a bone's sphere about the parent are mirror
    images across the foot of the perpendicular from the parent to the ray: joints whose mirror
    image scores lower (:func:`branch_cost`: the motion model's prediction and the children's
    bones) have their states (position about that point, velocity along the ray) and
    covariances reflected there; returns ``(x, P, flipped (n,))``.

    Args:
        x: ``(n, 6)`` states after one camera's update; ``P (n, 6, 6)``.
        parent: ``(n, 3)`` parents' positions; ``centre (n, 3)`` that camera's centre.
        prior, kids: as :func:`branch_cost`.
    """
    r = x[:, :3] - centre
    r = r / np.linalg.norm(r, axis=-1, keepdims=True)
    mirror = x[:, :3] - 2 * np.einsum("ni,ni->n", x[:, :3] - parent, r)[:, None] * r
    flip = branch_cost(mirror, prior, kids, sigma_m) < branch_cost(x[:, :3], prior, kids, sigma_m)
    H = np.eye(3) - 2 * r[:, :, None] * r[:, None, :]
    M = np.zeros((len(x),) + P.shape[1:])
    for k in range(0, P.shape[-1], 3):  # position, velocity (and acceleration) reflected alike
        M[:, k:k + 3, k:k + 3] = H
    x_m = np.concatenate([mirror] + [np.einsum("nij,nj->ni", H, x[:, k:k + 3]) for k in range(3, x.shape[-1], 3)],
                         axis=1)
    return np.where(flip[:, None], x_m, x), np.where(flip[:, None, None], M @ P @ M, P), flip


def bone_update(x: np.ndarray, P: np.ndarray, parent: np.ndarray, P_parent: np.ndarray, length: np.ndarray,
                sigma_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft bone-length constraint: the pseudo-measurement ``|x - parent| = length`` (EKF,
    linearised at the prediction; the parent's uncertainty along the bone adds to ``sigma_m``).
    With one camera it fixes the depth along that camera's ray that the motion model alone
    lets drift.

    Args:
        x: ``(n, 6)`` states; ``P (n, 6, 6)``.
        parent: ``(n, 3)`` parent joints' positions; ``P_parent (n, 3, 3)`` their covariances.
        length: ``(n,)`` bone lengths, metres.
        sigma_m: standard deviation of a bone's length over time, metres.
    """
    d = x[:, :3] - parent
    h = np.linalg.norm(d, axis=-1)
    u = d / np.maximum(h, 1e-9)[:, None]  # (n, 3)
    S = (np.einsum("ni,nij,nj->n", u, P[:, :3, :3], u) + np.einsum("ni,nij,nj->n", u, P_parent, u)
         + sigma_m ** 2)
    K = np.einsum("nij,nj->ni", P[:, :, :3], u) / S[:, None]  # (n, 6)
    x = x + K * (length - h)[:, None]
    P = P - S[:, None, None] * K[:, :, None] * K[:, None, :]
    return x, 0.5 * (P + np.swapaxes(P, -1, -2))


def _start_variance(ev: FilterEvidence, t: int, new: np.ndarray) -> np.ndarray:
    """Position variance m² of joints starting from the triangulation at frame ``t``: the 2D
    noise carried to the person's depth (about 3 m at fx ≈ 1000: 1 px ≈ 3 mm), at least 1 cm²."""
    var_px = np.where(ev.observed[t, new], ev.var[t, new], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no observed view: the default below
        px2 = np.nanmean(var_px, axis=-1)
    return np.maximum(np.nan_to_num(px2, nan=100.0) * 0.003 ** 2 * 4, 1e-4)


def fixed_lag_smooth(xs: np.ndarray, Ps: np.ndarray, F: np.ndarray, Q: np.ndarray, linked: np.ndarray,
                     lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame ``t`` smoothed with frames ``t+1 … t+lag`` only (what a live run can emit
    ``lag`` frames late): ``(states (T, N, 6), covariances (T, N, 6, 6))``."""
    T = len(xs)
    out, Pout = xs.copy(), Ps.copy()
    if lag == 0:
        return out, Pout
    for end in range(lag, T):
        lo = end - lag
        window, Pwindow = rts_smooth(xs[lo:end + 1], Ps[lo:end + 1], F, Q, linked[lo:end + 1])
        out[lo], Pout[lo] = window[0], Pwindow[0]
    # the last ``lag`` frames: smoothed with what follows them (a live run flushes at its end)
    lo = max(0, T - lag)
    out[lo:], Pout[lo:] = rts_smooth(xs[lo:], Ps[lo:], F, Q, linked[lo:])
    return out, Pout


def follow_people(rig: Rig, tri, person: np.ndarray, fps: float, config: TrackConfig, smooth: SmoothConfig,
                  min_confidence: float = 0.2, joint_names=None, motion: tuple | None = None) -> np.ndarray:
    """People's joints over the take as ``config.mode`` says: ``(T, P, J, 3)`` metres.

    Args:
        rig: the calibration.
        tri: the people's per-frame :class:`~mocap.triangulation.Triangulation` over ``(T, P, J)``.
        person: ``(T, P, C, J, 3)`` the 2D evidence it came from.
        fps: frames per second.
        config: the mode and the UKF's settings.
        smooth: the ``kalman`` mode's settings; ``smooth.enabled = False`` (``--no-smooth``)
            keeps the per-frame triangulation whatever the mode.
        min_confidence: weaker keypoints are not measurements.
        joint_names: ``(J,)`` names, for the left/right relabelling of :func:`unswapped`.
        motion: ``ukf`` and ``online``: another motion model for the numpy reference filter
            (:func:`filter_people`); None: the tracker's.
    """
    if config.mode == "off" or not smooth.enabled:
        return tri.points
    if config.mode == "kalman":
        points = smooth_people(rig, tri, person, fps, smooth, min_confidence)
    else:
        points, views = filter_people(rig, person, tri.points, fps, config, min_confidence, tri.inliers,
                                      joint_names, motion)
        log.info("%s tracking: %.1f%% of joint positions updated by one camera alone", config.mode,
                 100 * float(np.mean(views[np.isfinite(points).all(-1)] == 1)) if np.isfinite(points).any() else 0.0)
    filled = np.isfinite(points).all(-1) & ~np.isfinite(tri.points).all(-1)
    log.info("%s tracking: %d joint positions filled where the triangulation had none", config.mode, int(filled.sum()))
    return points
