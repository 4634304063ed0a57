"""People for the synthetic studio: real CMU motion, resampled, placed and turned in the volume."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mocap.errors import MocapError
from mocap.io.bvh import read_bvh
from mocap.paths import shared_data_dir
from mocap.skeleton.joints import CANONICAL_JOINTS
from mocap.synthetic.cmu import cmu_to_canonical


#: Most CMU clips open on a reference pose (a T-pose at frame 0; ``cmu_more/07_12`` frames 0-1):
#: the leading frames up to the last jump of a joint over this many metres between two of the
#: first :data:`REFERENCE_LOOK` frames are that pose.
REFERENCE_JUMP_M = 0.3
REFERENCE_LOOK = 5


def first_motion_frame(positions: np.ndarray) -> int:
    """The first frame of a clip ``positions (T, J, 3)`` after its reference pose (0 where it has
    none)."""
    steps = np.diff(positions[:REFERENCE_LOOK], axis=0)
    jumps = np.linalg.norm(steps, axis=-1).max(-1) > REFERENCE_JUMP_M
    return int(np.flatnonzero(jumps)[-1]) + 1 if jumps.any() else 0


@dataclass(frozen=True)
class Placement:
    """Where and when one person's clip plays.

    Attributes:
        clip: CMU clip name (``131_01`` -> ``motion/cmu/131_01.bvh`` in the shared data).
        x, y: world position (metres) of the clip's mean pelvis ground position.
        yaw: rotation about world Z, radians, applied about that mean position.
        start: time in the clip (seconds) shown at the scene's first frame.
    """

    clip: str
    x: float
    y: float
    yaw: float
    start: float


@functools.lru_cache(maxsize=16)
def load_cmu_clip(clip: str) -> tuple[np.ndarray, float]:
    """Canonical joint positions ``(T_src, len(CANONICAL_JOINTS), 3)`` (world metres, read-only)
    of a CMU clip in the shared data (``motion/cmu/<clip>.bvh``, or ``motion/<folder>/<name>.bvh``
    for a ``clip`` named ``<folder>/<name>``, e.g. ``cmu_more/05_06``), and its frame rate.

    The frame rate is snapped to the nearest integer when within 0.1 % of it (CMU's
    ``Frame Time: .0083333`` is 1/120 s rounded), so that integer ratios resample exactly. The
    clip's reference pose (:func:`first_motion_frame`) is replaced by its first frame of motion,
    so clip times stay as in the file: a scene whose clip turns at its start (ping-pong) showed
    the performer in a T-pose for one frame, a jump of up to 1.3 m no tracker should follow.
    """
    path = shared_data_dir() / "motion" / ("" if "/" in clip else "cmu") / f"{clip}.bvh"  # "cmu_more/05_06"
    if not path.is_file():
        raise MocapError(f"CMU clip {clip!r} not found at {path}; use one of the .bvh files in "
                         f"{path.parent} (or set $MOCAP_SHARED_DATA)")
    motion = read_bvh(path)
    positions, _ = cmu_to_canonical(motion)
    first = first_motion_frame(positions)
    positions[:first] = positions[first]  # no teleport to the reference pose where the clip turns
    positions.setflags(write=False)
    fps = motion.fps
    if abs(fps - round(fps)) < 1e-3 * fps:
        fps = float(round(fps))
    return positions, fps


def resample_clip(positions: np.ndarray, src_fps: float, fps: float, num_frames: int, start: float) -> np.ndarray:
    """Frames ``(num_frames, J, 3)`` of a clip ``positions (T_src, J, 3)`` at ``fps``.

    Output frame ``k`` shows clip time ``start + k / fps``. The clip plays forwards then
    backwards (ping-pong) when the scene outlasts it, so motion stays continuous. Times that
    fall on source frames are copied exactly; others are linearly interpolated (at 120 Hz
    source rate this changes bone lengths by well under a millimetre).
    """
    n = positions.shape[0]
    if n < 2:
        raise ValueError("positions: a clip needs at least 2 frames")
    idx = clip_frames(src_fps, fps, num_frames, start)
    period = 2 * (n - 1)
    u = np.mod(idx, period)
    idx = np.where(u <= n - 1, u, period - u)
    lo = np.clip(np.floor(idx).astype(np.int64), 0, n - 2)
    w = (idx - lo)[:, None, None]
    return positions[lo] * (1 - w) + positions[lo + 1] * w


def clip_frames(src_fps: float, fps: float, num_frames: int, start: float) -> np.ndarray:
    """``(num_frames,)`` the clip's (fractional) source frame that each output frame of
    :func:`resample_clip` shows before the ping-pong fold (within 1e-9 of an integer snapped to
    it, so exact ratios copy frames bit for bit)."""
    idx = start * src_fps + np.arange(num_frames) * (src_fps / fps)
    return np.where(np.abs(idx - np.round(idx)) < 1e-9, np.round(idx), idx)


def near_turns(placement: Placement, num_frames: int, fps: float, margin_s: float = 0.1) -> np.ndarray:
    """``(num_frames,)`` bool: the output frames within ``margin_s`` seconds (whole frames, at
    least one) of a turn of the ping-pong playback (:func:`resample_clip`), where every joint's
    velocity reverses from one frame to the next: no body moves so (a joint at 2 m/s reversing
    in 1/30 s is 120 m/s²), so the benches count a tracker's errors there apart."""
    margin = max(1, int(np.ceil(margin_s * fps - 1e-9)))
    positions, src_fps = load_cmu_clip(placement.clip)
    leg = np.floor(clip_frames(src_fps, fps, num_frames, placement.start) / (len(positions) - 1))
    turn = np.flatnonzero(leg[1:] != leg[:-1])  # the turn lies between frames k and k + 1
    near = np.zeros(num_frames, bool)
    for k in turn:
        near[max(0, k - margin + 1):k + margin + 1] = True
    return near


