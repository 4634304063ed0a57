"""Animation and analysis exporters (BVH, FBX, TRC, CSV, C3D).

:func:`export_tracks` is the one entry point the CLI calls: it solves a skeleton per person for
the animation formats (BVH, FBX) and writes the raw 3D joints for the analysis formats (TRC,
CSV, C3D). Files in ``out_dir``:

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
                  stem: str = "tracks", solve_config=None, preset: str | None = None) -> list[Path]:
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

    Every file is written to a temporary name and renamed, so a failure never leaves a partial
    file. People who cannot be solved are skipped with a warning; if nobody can, MocapError.
    """
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
                    "frames": tracks.num_frames, "fps": tracks.fps, "people": {}}

    if "bvh" in fmts or "fbx" in fmts:
        written += _write_skeleton_formats(tracks, out, fmts, rig, unit, rotation_order, stem, solve_config, report)
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


def _write_skeleton_formats(tracks: Tracks, out: Path, fmts: tuple[str, ...], rig: str, unit: dict[str, str],
                            rotation_order: str, stem: str, solve_config, report: dict) -> list[Path]:
    """Solve a skeleton per person, retarget it to ``rig`` and write BVH (one per person) and FBX
    (everyone); adds the solve's options and per-person residuals and offsets to ``report``."""
    from mocap.export.rigs import retarget
    from mocap.skeleton.solve import SolveConfig, solve_tracks

    cfg = solve_config or SolveConfig()
    report["solve"] = asdict(cfg)
    write_fbx = _load_write_fbx() if "fbx" in fmts else None  # fail before any work
    fits = solve_tracks(tracks, cfg)
    for fit in fits:
        report["people"][fit.animation.name] = {
            "residual_m": {k: [round(a, 6), round(b, 6)] for k, (a, b) in fit.residual_summary().items()},
            "offsets_m": {n: np.round(o, 6).tolist() for n, o in zip(fit.animation.joint_names, fit.animation.offsets)},
            "present_frames": int(fit.present.sum()),
            "stretch_m": _stretch_ranges(fit.animation),
        }
    animations = [retarget(fit.animation, rig) for fit in fits]
    written = []
    if "bvh" in fmts:  # in the T pose, as BVH readers expect (the same as ``animations`` but UE5's)
        from mocap.export.bvh import write_bvh

        for fit in fits:
            anim = retarget(fit.animation, rig, t_pose=True)
            written.append(write_bvh(anim, out / f"{anim.name}.bvh", unit["bvh"], rotation_order))
    if write_fbx is not None:
        written.append(write_fbx(animations, out / f"{stem}.fbx", units=unit["fbx"]))
    return written


def _stretch_ranges(anim) -> dict[str, list[float]]:
    """``{joint: [shortest, longest]}`` change of each stretching bone's length from its rest
    length over the take, metres (:attr:`mocap.skeleton.animation.SkeletonAnimation.translations`)."""
    change = np.linalg.norm(anim.local_translations(), axis=-1) - np.linalg.norm(anim.offsets, axis=-1)
    return {anim.joint_names[j]: [round(float(change[:, j].min()), 6), round(float(change[:, j].max()), 6)]
            for j in np.flatnonzero(anim.stretching())}


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
