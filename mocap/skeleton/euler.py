"""Euler angle sequences without jumps, for animation curves (BVH channels, FBX curves).

A rotation has two Tait–Bryan decompositions, ``(a, b, c)`` and ``(a + pi, pi - b, c + pi)``,
each defined up to 2*pi per angle. :func:`rotmat_to_euler_continuous` picks, frame by frame,
the decomposition and 2*pi shifts closest to the previous frame, so curves stay continuous
through +-180 degrees and through the branch switch near gimbal lock (middle angle +-90 degrees).
Which order a joint's curves use is a choice too: :func:`least_singular_orders` keeps the middle
angle farthest from +-90 degrees (the FBX writer), :func:`calmest_orders` keeps the curves' steps
smallest where the joint turns slowly (the BVH writer's ``auto``).
"""

from __future__ import annotations

import numpy as np

from mocap._checks import check_shape
from mocap.geometry.rotations import rotmat_to_euler

_TWO_PI = 2.0 * np.pi


def _nearest(angles: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``angles`` shifted by multiples of 2*pi to lie within pi of ``ref``."""
    return angles + _TWO_PI * np.round((ref - angles) / _TWO_PI)


def rotmat_to_euler_continuous(rotmat: np.ndarray, order: str) -> np.ndarray:
    """Rotation sequences ``(T, ..., 3, 3)`` to continuous Euler angles ``(T, ..., 3)`` radians.

    ``order`` is a Tait–Bryan order as in :func:`mocap.geometry.rotations.rotmat_to_euler`
    (upper case = intrinsic, BVH channel order). Frames are axis 0; each frame takes the
    decomposition nearer (summed wrapped angle differences) to the one taken for the previous frame
    (a scan over a per-frame boolean, vectorised over the other axes), then each angle is unwrapped.
    The angles reproduce ``rotmat`` exactly (``euler_to_rotmat(result, order) == rotmat``).
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
    if rotmat.ndim < 3 or rotmat.shape[0] == 0:
        raise ValueError(f"rotmat: expected shape (T, ..., 3, 3) with T >= 1, got {rotmat.shape}")
    if len(set(order.upper())) != 3:
        raise ValueError(f"order: expected a Tait-Bryan order with three different axes, got {order!r}")
    first = rotmat_to_euler(rotmat, order)
    second = first + np.array([np.pi, 0.0, np.pi])
    second[..., 1] = np.pi - first[..., 1]
    both = np.stack([first, second])  # (2, T, ..., 3)
    # dist[i, k, t]: summed wrapped difference from decomposition i at frame t to k at frame t + 1.
    diff = both[None, :, 1:] - both[:, None, :-1]
    dist = np.abs(_nearest(diff, np.zeros(1))).sum(axis=-1)
    after_first, after_second = dist[0, 1] < dist[0, 0], dist[1, 1] < dist[1, 0]
    pick = np.zeros(first.shape[:-1], bool)
    for t in range(1, first.shape[0]):
        pick[t] = np.where(pick[t - 1], after_second[t - 1], after_first[t - 1])
    return np.unwrap(np.where(pick[..., None], second, first), axis=0)


def least_singular_orders(rotmat: np.ndarray, orders) -> list[str]:
    """Per joint, the Euler order whose singularity the motion stays farthest from.

    ``rotmat (T, J, 3, 3)``; ``orders`` the candidates (:func:`mocap.geometry.rotations.rotmat_to_euler`
    names). Any Tait–Bryan order is singular where its middle angle is ±90°; near it the first and
    third curves swing fast for a small turn. For each joint the order with the largest
    ``min_t |cos(middle angle)|`` is taken (ties: the earlier in ``orders``).
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
    orders = list(orders)
    score = np.stack([np.abs(np.cos(rotmat_to_euler(rotmat, o)[..., 1])).min(axis=0) for o in orders])  # (O, J)
    return [orders[i] for i in np.argmax(score > score.max(axis=0) - 1e-9, axis=0)]


def calmest_orders(rotmat: np.ndarray, orders, calm_deg: float = 10.0) -> list[str]:
    """Per joint, the Euler order whose continuous curves step least between frames where the
    joint turns less than ``calm_deg`` degrees (ties: the earlier in ``orders``).

    ``rotmat (T, J, 3, 3)``. Near an order's singularity its first and third curves swing fast for
    a small turn; a joint whose motion spans many directions (an elbow of an A-pose rig, a
    cartwheel's shoulder) comes near every order's singularity somewhere, and what matters is
    whether it does so while turning slowly. A curve may legitimately step more than the joint
    turns, so this is the measure :func:`least_singular_orders` only approximates.
    """
    rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
    orders = list(orders)
    step = np.swapaxes(rotmat[:-1], -1, -2) @ rotmat[1:]
    turn = np.degrees(np.arccos(np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))  # (T-1, J)
    calm = turn < calm_deg
    score = np.empty((len(orders), rotmat.shape[1]))
    for k, order in enumerate(orders):
        jumps = np.degrees(np.abs(np.diff(rotmat_to_euler_continuous(rotmat, order), axis=0))).max(axis=-1)
        score[k] = np.where(calm, jumps, 0.0).max(axis=0) if len(jumps) else 0.0
    return [orders[i] for i in np.argmax(score < score.min(axis=0) + 1e-6, axis=0)]


def _unwrap_corrections(dd: np.ndarray) -> np.ndarray:
    """:func:`numpy.unwrap`'s per-step correction (period 2*pi) of the differences ``dd``."""
    ddmod = np.mod(dd + np.pi, _TWO_PI) - np.pi
    np.copyto(ddmod, np.pi, where=(ddmod == -np.pi) & (dd > 0))
    correct = ddmod - dd
    np.copyto(correct, 0, where=np.abs(dd) < np.pi)
    return correct


def scan_picks(start: np.ndarray, after_first: np.ndarray, after_second: np.ndarray) -> np.ndarray:
    """``pick[t] = after_second[t-1] if pick[t-1] else after_first[t-1]`` for ``t = 1 .. n`` from
    ``pick[0] = start``, without a loop over frames: a step where both are equal sets the pick, one
    where only ``after_first`` holds flips it, any other keeps it."""
    sets = after_first == after_second
    flips = np.cumsum(after_first & ~after_second, axis=0)
    steps = np.arange(len(sets)).reshape((-1,) + (1,) * (sets.ndim - 1))
    last = np.maximum.accumulate(np.where(sets, steps, -1), axis=0)  # the last step that set the pick
    at = np.maximum(last, 0)
    base = np.where(last >= 0, np.take_along_axis(after_first, at, axis=0), start)
    since = flips - np.where(last >= 0, np.take_along_axis(flips, at, axis=0), 0)
    return base ^ (since % 2 == 1)


class ContinuousEuler:
    """:func:`rotmat_to_euler_continuous` a chunk of frames at a time: ``stream(chunk)`` for
    consecutive chunks ``(n, ..., 3, 3)`` returns what the one call on the whole sequence returns
    for those frames, bit for bit (the decomposition picked and the unwrapping carry over)."""

    def __init__(self, order: str):
        if len(set(order.upper())) != 3:
            raise ValueError(f"order: expected a Tait-Bryan order with three different axes, got {order!r}")
        self.order = order
        self._last = None  # (both decompositions, pick, raw angles) of the previous frame
        self._sum = None  # the unwrapping's running correction after the previous frame

    def __call__(self, rotmat: np.ndarray) -> np.ndarray:
        rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "... 3 3", "rotmat")
        if rotmat.ndim < 3 or rotmat.shape[0] == 0:
            raise ValueError(f"rotmat: expected shape (n, ..., 3, 3) with n >= 1, got {rotmat.shape}")
        first = rotmat_to_euler(rotmat, self.order)
        second = first + np.array([np.pi, 0.0, np.pi])
        second[..., 1] = np.pi - first[..., 1]
        both = np.stack([first, second])  # (2, n, ..., 3)
        if self._last is not None:
            both = np.concatenate([self._last[0][:, None], both], axis=1)
        diff = both[None, :, 1:] - both[:, None, :-1]
        dist = np.abs(_nearest(diff, np.zeros(1))).sum(axis=-1)
        after_first, after_second = dist[0, 1] < dist[0, 0], dist[1, 1] < dist[1, 0]
        pick = np.zeros((len(both[0]),) + first.shape[1:-1], bool)
        if self._last is not None:
            pick[0] = self._last[1]
        pick[1:] = scan_picks(pick[0], after_first, after_second)
        raw = np.where(pick[..., None], both[1], both[0])  # with the previous frame first, if any
        correct = _unwrap_corrections(np.diff(raw, axis=0))
        if self._last is None:
            out = raw.copy()
            total = np.cumsum(correct, axis=0)
            out[1:] = raw[1:] + total
        else:
            total = correct.cumsum(axis=0) if self._sum is None else np.concatenate([self._sum[None], correct]).cumsum(axis=0)[1:]
            raw, out = raw[1:], raw[1:] + total
        if len(total):
            self._sum = total[-1].copy()
        self._last = (both[:, -1].copy(), pick[-1].copy(), raw[-1].copy())  # copies: not the chunk's arrays
        return out


class CalmestOrders:
    """:func:`calmest_orders` over consecutive chunks ``(n, J, 3, 3)``: ``update`` each, then
    ``result()``; the same choice as the one call on the whole sequence."""

    def __init__(self, orders, calm_deg: float = 10.0):
        self.orders, self.calm_deg = list(orders), calm_deg
        self._streams = [ContinuousEuler(o) for o in self.orders]
        self._prev = None  # the previous frame's rotations and each order's angles
        self._score = None

    def update(self, rotmat: np.ndarray) -> None:
        rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
        if self._score is None:
            self._score = np.zeros((len(self.orders), rotmat.shape[1]))
        seq = rotmat if self._prev is None else np.concatenate([self._prev[0][None], rotmat])
        step = np.swapaxes(seq[:-1], -1, -2) @ seq[1:]
        turn = np.degrees(np.arccos(np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)))
        calm = turn < self.calm_deg
        angles = []
        for k, stream in enumerate(self._streams):
            euler = stream(rotmat)
            angles.append(euler[-1].copy())
            if self._prev is not None:
                euler = np.concatenate([self._prev[1][k][None], euler])
            jumps = np.degrees(np.abs(np.diff(euler, axis=0))).max(axis=-1)
            if len(jumps):
                self._score[k] = np.maximum(self._score[k], np.where(calm, jumps, 0.0).max(axis=0))
        self._prev = (rotmat[-1].copy(), angles)

    def result(self) -> list[str]:
        score = self._score
        return [self.orders[i] for i in np.argmax(score < score.min(axis=0) + 1e-6, axis=0)]


class LeastSingularOrders:
    """:func:`least_singular_orders` over chunks ``(n, J, 3, 3)`` (any order of chunks): ``update``
    each, then ``result()``."""

    def __init__(self, orders):
        self.orders = list(orders)
        self._score = None

    def update(self, rotmat: np.ndarray) -> None:
        rotmat = check_shape(np.asarray(rotmat, dtype=np.float64), "T J 3 3", "rotmat")
        score = np.stack([np.abs(np.cos(rotmat_to_euler(rotmat, o)[..., 1])).min(axis=0) for o in self.orders])
        self._score = score if self._score is None else np.minimum(self._score, score)

    def result(self) -> list[str]:
        score = self._score
        return [self.orders[i] for i in np.argmax(score > score.max(axis=0) - 1e-9, axis=0)]