def random_placements(num_people: int, clips: tuple[str, ...], radius: float,
                      rng: np.random.Generator) -> tuple[Placement, ...]:
    """Random placements: clip ``p % len(clips)``, centre uniform in a disc of ``radius`` metres
    around the origin, yaw uniform, start uniform over the clip."""
    out = []
    for p in range(num_people):
        clip = clips[p % len(clips)]
        positions, src_fps = load_cmu_clip(clip)
        r = radius * np.sqrt(rng.uniform())
        a = rng.uniform(0, 2 * np.pi)
        start = rng.uniform(0, (positions.shape[0] - 1) / src_fps)
        out.append(Placement(clip, float(r * np.cos(a)), float(r * np.sin(a)), float(rng.uniform(0, 2 * np.pi)),
                             float(start)))
    return tuple(out)


def place_people(placements: tuple[Placement, ...], num_frames: int, fps: float,
                 joint_names=CANONICAL_JOINTS) -> np.ndarray:
    """World positions ``(T, P, J, 3)`` metres of every person, Z up.

    Each clip is resampled to ``fps``, moved so that its mean pelvis ground position over the
    shown frames is at ``(x, y)``, and turned by ``yaw`` about the vertical through that point.
    Heights are kept (the CMU floor is z = 0).
    """
    idx = [CANONICAL_JOINTS.index(n) for n in joint_names]
    pelvis = CANONICAL_JOINTS.index("pelvis")
    out = np.empty((num_frames, len(placements), len(idx), 3))
    for p, pl in enumerate(placements):
        positions, src_fps = load_cmu_clip(pl.clip)
        frames = resample_clip(positions, src_fps, fps, num_frames, pl.start)
        centre = frames[:, pelvis, :2].mean(axis=0)
        c, s = np.cos(pl.yaw), np.sin(pl.yaw)
        rot = np.array([[c, -s], [s, c]])
        xy = (frames[:, idx, :2] - centre) @ rot.T + np.array([pl.x, pl.y])
        out[:, p, :, :2] = xy
        out[:, p, :, 2] = frames[:, idx, 2]
    return out
