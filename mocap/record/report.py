"""The sync report of a take: per camera timing, and which frame of each camera belongs to each
instant (the matched frame table).

Frame timing per camera: every capture time ``t`` gets a nominal slot ``n`` (period ``1/fps``),
in order and within :data:`TIMING_TOLERANCE` periods (:func:`assign_in_order`); a slot skipped
is a dropped frame, a frame with no slot of its own a duplicated one. The timing jitter is the robust standard deviation (1.4826 x MAD) of the
residuals of a straight-line fit ``t = a + b n`` (the line absorbs a camera clock's drift).

Matched frame table: instants on one grid of the fastest camera's period, phased on the circular
mean of every capture time modulo the period; a camera's frames are assigned to instants in
order, each to its nearest instant or a neighbour of it (:func:`assign_in_order`), up to
``tolerance`` periods away (-1 where a camera has no frame at an instant). The
spread of an instant is the latest minus the earliest capture time of the cameras that have a
frame there.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import yaml

from mocap.io.files import atomic_write

log = logging.getLogger(__name__)

#: Periods a frame may lie from the slot it is given when frames are put in order (a frame
#: repeated at the same time as the one before, 1 period from the next free slot, stays a duplicate).
TIMING_TOLERANCE = 0.75
#: Robust standard deviation from the median absolute deviation of a normal distribution.
MAD_TO_SD = 1.4826


def read_timestamps(path: str | os.PathLike) -> np.ndarray:
    """``(N, 4)`` int64 rows of ``timestamps/<cam>.csv``: video frame, monotonic ns, wall ns,
    source frame (-1 where the source numbers none)."""
    with warnings.catch_warnings():  # a camera that delivered no frame: header only
        warnings.simplefilter("ignore", UserWarning)
        rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.int64)
    if rows.size == 0:
        return np.zeros((0, 4), np.int64)
    if rows.shape[1] < 2:
        raise ValueError(f"timestamps {path}: expected columns frame,time_ns,...; got {rows.shape[1]} column(s)")
    if rows.shape[1] < 4:
        rows = np.hstack([rows, np.full((len(rows), 4 - rows.shape[1]), -1, np.int64)])
    return rows[:, :4]


def camera_timing(t_ns: np.ndarray, fps: float) -> dict:
    """Effective fps, dropped and duplicated frames and timing jitter of one camera.

    Args:
        t_ns: ``(N,)`` capture times, ns, in frame order.
        fps: the camera's nominal frame rate.
    """
    t = np.asarray(t_ns, np.int64) - (int(t_ns[0]) if len(t_ns) else 0)  # float64 keeps ns over 104 days
    t = t.astype(np.float64)
    out = {"frames": int(len(t)), "fps_nominal": float(fps)}
    if len(t) < 2:
        return {**out, "fps_effective": None, "dropped": 0, "duplicated": 0, "jitter_ms": None,
                "duration_s": 0.0}
    period = 1e9 / fps
    # Slots from the circular mean phase of all frames, not from frame 0's own jittered time;
    # assigned in order, so a frame delivered late is neither a duplicate nor leaves a gap.
    phase = np.angle(np.exp(2j * np.pi * t / period).mean()) / (2 * np.pi) * period
    base = np.floor((t.min() - phase) / period) - 1
    slot_all = assign_in_order(t - phase - base * period, period, TIMING_TOLERANCE)
    placed = slot_all >= 0
    t, slot = t[placed], slot_all[placed].astype(np.float64)
    if len(t) < 2:
        return {**out, "fps_effective": None, "dropped": 0, "duplicated": int((~placed).sum()), "jitter_ms": None,
                "duration_s": 0.0}
    b, a = np.polyfit(slot, t, 1)  # slope, intercept
    resid = t - (a + b * slot)
    jitter = MAD_TO_SD * np.median(np.abs(resid - np.median(resid)))
    return {**out, "fps_effective": float((len(t) - 1) / (t[-1] - t[0]) * 1e9),
            "dropped": int(slot[-1] - slot[0] + 1 - len(slot)), "duplicated": int((~placed).sum()),
            "jitter_ms": float(jitter / 1e6), "duration_s": float((t[-1] - t[0]) / 1e9)}


def matched_frames(times_ns: dict[str, np.ndarray], fps: float, tolerance: float = TIMING_TOLERANCE):
    """The matched frame table.

    Args:
        times_ns: ``{camera: (N_c,) capture times ns}``.
        fps: the timeline's frame rate (the fastest camera's).
        tolerance: periods a frame may lie from its instant.

    Returns:
        ``(instants_ns (T,) float, table (T, C) int)``: ``table[i, c]`` the frame index of camera
        c at instant i, -1 where it has none; instants where no camera has a frame are left out.
    """
    names = list(times_ns)
    period = 1e9 / fps
    stacked = [np.asarray(times_ns[n], np.float64) for n in names]
    nonempty = [t for t in stacked if len(t)]
    if not nonempty:
        return np.zeros(0), np.zeros((0, len(names)), np.int64)
    origin = min(t[0] for t in nonempty)
    rel = np.concatenate(nonempty) - origin
    phase = np.angle(np.exp(2j * np.pi * rel / period).mean()) / (2 * np.pi) * period
    first = np.floor((rel.min() - phase) / period) - 1
    last = np.ceil((rel.max() - phase) / period) + 1
    grid = phase + period * np.arange(first, last + 1)
    table = np.full((len(grid), len(names)), -1, np.int64)
    for c, t in enumerate(stacked):
        if len(t) == 0:
            continue
        inst = assign_in_order(t - origin - grid[0], period, tolerance)
        ok = inst >= 0
        table[inst[ok], c] = np.flatnonzero(ok)
    keep = (table >= 0).any(1)
    return grid[keep] + origin, table[keep]


def assign_in_order(t: np.ndarray, period: float, tolerance: float = 1.0) -> np.ndarray:
    """Instant of each frame: ``(N,)`` indices into the grid ``k * period`` (-1: none), strictly
    increasing, minimising the summed distance in time; a frame may go to the instant before or
    after its nearest one, up to ``tolerance`` periods away.

    A frame delivered late (a busy machine, a USB burst) lands nearest to the next instant, on
    top of the frame that truly belongs there; keeping the frames in order puts it back on its
    own instant instead of counting one frame twice and one instant as dropped. A frame that
    fits nowhere in order (a true duplicate) is left out (-1).
    """
    t = np.asarray(t, np.float64)
    near = np.round(t / period).astype(np.int64)
    cand = near[:, None] + np.array([-1, 0, 1])[None, :]  # (N, 3)
    cost = np.abs(t[:, None] - cand * period) / period
    cost[(cost > tolerance) | (cand < 0)] = np.inf
    n = len(t)
    # Viterbi over 4 states per frame: one of 3 candidate instants, or left out at the cost of
    # a frame ``tolerance`` off; ``last`` is each state's latest instant in use.
    total = np.append(cost[0], tolerance)
    last = np.append(cand[0], -1)
    back = np.zeros((n, 4), np.int64)
    for j in range(1, n):
        ok = last[None, :] < cand[j][:, None]  # (3 now, 4 before)
        prev = np.where(ok, total[None, :], np.inf)
        back[j, :3] = np.argmin(prev, axis=1)
        back[j, 3] = int(np.argmin(total))
        new_total = np.append(cost[j] + prev[np.arange(3), back[j, :3]], total[back[j, 3]] + tolerance)
        last = np.append(cand[j], last[back[j, 3]])
        total = new_total
    out = np.full(n, -1, np.int64)
    s = int(np.argmin(total))
    for j in range(n - 1, -1, -1):
        if s < 3:
            out[j] = cand[j, s]
        s = int(back[j, s])
    return out


def spread_ms(times_ns: dict[str, np.ndarray], table: np.ndarray) -> dict:
    """Median, 95th percentile and maximum of the per-instant spread (ms) over instants where
    at least two cameras have a frame; ``instants`` counts them."""
    t = np.full(table.shape, np.nan)
    for c, name in enumerate(times_ns):
        ok = table[:, c] >= 0
        t[ok, c] = np.asarray(times_ns[name], np.float64)[table[ok, c]]
    both = (table >= 0).sum(1) >= 2
    if not both.any():
        return {"median": None, "p95": None, "max": None, "instants": 0}
    s = (np.nanmax(t[both], 1) - np.nanmin(t[both], 1)) / 1e6
    return {"median": float(np.median(s)), "p95": float(np.percentile(s, 95)), "max": float(s.max()),
            "instants": int(both.sum())}


def sync_report(times_ns: dict[str, np.ndarray], fps: dict[str, float], cameras: dict[str, dict],
                tolerance: float = TIMING_TOLERANCE) -> dict:
    """The report's numbers: ``cameras`` (timing plus what the recorder logged per camera),
    ``stopped_cameras`` (those that failed mid-take; a file reaching its end is not a failure),
    ``spread_ms``, ``matched`` (instants, complete ones) and ``matched_frames`` (the table,
    one list per camera, -1 where the camera has no frame)."""
    fps_ref = max(fps.values())
    instants, table = matched_frames(times_ns, fps_ref, tolerance)
    per_camera = {}
    for c, name in enumerate(times_ns):
        per_camera[name] = {**camera_timing(times_ns[name], fps[name]), **cameras.get(name, {}),
                            "instants_matched": int((table[:, c] >= 0).sum())}
    complete = int((table >= 0).all(1).sum())
    return {"fps": float(fps_ref), "cameras": per_camera, "spread_ms": spread_ms(times_ns, table),
            "matched": {"instants": int(len(table)), "complete": complete},
            "stopped_cameras": [n for n, v in per_camera.items() if v.get("failed")],
            "matched_frames": {name: table[:, c].tolist() for c, name in enumerate(times_ns)},
            "instants_ns": [int(round(x)) for x in instants]}


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def report_markdown(report: dict, fault: str | None = None, rows: int = 10) -> str:
    """``sync_report.md``: what a person reads after a take."""
    lines = ["# Sync report", ""]
    if fault:
        lines += [f"**The take stopped early:** {fault}", ""]
    for name in report["stopped_cameras"]:
        cam = report["cameras"][name]
        lines.append(f"**Camera {name} stopped** after {_fmt(cam.get('stopped_after_s'), '.1f')} s: {cam['ended']}")
    lines += ["", "| camera | frames | fps nominal | fps effective | dropped | duplicated | dropped by recorder "
              "| queue peak / length | jitter ms | status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in report["cameras"].items():
        status = "stopped" if c.get("failed") else "ended" if c.get("ended") else "ok"
        lines.append(f"| {name} | {c['frames']} | {c['fps_nominal']:g} | {_fmt(c['fps_effective'], '.3f')} | "
                     f"{c['dropped']} | {c['duplicated']} | {c.get('dropped_by_recorder', 0)} | "
                     f"{c.get('queue_peak', '-')} / {c.get('queue_frames', '-')} | {_fmt(c['jitter_ms'])} | {status} |")
    for name, c in report["cameras"].items():
        at = c.get("dropped_by_recorder_at_s") or []
        if at:
            lines.append(f"\nCamera {name}: {c['dropped_by_recorder']} frame(s) dropped by the recorder (its queue was "
                         f"full: the encoder or the disk fell behind), at " + ", ".join(f"{t:.2f}" for t in at[:10])
                         + (" ..." if len(at) > 10 else "") + " s into the take.")
    s = report["spread_ms"]
    m = report["matched"]
    lines += ["", f"Spread between cameras per matched instant ({s['instants']} instants with two or more "
              f"cameras): median {_fmt(s['median'])} ms, p95 {_fmt(s['p95'])} ms, max {_fmt(s['max'])} ms.",
              f"Matched instants: {m['instants']} at {report['fps']:g} fps, {m['complete']} with every camera.", "",
              "Matched frame table (first rows; all of it in sync_report.yaml, `matched_frames`; -1: no frame):", ""]
    names = list(report["matched_frames"])
    lines += ["| instant | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i in range(min(rows, m["instants"])):
        lines.append(f"| {i} | " + " | ".join(str(report["matched_frames"][n][i]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def write_sync_report(report: dict, session: str | os.PathLike, fault: str | None = None) -> list[Path]:
    """Write ``sync_report.yaml`` (every number and the table) and ``sync_report.md``."""
    session = Path(session)
    doc = {**report, "fault": fault}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=None, width=1 << 30)
    paths = [atomic_write(session / "sync_report.yaml", lambda tmp: Path(tmp).write_text(text))]
    md = report_markdown(report, fault)
    paths.append(atomic_write(session / "sync_report.md", lambda tmp: Path(tmp).write_text(md)))
    return paths


def load_matched_frames(session: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """``{camera: (T,) frame index or -1}`` from a session's ``sync_report.yaml``, None without one."""
    path = Path(session) / "sync_report.yaml"
    if not path.is_file():
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(path.read_text(), Loader=loader) or {}
    table = doc.get("matched_frames")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: no matched_frames table; record the take again or delete the file")
    return {k: np.asarray(v, np.int64) for k, v in table.items()}
