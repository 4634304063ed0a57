"""``sync.yaml`` and putting every camera's 2D keypoints on the reference camera's timeline.

``sync.yaml`` (DESIGN.md)::

    reference: cam01
    offsets: {cam01: 0.0, cam02: 3.48, ...}     # frames of the reference camera, float
    fps: {cam01: 60, cam02: 30}                  # optional, when the cameras' rates differ

Camera c's frame k shows the instant of the reference camera's frame ``k * fps_ref / fps_c +
offsets[c]``; so the reference's frame r is camera c's fractional frame
``(r - offsets[c]) * fps_c / fps_ref``. A fractional frame is interpolated linearly between the
two frames around it, each person of the first frame paired with the nearest person of the
second (people in OpenPose JSON keep no order from frame to frame). A recorded take's matched
frame table (``sync_report.yaml``) is the integer case: one frame (or none) per instant.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from mocap.geometry import normalize_camera_name
from mocap.io.files import atomic_write
from mocap.io.keypoints import Keypoints2D

log = logging.getLogger(__name__)

#: People per frame up to which the pairing between neighbouring frames tries every
#: permutation (5! = 120, vectorized over frames); above it the slots are taken as they are.
MAX_PERMUTED_PEOPLE = 5
#: A fractional frame this close to a whole frame is that frame (no interpolation).
WHOLE_FRAME = 1e-6


@dataclass(frozen=True)
class SyncOffsets:
    """The contents of ``sync.yaml``."""

    reference: str
    offsets: dict
    """``{camera: offset in reference frames}`` (float); the reference's is 0."""
    fps: dict = field(default_factory=dict)
    """``{camera: frame rate}`` when the cameras' rates differ; empty: all equal."""

    def position(self, camera: str, num_frames: int) -> np.ndarray:
        """``(num_frames,)`` fractional frame of ``camera`` at each reference frame."""
        by_key = {normalize_camera_name(k): v for k, v in self.offsets.items()}
        key = normalize_camera_name(camera)
        if key not in by_key:
            raise ValueError(f"sync: no offset for camera {camera!r}; sync.yaml has {', '.join(self.offsets)}")
        fps = {normalize_camera_name(k): float(v) for k, v in self.fps.items()}
        rate = fps.get(key, 1.0) / fps.get(normalize_camera_name(self.reference), 1.0) if fps else 1.0
        return (np.arange(num_frames) - float(by_key[key])) * rate


