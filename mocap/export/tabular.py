"""Tidy CSV of tracks: one row per frame, person and joint (``frame,time,person,joint,x,y,z``).

Coordinates stay in the **world frame (Z up)**, in ``units`` (metres by default); rows where a
joint is missing are left out (tidy data has no NaN rows). ``frame`` is the source frame index,
``time`` = frame / fps in seconds, ``person`` the track id. (Named ``tabular`` so that it does not
shadow the standard library's ``csv``.)
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mocap._checks import check_choice
from mocap.export.axes import UNIT_SCALE
from mocap.io.tracks import Tracks
from mocap.io.files import atomic_write

CSV_COLUMNS = ("frame", "time", "person", "joint", "x", "y", "z")


def format_tracks_csv(tracks: Tracks, units: str = "m") -> str:
    """CSV text, header :data:`CSV_COLUMNS`, rows ordered by frame, person, joint."""
    scale = UNIT_SCALE[check_choice(units, UNIT_SCALE, "units")]
    T, P, J, _ = tracks.positions.shape
    t, p, j = np.meshgrid(np.arange(T), np.arange(P), np.arange(J), indexing="ij")
    ok = np.isfinite(tracks.positions).all(axis=-1)
    frame = tracks.frame_indices[t[ok]]
    xyz = np.round(scale * tracks.positions[ok], 6) + 0.0
    cols = [
        np.char.mod("%d", frame),
        np.char.mod("%.6f", frame / tracks.fps),
        np.char.mod("%d", tracks.track_ids[p[ok]]),
        np.asarray(tracks.joint_names)[j[ok]],
        *(np.char.mod("%.6f", xyz[:, k]) for k in range(3)),
    ]
    buf = io.StringIO()
    buf.write(",".join(CSV_COLUMNS) + "\n")
    if ok.any():
        np.savetxt(buf, np.column_stack(cols), fmt="%s", delimiter=",")
    return buf.getvalue()


def write_tracks_csv(tracks: Tracks, path: str | os.PathLike, units: str = "m") -> Path:
    """Write the tidy CSV atomically. Returns the path."""
    text = format_tracks_csv(tracks, units)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    return atomic_write(path, write)
