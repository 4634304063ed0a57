"""Read TRC marker files (OpenSim / Pose2Sim), and bring Pose2Sim's Y-up axes into our world.

A TRC file is tab separated: a ``PathFileType`` line, a header-name line (``DataRate CameraRate
NumFrames NumMarkers Units ...``) and its values, a ``Frame# Time <marker> ...`` line (each
marker name followed by two empty cells), an ``X1 Y1 Z1 ...`` line, then one row per frame.
Empty cells mean a missing marker (read as NaN).

Pose2Sim writes its TRC with **Y up**: TRC ``(X, Y, Z)`` = world ``(Y, Z, X)`` where the world
is the calibration's (Z up). :func:`trc_to_world` undoes that (and the units).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mocap.errors import MocapError

log = logging.getLogger(__name__)

#: World (Z up) from Pose2Sim's TRC axes: world x = TRC Z, world y = TRC X, world z = TRC Y.
WORLD_FROM_POSE2SIM_TRC = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

_UNIT_TO_M = {"m": 1.0, "cm": 0.01, "mm": 0.001}

#: Pose2Sim's TRC marker names (its BODY_25B/HALPE skeletons) -> canonical joint names.
POSE2SIM_MARKER_TO_JOINT: dict[str, str] = {
    "Nose": "nose", "Neck": "neck", "Head": "head_top", "Hip": "pelvis",
    **{f"{s}{part}": f"{side}_{joint}" for s, side in (("R", "right"), ("L", "left"))
       for part, joint in (("Hip", "hip"), ("Knee", "knee"), ("Ankle", "ankle"), ("BigToe", "big_toe"),
                           ("SmallToe", "small_toe"), ("Heel", "heel"), ("Shoulder", "shoulder"),
                           ("Elbow", "elbow"), ("Wrist", "wrist"), ("Eye", "eye"), ("Ear", "ear"))},
}


class TrcError(MocapError):
    """A TRC file is malformed."""


class TrcData(NamedTuple):
    """What :func:`read_trc` returns (unpacks as a 5-tuple).

    Attributes:
        positions: ``(T, N, 3)`` marker positions in the file's units and axes; NaN if missing.
        marker_names: ``(N,)`` names as in the file.
        fps: ``DataRate`` in frames per second.
        frame_numbers: ``(T,)`` the ``Frame#`` column (Pose2Sim starts at 1).
        units: ``"m"``, ``"mm"``, ... as in the header.
    """

    positions: np.ndarray
    marker_names: tuple[str, ...]
    fps: float
    frame_numbers: np.ndarray
    units: str


def read_trc(path: str | os.PathLike) -> TrcData:
    """Read a TRC file.

    Returns:
        :class:`TrcData` ``(positions (T, N, 3) file units and axes, marker_names (N,), fps,
        frame_numbers (T,), units)``.

    Raises:
        FileNotFoundError, TrcError: missing file; bad header or a row of the wrong length.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TRC file not found: {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 5:
        raise TrcError(f"{path}: not a TRC file ({len(lines)} lines; expected 5 header lines and data rows)")
    keys = lines[1].split("\t")
    values = lines[2].split("\t")
    header = {k.strip(): v.strip() for k, v in zip(keys, values)}
    for key in ("DataRate", "NumMarkers", "Units"):
        if key not in header:
            raise TrcError(f"{path}: line 2: missing header field {key!r}; expected DataRate NumMarkers Units ...")
    try:
        fps = float(header["DataRate"])
        n_markers = int(float(header["NumMarkers"]))
    except ValueError:
        raise TrcError(f"{path}: line 3: DataRate/NumMarkers are not numbers: {values!r}") from None
    names_row = lines[3].split("\t")
    if len(names_row) < 2 or names_row[0].strip() != "Frame#":
        raise TrcError(f"{path}: line 4: expected 'Frame#  Time  <marker names>', got {lines[3][:60]!r}")
    names = tuple(n.strip() for n in names_row[2:] if n.strip())
    if len(names) != n_markers:
        raise TrcError(f"{path}: line 4: {len(names)} marker names but NumMarkers = {n_markers}")
    rows = [ln for ln in lines[5:] if ln.strip()]
    width = 2 + 3 * n_markers
    table = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        cells = row.rstrip("\n").split("\t")
        if len(cells) < width:
            # trailing empty cells may be dropped by some writers: missing markers at the end
            cells += [""] * (width - len(cells))
        try:
            table[i] = [float(c) if c.strip() else np.nan for c in cells[:width]]
        except ValueError:
            raise TrcError(f"{path}: line {lines.index(row) + 1}: non-numeric cell in {row[:60]!r}") from None
    positions = table[:, 2:].reshape(len(rows), n_markers, 3)
    frame_numbers = table[:, 0]
    frames = np.where(np.isfinite(frame_numbers), frame_numbers, -1).astype(np.int64)
    return TrcData(positions, names, fps, frames, header["Units"])


def trc_to_world(positions_trc: np.ndarray, units: str = "m",
                 world_from_trc: np.ndarray = WORLD_FROM_POSE2SIM_TRC) -> np.ndarray:
    """TRC positions ``(..., 3)`` in ``units`` -> world metres (Z up).

    The default ``world_from_trc`` undoes Pose2Sim's Y-up axes (TRC ``(X, Y, Z)`` = world
    ``(Y, Z, X)``); pass ``np.eye(3)`` for a TRC already written in world axes.
    """
    if units not in _UNIT_TO_M:
        raise ValueError(f"units: unknown value {units!r}; expected one of {', '.join(_UNIT_TO_M)}")
    return _UNIT_TO_M[units] * (np.asarray(positions_trc, dtype=np.float64) @ np.asarray(world_from_trc).T)
