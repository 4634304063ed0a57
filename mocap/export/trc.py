"""TRC writer (OpenSim marker files): one person's 3D joints -> ``.trc``.

Tab separated, the layout OpenSim and Pose2Sim read: ``PathFileType`` line, the header names
(``DataRate CameraRate NumFrames NumMarkers Units OrigDataRate OrigDataStartFrame
OrigNumFrames``) and values, ``Frame# Time <marker>`` (each name followed by two empty cells),
``X1 Y1 Z1 …``, a blank line, then one row per frame. Missing markers are empty cells.
Axes: **Y up** through :func:`mocap.export.axes.points_world_to_yup` (world ``(x, y, z)`` ->
``(x, z, -y)``); units ``m`` by default.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mocap._checks import check_shape
from mocap.export.axes import points_world_to_yup
from mocap.io.files import atomic_write


def format_trc(points_world: np.ndarray, marker_names, fps: float, frame_indices=None, units: str = "m",
               file_name: str = "markers.trc") -> str:
    """TRC text for ``points_world (T, N, 3)`` world metres (NaN = missing)."""
    pts = check_shape(np.asarray(points_world, dtype=np.float64), "T N 3", "points_world")
    T, N, _ = pts.shape
    names = [str(n) for n in marker_names]
    if len(names) != N:
        raise ValueError(f"marker_names: expected {N} names, got {len(names)}")
    frames = np.arange(T) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
    data = points_world_to_yup(pts, units).reshape(T, 3 * N)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{file_name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{fps:g}\t{fps:g}\t{T}\t{N}\t{units}\t{fps:g}\t{int(frames[0]) + 1 if T else 1}\t{T}",
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, N + 1)),
        "",
    ]
    cells = np.char.mod("%.6f", np.round(data, 6) + 0.0)
    cells[~np.isfinite(data)] = ""
    rows = np.column_stack([np.char.mod("%d", frames + 1), np.char.mod("%.6f", frames / fps), cells])
    buf = io.StringIO()
    np.savetxt(buf, rows, fmt="%s", delimiter="\t")
    return "\n".join(lines) + "\n" + buf.getvalue()


def write_trc(points_world: np.ndarray, marker_names, fps: float, path: str | os.PathLike, frame_indices=None,
              units: str = "m") -> Path:
    """Write one TRC file atomically (see :func:`format_trc`). Returns the path."""
    path = Path(path)
    text = format_trc(points_world, marker_names, fps, frame_indices, units, path.name)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    return atomic_write(path, write)
