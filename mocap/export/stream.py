"""BVH and FBX export in chunks of frames: the same files as the whole-take writers, with peak
memory independent of the take's length.

The take is solved chunk by chunk (:func:`mocap.skeleton.stream.solve_stream`: the per-frame
arrays wait on disk); every whole-take choice is made in a first pass over the chunks — which
target bones stretch (:func:`mocap.export.rigs.retarget_deviation`), each joint's rotation order
(BVH ``auto``: :class:`mocap.skeleton.euler.CalmestOrders`; FBX:
:class:`~mocap.skeleton.euler.LeastSingularOrders`) — and the numbers are written in a second,
the Euler curves kept continuous across chunk borders (:class:`~mocap.skeleton.euler.ContinuousEuler`).
BVH rows go to the file as they come; FBX curves go to a temporary float32 file and into the FBX
one curve at a time (:func:`mocap.export.fbx.write_fbx_stream`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mocap.export.rigs import retarget, retarget_deviation, rigid_bones
from mocap.skeleton.stream import DEFAULT_CHUNK_FRAMES, StreamedFit, chunk_ranges, solve_stream


class AnimationChunks:
    """One person's solved take retargeted to ``rig``, as consecutive :class:`SkeletonAnimation`
    chunks (a fresh pass over the solve's store each time it is iterated).

    ``rigid``: the target bones that keep their rest offset over the whole take (from a pass of
    :func:`retarget_deviation`; None for ``canonical``); ``stretching``: the joints whose offset is
    animated over the whole take (what :meth:`SkeletonAnimation.stretching` says of the whole).
    """

    def __init__(self, fit: StreamedFit, rig: str, t_pose: bool, chunk_frames: int, rigid: np.ndarray | None = None):
        self.fit, self.rig, self.t_pose, self.chunk_frames = fit, rig, t_pose, chunk_frames
        self.name, self.fps, self.num_frames = fit.name, fit.fps, fit.num_frames
        self.rigid = rigid
        if rig == "canonical":
            self.stretching = fit.stretching
        else:  # a retargeted bone's offset is its rest offset exactly, or moves by more than 1e-8 m
            self.stretching = ~rigid

    def __iter__(self):
        for a, b in chunk_ranges(self.num_frames, self.chunk_frames):
            yield retarget(self.fit.chunk(a, b), self.rig, self.t_pose, self.rigid)


def rig_chunks(fit: StreamedFit, rig: str, chunk_frames: int, t_poses=(False, True)) -> dict[bool, AnimationChunks]:
    """``{t_pose: AnimationChunks}`` of ``fit`` on ``rig``; one pass over the chunks finds which bones
    stretch for every ``t_pose`` asked."""
    if rig == "canonical":
        return {t: AnimationChunks(fit, rig, t, chunk_frames) for t in t_poses}
    deviation: dict[bool, np.ndarray] = {}
    for a, b in chunk_ranges(fit.num_frames, chunk_frames):
        anim = fit.chunk(a, b)
        for t in t_poses:
            d = retarget_deviation(anim, rig, t)
            deviation[t] = d if t not in deviation else np.maximum(deviation[t], d)
    return {t: AnimationChunks(fit, rig, t, chunk_frames, rigid_bones(deviation[t])) for t in t_poses}


def person_report(fit: StreamedFit) -> dict:
    """What ``export.json`` says of one person (residuals, offsets, frames, stretch ranges)."""
    return {
        "residual_m": {k: [round(a, 6), round(b, 6)] for k, (a, b) in fit.residual_summary.items()},
        "offsets_m": {n: np.round(o, 6).tolist() for n, o in zip(fit.joint_names, fit.offsets)},
        "present_frames": int(fit.present_frames),
        "stretch_m": {fit.joint_names[j]: [round(float(fit.stretch_change[j, 0]), 6), round(float(fit.stretch_change[j, 1]), 6)]
                      for j in np.flatnonzero(fit.stretching)},
    }


def write_skeleton_stream(source, out: Path, fmts: tuple[str, ...], rig: str, unit: dict[str, str], rotation_order: str,
                          stem: str, solve_config, report: dict, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> list[Path]:
    """Solve every person of ``source`` (:mod:`mocap.export.source`) chunk by chunk and write BVH (one
    per person) and/or FBX (everyone) as :func:`mocap.export.export_tracks` does; adds each person's
    entry to ``report["people"]``. Temporary files go to the system's temporary folder."""
    from mocap.export.bvh import stream_orders, write_bvh_stream
    from mocap.export.fbx import write_fbx_stream

    written = []
    with tempfile.TemporaryDirectory(prefix="mocap-export-") as tmp:
        fits = solve_stream(source, tmp, solve_config, chunk_frames)
        for fit in fits:
            report["people"][fit.name] = person_report(fit)
        t_poses = tuple(t for t, f in ((False, "fbx"), (True, "bvh")) if f in fmts)
        takes = [rig_chunks(fit, rig, chunk_frames, t_poses) for fit in fits]
        if "bvh" in fmts:  # in the T pose, as BVH readers expect
            for chunks in (t[True] for t in takes):
                orders = stream_orders(chunks, rotation_order)
                written.append(write_bvh_stream(chunks, out / f"{chunks.name}.bvh", unit["bvh"], orders, chunks.stretching))
        if "fbx" in fmts:
            written.append(write_fbx_stream([t[False] for t in takes], out / f"{stem}.fbx", unit["fbx"], tmp))
    return written
