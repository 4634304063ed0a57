"""The HTML report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Every figure is drawn from what :class:`mocap.report.collect.TakeFigures` gathered of the take
(and the calibration, the timings); performers keep the colour they have in the overlay videos and the 3D viewer.
"""

from __future__ import annotations

import io

import numpy as np

from mocap.geometry import Rig
from mocap.view.scene import MIN_VIEWS, CaptureVolume, camera_frustum, person_rgb

#: Pixel density of the PNGs. The page shows figures 9 inches wide in 900 CSS px; 1.2 device px per
#: CSS px keeps text sharp enough and a figure's drawing time under ~0.5 s (200 took 1-3 s each).
DPI = 120


def _figure(width_in: float, height_in: float, cols: int = 1, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    return fig, fig.subplots(1, cols, squeeze=False, **kw)[0]


def to_png(fig) -> bytes:
    """The figure as PNG bytes (Agg; no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def plot_reprojection(errors_px: np.ndarray, camera_names, joint_names) -> bytes:
    """Heat map of :func:`reprojection_per_joint` (cameras x joints)."""
    C, J = errors_px.shape
    fig, (ax,) = _figure(max(6.0, 0.32 * J + 2), 0.42 * C + 2.4)
    shown = np.ma.masked_invalid(errors_px)
    im = ax.imshow(shown, cmap="viridis", aspect="auto", vmin=0, vmax=np.nanpercentile(errors_px, 95)
                   if np.isfinite(errors_px).any() else 1.0)
    ax.set_xticks(range(J), [n.replace("_", " ") for n in joint_names], rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(C), list(camera_names), fontsize=8)
    fig.colorbar(im, ax=ax, label="px (median over frames)")
    ax.set_title("3D projected into each camera vs its own detections")
    return to_png(fig)


def presence_runs(present: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of True in ``present (T,)``."""
    edges = np.diff(np.concatenate([[0], present.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def plot_people(present: np.ndarray, track_ids) -> bytes:
    """Identities over time (a bar per ID where the person is present in ``present (T, P)``, in
    their colour) and the number of people present in each frame."""
    P = present.shape[1]
    fig, (top, bottom) = _people_axes(P)
    for p, tid in enumerate(track_ids):
        top.broken_barh(presence_runs(present[:, p]), (p - 0.4, 0.8), facecolors=person_rgb(tid))
    top.set_yticks(range(P), [f"person_{t}" for t in track_ids], fontsize=8)
    top.set_ylim(-0.6, P - 0.4)
    top.invert_yaxis()
    top.set_title("who is present when")
    bottom.step(np.arange(len(present)), present.sum(-1), where="mid", color="0.2")
    bottom.set_ylabel("people")
    bottom.set_xlabel("frame (row of tracks.npz)")
    bottom.set_xlim(0, max(len(present) - 1, 1))
    return to_png(fig)


def _people_axes(people: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 2.2 + 0.3 * people), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[max(people, 1), 2])
    return fig, (top, bottom)


def plot_detection(found: np.ndarray, fps: float | None, camera_names) -> bytes:
    """Per camera: the share of frames with somebody detected (bars) and the people it detects
    per frame over the take (lines, a 1-second running mean); ``found (T, C)`` people detected."""
    rate = (found > 0).mean(0) if len(found) else np.zeros(len(camera_names))
    fig, (left, right) = _figure(9.0, 3.0, cols=2, width_ratios=[1, 2])
    left.bar(range(len(rate)), 100 * rate, color="#4a7bd0")
    left.set_xticks(range(len(rate)), list(camera_names), rotation=45, ha="right", fontsize=8)
    left.set_ylim(0, 105)
    left.set_ylabel("frames with somebody (%)")
    window = np.ones(max(int(round(fps or 30)), 1))
    frames = np.convolve(np.ones(len(found)), window, mode="same")  # frames under the window (fewer at the ends)
    for c, name in enumerate(camera_names):
        right.plot(np.convolve(found[:, c].astype(float), window, mode="same") / frames, label=name, lw=1)
    right.set_xlabel("frame")
    right.set_ylabel("people detected (1 s mean)")
    right.legend(fontsize=7, ncols=min(len(camera_names), 4), loc="lower right")
    return to_png(fig)


def plot_bones(cv: np.ndarray, bones, track_ids, max_cv: float) -> bytes:
    """Bone-length steadiness: each bone's coefficient of variation ``cv (P, B)`` per performer
    (grouped bars in their colours) with the report's flag level."""
    P, B = cv.shape
    fig, (ax,) = _figure(9.0, 3.2)
    width = 0.8 / max(P, 1)
    for p, tid in enumerate(track_ids):
        ax.bar(np.arange(B) + (p - (P - 1) / 2) * width, 100 * np.nan_to_num(cv[p]), width, color=person_rgb(tid),
               label=f"person_{tid}")
    ax.axhline(100 * max_cv, color="#c03030", lw=1, ls="--", label=f"flagged above {max_cv:.0%}")
    ax.set_xticks(range(B), [b.replace("left_", "L ").replace("right_", "R ").replace("-", " - ") for b in bones],
                  rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("length std / mean (%)")
    ax.legend(fontsize=7, ncols=min(P + 1, 4))
    ax.set_title("bone lengths over the take")
    return to_png(fig)


def plot_timings(timings_s: dict) -> bytes:
    """Seconds per stage, one horizontal bar each, total in the title."""
    fig, (ax,) = _figure(9.0, 0.8 + 0.35 * max(len(timings_s), 1))
    names, secs = list(timings_s), [float(v) for v in timings_s.values()]
    ax.barh(range(len(secs)), secs, color="#6a9f58")
    ax.set_yticks(range(len(secs)), names)
    ax.invert_yaxis()
    for k, s in enumerate(secs):
        ax.text(s, k, f" {s:.1f} s", va="center", fontsize=8)
    ax.set_xlim(0, 1.2 * max(secs + [1e-3]))
    ax.set_xlabel("seconds")
    ax.set_title(f"time per stage (total {sum(secs):.1f} s)")
    return to_png(fig)


def plot_rig(rig: Rig, volume: CaptureVolume, paths: list) -> bytes:
    """The calibrated rig from above and in 3D: cameras as frusta with their names, the floor
    inside the capture volume (cells seen by at least two cameras at ankle, hip and head height,
    shaded by how many), and each performer's path (``[(track id, (m, 3))]``: pelvis, or mean of
    joints) in their colour."""
    fig, (top, side) = _rig_axes()
    shade = np.ma.masked_less(volume.views, MIN_VIEWS)
    extent = (volume.x[0], volume.x[-1], volume.y[0], volume.y[-1]) if len(volume.x) and len(volume.y) else None
    im = top.imshow(shade, origin="lower", extent=extent, cmap="Blues", vmin=0, vmax=len(rig), alpha=0.8)
    fig.colorbar(im, ax=top, label="cameras seeing the floor cell", shrink=0.8)
    for cam in rig.cameras:
        seg = camera_frustum(cam, depth=0.5)
        for a, b in seg:
            top.plot([a[0], b[0]], [a[1], b[1]], color="0.2", lw=0.8)
            side.plot([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], color="0.2", lw=0.8)
        top.annotate(cam.name, cam.center[:2], fontsize=7, xytext=(3, 3), textcoords="offset points")
        side.text(*cam.center, cam.name, fontsize=6)
    for tid, path in paths:
        top.plot(path[:, 0], path[:, 1], color=person_rgb(tid), lw=1.2, label=f"person_{tid}")
        side.plot(path[:, 0], path[:, 1], path[:, 2], color=person_rgb(tid), lw=1.0)
    inside = np.argwhere(volume.views >= MIN_VIEWS)
    if len(inside):
        side.scatter(volume.x[inside[::7, 1]], volume.y[inside[::7, 0]], 0, s=1, color="#4a7bd0", alpha=0.3)
    top.set_aspect("equal")
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    top.set_title(f"from above: capture volume {volume.area_m2:.1f} m² of floor")
    if paths:
        top.legend(fontsize=7, loc="upper right")
    _equal_3d(side, np.concatenate([rig.centers] + [p for _, p in paths] + [np.zeros((1, 3))]))
    side.set_title("in 3D (metres, Z up)")
    return to_png(fig)


def _rig_axes():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.2), dpi=DPI, layout="constrained")
    top = fig.add_subplot(1, 2, 1)
    side = fig.add_subplot(1, 2, 2, projection="3d")
    return fig, (top, side)


def _equal_3d(ax, points: np.ndarray) -> None:
    lo, hi = points.min(0), points.max(0)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.5)
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(0, max(float(hi[2]) + 0.3, 1.0))
    ax.set_box_aspect((1.0, 1.0, max(float(hi[2]) + 0.3, 1.0) / (2 * half)))
    ax.tick_params(labelsize=6)
