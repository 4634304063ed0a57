"""BVH (Biovision Hierarchy) reading and forward kinematics.

Conventions of the format as read here:

- A joint's ``CHANNELS`` list its position and rotation channels in the order the frame lines
  give them; any order, 3 or 6 channels, on any joint (6 on non-root joints too), or none.
- Rotation channels compose in the order listed, intrinsically: ``Zrotation Xrotation
  Yrotation`` means ``R_local = R_Z @ R_X @ R_Y`` (degrees in the file, radians here). This is
  :func:`mocap.geometry.rotations.euler_to_rotmat` with an upper-case order.
- Position channels *replace* the matching component of the joint's ``OFFSET`` (the usual reading,
  also bvhio's); a joint without position channels sits at its ``OFFSET`` in the parent frame.
- Forward kinematics: ``G_j = G_parent @ R_j``, ``p_j = p_parent + G_parent @ t_j`` where ``t_j``
  is the joint's local translation; ``End Site`` points are ``p_parent + G_parent @ offset``.

Everything stays in the file's own units and axes; converting to the world frame (Z up, metres)
is the caller's job (see :mod:`mocap.synthetic.cmu` for CMU files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.geometry.rotations import euler_to_rotmat

log = logging.getLogger(__name__)

_CHANNEL_NAMES = {
    "xposition": "Xposition", "yposition": "Yposition", "zposition": "Zposition",
    "xrotation": "Xrotation", "yrotation": "Yrotation", "zrotation": "Zrotation",
}


@dataclass(frozen=True, eq=False)
class BvhMotion:
    """The content of one BVH file, in the file's units and axes.

    Attributes:
        joint_names: ``(J,)`` joint names, root first; parents come before children.
        parents: ``(J,)`` int parent index, -1 for the root.
        offsets: ``(J, 3)`` ``OFFSET`` of each joint in its parent's frame (file units).
        channels: ``(J,)`` tuple of channel names per joint (``"Xposition"`` … ``"Zrotation"``),
            in file order.
        motion: ``(T, K)`` channel values per frame, ``K = sum(len(c) for c in channels)``;
            rotations in degrees as in the file.
        frame_time: seconds per frame.
        end_site_parents: ``(E,)`` joint index owning each ``End Site``.
        end_site_offsets: ``(E, 3)`` ``End Site`` offsets in the owning joint's frame.
        path: the file read, if any (for messages).
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    motion: np.ndarray
    frame_time: float
    end_site_parents: np.ndarray
    end_site_offsets: np.ndarray
    path: str | None = None

    def __post_init__(self):
        J = len(self.joint_names)
        parents = np.asarray(self.parents, dtype=np.int64)
        if parents.shape != (J,) or J == 0 or parents[0] != -1 or np.any(parents[1:] < 0) \
                or np.any(parents[1:] >= np.arange(1, J)):
            raise ValueError("parents: expected (J,) with parents[0] == -1 and each parent before its child")
        offsets = np.asarray(self.offsets, dtype=np.float64).reshape(J, 3)
        channels = tuple(tuple(c) for c in self.channels)
        if len(channels) != J:
            raise ValueError(f"channels: expected {J} entries, got {len(channels)}")
        for c in channels:
            bad = set(c) - set(_CHANNEL_NAMES.values())
            if bad:
                raise ValueError(f"channels: unknown channel names {sorted(bad)}")
        motion = np.asarray(self.motion, dtype=np.float64)
        K = sum(len(c) for c in channels)
        if motion.ndim != 2 or motion.shape[1] != K:
            raise ValueError(f"motion: expected shape (T, {K}), got {motion.shape}")
        es_parents = np.asarray(self.end_site_parents, dtype=np.int64).reshape(-1)
        es_offsets = np.asarray(self.end_site_offsets, dtype=np.float64).reshape(-1, 3)
        if es_parents.shape[0] != es_offsets.shape[0]:
            raise ValueError("end_site_parents and end_site_offsets differ in length")
        if not self.frame_time > 0:
            raise ValueError(f"frame_time: expected > 0 seconds, got {self.frame_time}")
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "motion", motion)
        object.__setattr__(self, "end_site_parents", es_parents)
        object.__setattr__(self, "end_site_offsets", es_offsets)
        object.__setattr__(self, "frame_time", float(self.frame_time))

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def channel_starts(self) -> np.ndarray:
        """``(J,)`` column of each joint's first channel in :attr:`motion`."""
        sizes = np.array([len(c) for c in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def joint(self, name: str) -> int:
        """Index of a joint by exact name; ``KeyError`` listing the joints if absent."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"BVH {self.path or ''}: no joint {name!r}; joints are {', '.join(self.joint_names)}") from None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

class _Tokens:
    """Whitespace tokens of the HIERARCHY section with their 1-based line numbers."""

    def __init__(self, lines: list[str], path: str):
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0
        self.path = path

    def error(self, what: str, line: int | None = None) -> MocapError:
        if line is None:
            line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
        return MocapError(f"{self.path}:{line}: malformed BVH hierarchy: {what}; fix or re-export the file")

    def peek(self) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error("unexpected end of the hierarchy (missing '}' or MOTION?)")
        return self.items[self.pos]

    def next(self) -> tuple[str, int]:
        item = self.peek()
        self.pos += 1
        return item

    def expect(self, word: str) -> int:
        tok, line = self.next()
        if tok.upper() != word.upper():
            raise self.error(f"expected {word!r}, found {tok!r}", line)
        return line

    def floats(self, n: int, what: str) -> list[float]:
        out = []
        for _ in range(n):
            tok, line = self.next()
            try:
                out.append(float(tok))
            except ValueError:
                raise self.error(f"{what}: expected a number, found {tok!r}", line) from None
        return out

    def rest_of_line(self, line: int) -> list[str]:
        out = []
        while self.pos < len(self.items) and self.items[self.pos][1] == line:
            out.append(self.items[self.pos][0])
            self.pos += 1
        return out


def _parse_hierarchy(tok: _Tokens):
    names, parents, offsets, channels, es_parents, es_offsets = [], [], [], [], [], []

    def parse_joint(parent: int, line: int):
        name_tokens = [t for t in tok.rest_of_line(line) if t != "{"]
        if not name_tokens:
            raise tok.error("joint without a name", line)
        idx = len(names)
        names.append(" ".join(name_tokens))
        parents.append(parent)
        offsets.append(None)
        channels.append(())
        if tok.items[tok.pos - 1][0] != "{":
            tok.expect("{")
        while True:
            word, wline = tok.next()
            key = word.upper()
            if key == "OFFSET":
                offsets[idx] = tok.floats(3, f"OFFSET of joint {names[idx]!r}")
            elif key == "CHANNELS":
                n_tok, nline = tok.next()
                if not n_tok.isdigit():
                    raise tok.error(f"CHANNELS of joint {names[idx]!r}: expected a count, found {n_tok!r}", nline)
                chans = []
                for _ in range(int(n_tok)):
                    c, cline = tok.next()
                    if c.lower() not in _CHANNEL_NAMES:
                        raise tok.error(f"joint {names[idx]!r}: unknown channel {c!r} (CHANNELS says {n_tok})", cline)
                    chans.append(_CHANNEL_NAMES[c.lower()])
                if len(set(chans)) != len(chans):
                    raise tok.error(f"joint {names[idx]!r}: repeated channel in {chans}", nline)
                channels[idx] = tuple(chans)
            elif key == "JOINT":
                parse_joint(idx, wline)
            elif key == "END":
                tok.rest_of_line(wline)  # "Site" (and a name, in some exporters)
                if tok.items[tok.pos - 1][0] != "{":
                    tok.expect("{")
                tok.expect("OFFSET")
                es_offsets.append(tok.floats(3, f"End Site of joint {names[idx]!r}"))
                es_parents.append(idx)
                tok.expect("}")
            elif word == "}":
                break
            else:
                raise tok.error(f"unexpected {word!r} inside joint {names[idx]!r}", wline)
        if offsets[idx] is None:
            raise tok.error(f"joint {names[idx]!r} has no OFFSET", line)

    tok.expect("HIERARCHY")
    word, line = tok.next()
    if word.upper() != "ROOT":
        raise tok.error(f"expected ROOT, found {word!r}", line)
    parse_joint(-1, line)
    if tok.pos < len(tok.items):
        word, line = tok.peek()
        raise tok.error(f"unexpected {word!r} after the root joint (only one ROOT is supported)", line)
    return names, parents, offsets, channels, es_parents, es_offsets


def _parse_motion(lines: list[str], first_line: int, n_channels: int, path: str):
    """Parse ``Frames:``, ``Frame Time:`` and the frame lines; returns ``(motion (T, K), frame_time)``."""
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and len(header) < 2:
        text = lines[i].strip()
        i += 1
        if not text:
            continue
        key, _, value = text.partition(":")
        key = " ".join(key.lower().split())
        if key not in ("frames", "frame time"):
            raise MocapError(f"{path}:{first_line + i}: expected 'Frames:' and 'Frame Time:' after MOTION, found {text[:40]!r}")
        header[key] = value.strip()
    if len(header) < 2:
        raise MocapError(f"{path}: MOTION section lacks 'Frames:' or 'Frame Time:'")
    try:
        declared = int(header["frames"])
        frame_time = float(header["frame time"])
    except ValueError:
        raise MocapError(f"{path}: bad 'Frames:'/'Frame Time:' values {header}") from None
    if not frame_time > 0:
        raise MocapError(f"{path}: 'Frame Time:' must be > 0 seconds, got {frame_time}")
    rows = [(first_line + i + k + 1, ln) for k, ln in enumerate(lines[i:]) if ln.strip()]
    for lineno, ln in rows:
        n = len(ln.split())
        if n != n_channels:
            raise MocapError(f"{path}:{lineno}: frame line has {n} values but the hierarchy declares "
                             f"{n_channels} channels; the file is truncated or inconsistent")
    try:
        motion = np.array(" ".join(ln for _, ln in rows).split(), dtype=np.float64).reshape(len(rows), n_channels)
    except ValueError:
        for lineno, ln in rows:
            try:
                np.array(ln.split(), dtype=np.float64)
            except ValueError:
                raise MocapError(f"{path}:{lineno}: frame line holds a non-numeric value") from None
        raise
    if len(rows) != declared:
        if abs(len(rows) - declared) > 1:
            raise MocapError(f"{path}: 'Frames: {declared}' but {len(rows)} frame lines; the file is truncated "
                             "or the frame count is wrong")
        log.warning("%s: 'Frames: %d' but %d frame lines; using the %d lines present", path, declared, len(rows), len(rows))
    return motion, frame_time


def read_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file (any channel order, 3 or 6 channels on any joint, ``End Site`` blocks).

    Tabs, spaces, blank lines and a frame count off by one are tolerated (the latter logs a
    warning). A malformed hierarchy or a frame line with the wrong number of values raises
    :class:`MocapError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    motion_at = next((n for n, ln in enumerate(lines) if ln.strip().upper() == "MOTION"), None)
    if motion_at is None:
        raise MocapError(f"{path}: no MOTION section; not a BVH file or truncated")
    tok = _Tokens(lines[:motion_at], str(path))
    names, parents, offsets, channels, es_parents, es_offsets = _parse_hierarchy(tok)
    n_channels = sum(len(c) for c in channels)
    motion, frame_time = _parse_motion(lines[motion_at + 1:], motion_at + 1, n_channels, str(path))
    return BvhMotion(tuple(names), np.array(parents), np.array(offsets, dtype=np.float64).reshape(-1, 3),
                     tuple(channels), motion, frame_time, np.array(es_parents, dtype=np.int64),
                     np.array(es_offsets, dtype=np.float64).reshape(-1, 3), str(path))


# --------------------------------------------------------------------------------------------
# Local transforms and forward kinematics
# --------------------------------------------------------------------------------------------

def bvh_local_transforms(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations ``(T, J, 3, 3)`` and local translations ``(T, J, 3)`` (file units).

    The translation of joint ``j`` is its position in the parent frame: the ``OFFSET``, with the
    components that have position channels replaced by the channel values. For the root it is
    the root position in the file frame.
    """
    T, J = motion.num_frames, motion.num_joints
    trans = np.broadcast_to(motion.offsets, (T, J, 3)).copy()
    rot = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    starts = motion.channel_starts
    by_order: dict[str, list[tuple[int, list[int]]]] = {}
    for j, chans in enumerate(motion.channels):
        cols = [starts[j] + k for k, c in enumerate(chans) if c.endswith("rotation")]
        for k, c in enumerate(chans):
            if c.endswith("position"):
                trans[:, j, "XYZ".index(c[0])] = motion.motion[:, starts[j] + k]
        if cols:
            order = "".join(c[0] for c in chans if c.endswith("rotation"))
            by_order.setdefault(order, []).append((j, cols))
    for order, items in by_order.items():
        joints = [j for j, _ in items]
        # Joints with fewer than 3 rotation channels get zero angles on the missing axes.
        full = order + "".join(a for a in "XYZ" if a not in order)
        angles = np.zeros((T, len(items), 3))
        for k, (_, cols) in enumerate(items):
            angles[:, k, :len(cols)] = motion.motion[:, cols]
        rot[:, joints] = euler_to_rotmat(np.deg2rad(angles), full)
    return rot, trans


def bvh_root_positions(motion: BvhMotion) -> np.ndarray:
    """Root positions ``(T, 3)`` in file units and axes."""
    return bvh_local_transforms(motion)[1][:, 0]


def bvh_forward_kinematics(motion: BvhMotion) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``(T, J, 3)`` and global rotations ``(T, J, 3, 3)``, file units and axes.

    Vectorised over frames; one pass over the joints in parent order.
    """
    rot, trans = bvh_local_transforms(motion)
    T, J = rot.shape[:2]
    glob = np.empty((T, J, 3, 3))
    pos = np.empty((T, J, 3))
    for j, p in enumerate(motion.parents):
        if p < 0:
            glob[:, j] = rot[:, j]
            pos[:, j] = trans[:, j]
        else:
            glob[:, j] = glob[:, p] @ rot[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", glob[:, p], trans[:, j])
    return pos, glob


def bvh_end_site_positions(motion: BvhMotion, positions: np.ndarray, rotmats: np.ndarray) -> np.ndarray:
    """``End Site`` world positions ``(T, E, 3)`` from the FK output ``positions (T, J, 3)``,
    ``rotmats (T, J, 3, 3)`` of :func:`bvh_forward_kinematics`."""
    p = motion.end_site_parents
    return positions[:, p] + np.einsum("teab,eb->tea", rotmats[:, p], motion.end_site_offsets)


def bvh_to_animation(motion: BvhMotion, unit_m: float = 1.0, world_from_file: np.ndarray | None = None,
                     name: str = "person"):
    """A :class:`~mocap.skeleton.animation.SkeletonAnimation` (world frame, metres) of a BVH.

    ``world_from_file (3, 3)`` is the rotation from the file's axes to the world's (e.g. the
    inverse of :data:`mocap.export.axes.YUP_FROM_WORLD` for a Y-up file); offsets and the root
    path are scaled by ``unit_m`` and rotated, local rotations conjugated ``A R A^T`` so that
    forward kinematics gives the file's joints mapped by ``A`` and scaled. Position channels on
    non-root joints cannot be represented there and raise ``ValueError``.
    """
    from mocap.skeleton.animation import SkeletonAnimation

    moving = [motion.joint_names[j] for j in range(1, motion.num_joints)
              if any(c.endswith("position") for c in motion.channels[j])]
    if moving:
        raise ValueError(f"{motion.path or 'BVH'}: joints {moving} have position channels; "
                         "SkeletonAnimation supports root translation only")
    A = np.eye(3) if world_from_file is None else np.asarray(world_from_file, dtype=np.float64)
    rot, trans = bvh_local_transforms(motion)
    return SkeletonAnimation(motion.joint_names, motion.parents, unit_m * motion.offsets @ A.T,
                             A @ rot @ A.T, unit_m * trans[:, 0] @ A.T, motion.fps, name)
