"""Animation and analysis exporters (BVH, FBX, TRC, CSV, C3D).

:func:`export_tracks` (tracks in memory) and :func:`export_file` (a ``tracks.npz``, what ``mocap
export`` calls) solve a skeleton per person for the animation formats (BVH, FBX) and write the raw
3D joints for the analysis formats (TRC, CSV, C3D). BVH and FBX are solved and written a chunk of
frames at a time (:mod:`mocap.export.stream`; ``export_file`` also reads the file a chunk at a
time), so their peak memory does not grow with the take, and the files are byte-identical to a
whole-take export whatever the chunk size. Files in ``out_dir``:

- ``person_<id>.bvh`` (one per person), ``<stem>.fbx`` (one armature per person),
- ``person_<id>.trc`` and ``person_<id>.c3d`` (one per person), ``<stem>.csv`` (all people),
- ``export.json``: the resolved options and, per person, the skeleton solve's per-joint FK
  residual (median and max, metres), bone offsets and how far each stretching bone (trunk, neck,
  feet: :mod:`mocap.skeleton.solve`) got shorter and longer than its rest length.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mocap._checks import check_choice
from mocap.errors import MocapError
from mocap.export.axes import UNIT_SCALE
from mocap.export.options import FORMATS, parse_formats  # noqa: F401  (FORMATS: part of this package's interface)
from mocap.io.tracks import Tracks
from mocap.io.files import atomic_write

log = logging.getLogger(__name__)

#: Units each format uses unless told otherwise.
DEFAULT_UNITS = {"bvh": "cm", "fbx": "cm", "trc": "m", "csv": "m", "c3d": "mm"}


def _load_write_fbx():
    try:
        from mocap.export.fbx import write_fbx
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("mocap.export.fbx"):
            raise MocapError("format fbx: the FBX writer (mocap.export.fbx) is not available in this build; "
                             "export bvh instead") from None
        raise
    return write_fbx


def export_tracks(tracks: Tracks, out_dir: str | os.PathLike, formats: str | Sequence[str] = ("bvh",),
                  rig: str = "canonical", units: str | None = None, rotation_order: str = "auto",
                  stem: str = "tracks", solve_config=None, preset: str | None = None,
                  chunk_frames: int | None = None) -> list[Path]:
    """Write ``tracks`` in the given formats under ``out_dir``; returns the written paths.

    Args:
        tracks: :class:`mocap.io.tracks.Tracks` (positions ``(T, P, J, 3)`` world metres).
        out_dir: output folder (created).
        formats: any of :data:`FORMATS`, a list or a comma-separated string.
        rig: target rig of BVH/FBX, ``canonical``, ``mixamo``, ``ue5`` or ``unity``
            (:mod:`mocap.export.rigs`: the target's own hierarchy and names, retargeted).
        units: ``m``, ``cm`` or ``mm`` for every format; None = :data:`DEFAULT_UNITS`.
        rotation_order: BVH rotation order, one for all joints or ``auto`` (each joint its own:
            :func:`mocap.export.bvh.joint_orders`).
        stem: file name stem of the files that hold everyone (FBX, CSV).
        solve_config: :class:`mocap.skeleton.solve.SolveConfig` for the skeleton formats.
        preset: the former name of ``rig`` (``unreal`` = ``ue5``); given, it replaces ``rig``.
        chunk_frames: BVH and FBX are solved and written this many frames at a time
            (:mod:`mocap.export.stream`: the same files whatever the chunk; memory independent of
            the take's length); None: :data:`mocap.skeleton.stream.DEFAULT_CHUNK_FRAMES`.

    Every file is written to a temporary name and renamed, so a failure never leaves a partial
    file. People who cannot be solved are skipped with a warning; if nobody can, MocapError.
    """
    from mocap.export.source import TracksSource

    return export_source(TracksSource(tracks), out_dir, formats, rig, units, rotation_order, stem, solve_config,
                         preset, chunk_frames)


def export_file(path: str | os.PathLike, out_dir: str | os.PathLike, formats: str | Sequence[str] = ("bvh",),
                rig: str = "canonical", units: str | None = None, rotation_order: str = "auto",
                stem: str | None = None, solve_config=None, chunk_frames: int | None = None) -> list[Path]:
    """:func:`export_tracks` of a ``tracks.npz`` file, read a chunk of frames at a time for BVH and
    FBX (:class:`mocap.export.source.NpzTracksSource`); TRC, CSV and C3D load the whole take.
    ``stem`` defaults to the file's."""
    from mocap.export.source import NpzTracksSource

    with NpzTracksSource(path) as source:
        return export_source(source, out_dir, formats, rig, units, rotation_order, stem or Path(path).stem,
                             solve_config, None, chunk_frames)


def export_source(source, out_dir: str | os.PathLike, formats: str | Sequence[str] = ("bvh",), rig: str = "canonical",
                  units: str | None = None, rotation_order: str = "auto", stem: str = "tracks", solve_config=None,
                  preset: str | None = None, chunk_frames: int | None = None) -> list[Path]:
    """:func:`export_tracks` of a source of frames (:mod:`mocap.export.source`)."""
    from mocap.export.options import rig_from_preset
    from mocap.export.rigs import RIGS

    fmts = parse_formats(formats)
    rig = check_choice(rig if preset is None else rig_from_preset(preset), RIGS, "rig")
    if units is not None:
        check_choice(units, UNIT_SCALE, "units")
    out = Path(out_dir)
    unit = {f: units or DEFAULT_UNITS[f] for f in fmts}
    written: list[Path] = []
    report: dict = {"formats": list(fmts), "rig": rig, "units": unit, "rotation_order": rotation_order,
                    "frames": source.num_frames, "fps": source.fps, "people": {}}

    if "bvh" in fmts or "fbx" in fmts:
        written += _write_skeleton_formats(source, out, fmts, rig, unit, rotation_order, stem, solve_config, report,
                                           chunk_frames)
    if "trc" in fmts or "c3d" in fmts or "csv" in fmts:
        tracks = source.load()
        if "trc" in fmts or "c3d" in fmts:
            written += _write_marker_formats(tracks, out, fmts, unit)
        if "csv" in fmts:
            from mocap.export.tabular import write_tracks_csv

            written.append(write_tracks_csv(tracks, out / f"{stem}.csv", unit["csv"]))

    text = json.dumps(report, indent=1)

    def write_report(tmp):
        Path(tmp).write_text(text + "\n")

    written.append(atomic_write(out / "export.json", write_report))
    for path in written:
        log.debug("wrote %s", path)
    return written


def _write_skeleton_formats(source, out: Path, fmts: tuple[str, ...], rig: str, unit: dict[str, str],
                            rotation_order: str, stem: str, solve_config, report: dict, chunk_frames: int | None) -> list[Path]:
    """Solve a skeleton per person, retarget it to ``rig`` and write BVH (one per person) and FBX
    (everyone), chunk by chunk (:func:`mocap.export.stream.write_skeleton_stream`); adds the solve's
    options and per-person residuals and offsets to ``report``."""
    from mocap.export.stream import write_skeleton_stream
    from mocap.skeleton.solve import SolveConfig
    from mocap.skeleton.stream import DEFAULT_CHUNK_FRAMES

    cfg = solve_config or SolveConfig()
    report["solve"] = asdict(cfg)
    if "fbx" in fmts:
        _load_write_fbx()  # fail before any work
    if "bvh" in fmts:
        from mocap.export.bvh import ROTATION_ORDERS

        check_choice(rotation_order, ROTATION_ORDERS, "rotation_order")
    return write_skeleton_stream(source, out, fmts, rig, unit, rotation_order, stem, cfg, report,
                                 chunk_frames or DEFAULT_CHUNK_FRAMES)


def _write_marker_formats(tracks: Tracks, out: Path, fmts: tuple[str, ...], unit: dict[str, str]) -> list[Path]:
    """Write the raw 3D joints of each person as TRC and/or C3D (people with no data skipped)."""
    from mocap.export.c3d import write_c3d
    from mocap.export.trc import write_trc

    written = []
    for p, tid in enumerate(tracks.track_ids):
        pts = tracks.positions[:, p]
        if not np.isfinite(pts).any():
            log.warning("person_%d has no data at all; no TRC/C3D written for it", tid)
            continue
        if "trc" in fmts:
            written.append(write_trc(pts, tracks.joint_names, tracks.fps, out / f"person_{tid}.trc",
                                     tracks.frame_indices, unit["trc"]))
        if "c3d" in fmts:
            written.append(write_c3d(pts, tracks.joint_names, tracks.fps, out / f"person_{tid}.c3d", unit["c3d"],
                                     first_frame=int(tracks.frame_indices[0]) + 1))
    return written