def save_sync(sync: SyncOffsets, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``sync.yaml`` (``extra``: e.g. how each offset was found)."""
    doc = {"reference": sync.reference, "offsets": {k: round(float(v), 4) for k, v in sync.offsets.items()}}
    if sync.fps:
        doc["fps"] = {k: float(v) for k, v in sync.fps.items()}
    text = yaml.safe_dump({**doc, **(extra or {})}, sort_keys=False, default_flow_style=None)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def load_sync(path: str | os.PathLike) -> SyncOffsets:
    """Read ``sync.yaml``; a one-line ``ValueError`` naming the file when it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sync {path}: no such file")
    doc = yaml.safe_load(path.read_text()) or {}
    ref, offsets = doc.get("reference"), doc.get("offsets")
    if not isinstance(ref, str) or not isinstance(offsets, dict) or not offsets:
        raise ValueError(f"sync {path}: expected 'reference: CAM' and 'offsets: {{CAM: frames}}'")
    try:
        offsets = {str(k): float(v) for k, v in offsets.items()}
        fps = {str(k): float(v) for k, v in (doc.get("fps") or {}).items()}
    except (TypeError, ValueError):
        raise ValueError(f"sync {path}: offsets and fps must be numbers") from None
    return SyncOffsets(ref, offsets, fps)


def _pairing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, P)`` slot of ``b`` paired with each slot of ``a``; ``a``, ``b`` ``(N, P, J, 2)``:
    the permutation with the least summed mean joint distance (missing pairs cost a lot)."""
    n, p = a.shape[:2]
    if p == 1 or p > MAX_PERMUTED_PEOPLE:
        return np.broadcast_to(np.arange(p), (n, p)).copy()
    d = np.linalg.norm(a[:, :, None] - b[:, None, :], axis=-1)  # (N, P, P, J)
    ok = np.isfinite(d)
    cost = np.where(ok.any(-1), np.nansum(np.where(ok, d, 0), -1) / np.maximum(ok.sum(-1), 1), 1e9)
    perms = np.array(list(itertools.permutations(range(p))))  # (Q, P)
    total = cost[:, np.arange(p)[None, :], perms].sum(-1)  # (N, Q)
    return perms[np.argmin(total, axis=1)]


def _gather(data: np.ndarray, frames: np.ndarray, c: int, slots: np.ndarray | None = None) -> np.ndarray:
    out = data[np.clip(frames, 0, len(data) - 1), c]  # (N, P, ...)
    if slots is not None:
        out = np.take_along_axis(out, slots.reshape(slots.shape + (1,) * (out.ndim - 2)), axis=1)
    return np.where(((frames >= 0) & (frames < len(data))).reshape((-1,) + (1,) * (out.ndim - 1)), out, np.nan)


def resample_keypoints(keypoints: Keypoints2D, positions: np.ndarray) -> Keypoints2D:
    """Every camera's keypoints at fractional frames.

    Args:
        keypoints: ``data (T, C, P, J, 3)``.
        positions: ``(T', C)`` the fractional source frame of camera c at output frame t; NaN
            (or outside ``[0, T - 1]``) where the camera has no frame.

    Returns:
        ``Keypoints2D`` with ``data (T', C, P, J, 3)`` (linear interpolation, people paired
        between neighbouring frames; NaN where a neighbour is missing), ``frame_indices
        arange(T')``, and the per-person ``extras`` ``(T, C, P, ...)`` of the nearer frame.
    """
    data = keypoints.data
    T, C, P = data.shape[:3]
    positions = np.asarray(positions, np.float64)
    if positions.ndim != 2 or positions.shape[1] != C:
        raise ValueError(f"positions: expected shape (T', {C}), got {positions.shape}")
    out = np.full((len(positions), C) + data.shape[2:], np.nan)
    extras = {k: v for k, v in keypoints.extras.items() if isinstance(v, np.ndarray) and v.shape[:3] == (T, C, P)}
    new_extras = {k: np.full((len(positions),) + v.shape[1:], np.nan if v.dtype.kind == "f" else 0, v.dtype)
                  for k, v in extras.items()}
    for c in range(C):
        pos = positions[:, c]
        ok = np.isfinite(pos) & (pos >= -WHOLE_FRAME) & (pos <= T - 1 + WHOLE_FRAME)
        pos = np.where(ok, np.clip(pos, 0, T - 1), 0.0)
        k0 = np.floor(pos + WHOLE_FRAME).astype(np.int64)
        a = np.where(np.abs(pos - k0) < WHOLE_FRAME, 0.0, pos - k0)
        first = _gather(data, k0, c)  # (N, P, J, 3)
        slots = _pairing(first[..., :2], _gather(data, k0 + 1, c)[..., :2])
        second = _gather(data, k0 + 1, c, slots)
        second = np.where((a > 0)[:, None, None, None], second, first)
        mixed = (1 - a)[:, None, None, None] * first + a[:, None, None, None] * second
        out[ok, c] = mixed[ok]
        near_next = (a > 0.5)[:, None]
        for name, arr in extras.items():
            src = np.where(near_next.reshape((-1, 1) + (1,) * (arr.ndim - 3)),
                           _gather(arr, k0 + 1, c, slots), _gather(arr, k0, c))
            new_extras[name][ok, c] = src[ok].astype(arr.dtype)
    dropped = set(keypoints.extras) - set(extras)
    if dropped:
        log.debug("resampling keeps no per-frame extras %s", ", ".join(sorted(dropped)))
    return replace(keypoints, data=out, frame_indices=np.arange(len(positions)), extras=new_extras)


def sync_positions(keypoints: Keypoints2D, sync: SyncOffsets) -> np.ndarray:
    """``(T, C)`` fractional frame of each camera at each reference frame (``T`` the input's)."""
    T = keypoints.data.shape[0]
    return np.stack([sync.position(name, T) for name in keypoints.camera_names], axis=1)


def apply_sync(keypoints: Keypoints2D, sync: SyncOffsets) -> Keypoints2D:
    """The keypoints on the reference camera's timeline (:class:`SyncOffsets`)."""
    return resample_keypoints(keypoints, sync_positions(keypoints, sync))


def apply_matched_frames(keypoints: Keypoints2D, table: dict) -> Keypoints2D:
    """The keypoints on a recorded take's matched instants: ``table {camera: (T',) frame or -1}``
    (``sync_report.yaml``'s ``matched_frames``)."""
    by_key = {normalize_camera_name(k): np.asarray(v, np.float64) for k, v in table.items()}
    cols = []
    for name in keypoints.camera_names:
        col = by_key.get(normalize_camera_name(name))
        if col is None:
            raise ValueError(f"matched frame table: no camera {name!r}; it has {', '.join(table)}")
        cols.append(np.where(col >= 0, col, np.nan))
    return resample_keypoints(keypoints, np.stack(cols, axis=1))


def session_timeline(keypoints: Keypoints2D, session: str | os.PathLike) -> Keypoints2D:
    """The keypoints of a session's videos on one timeline: a recorded take's matched frame
    table (``SESSION/sync_report.yaml``) first, then the offsets of ``SESSION/sync.yaml``
    (footage synchronized afterwards); unchanged when the session has neither."""
    from mocap.record.report import load_matched_frames

    session = Path(session)
    table = load_matched_frames(session)
    if table is not None:
        keypoints = apply_matched_frames(keypoints, table)
        log.info("matched frame table of %s: %d instants", session / "sync_report.yaml", keypoints.data.shape[0])
    if (session / "sync.yaml").is_file():
        sync = load_sync(session / "sync.yaml")
        keypoints = apply_sync(keypoints, sync)
        log.info("offsets of %s applied (reference %s)", session / "sync.yaml", sync.reference)
    return keypoints


def apply_sync_file(keypoints: Keypoints2D, path: str | os.PathLike) -> Keypoints2D:
    """``path`` is a ``sync.yaml`` (offsets) or a recorded take's ``sync_report.yaml`` (the
    matched frame table): the keypoints on that timeline."""
    from mocap.record.report import load_matched_frames

    path = Path(path)
    if path.name == "sync_report.yaml":
        table = load_matched_frames(path.parent)
        return apply_matched_frames(keypoints, table)
    return apply_sync(keypoints, load_sync(path))
