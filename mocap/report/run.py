"""The run report's numbers (``mocap process``): what was found, how well it fits, what to look at.

``DIR/report.yaml`` (numbers) and ``DIR/report.md`` (the same for a person to read), written next
to the outputs. Per camera: frames with somebody detected, people per frame, detections found by
the cross-view pass, and how far the 3D result lands from the camera's own detections when
projected back (a camera far off the others points at its calibration or a sync problem). Per
performer: frames present, joints triangulated, bone-length steadiness, the skeleton solve's
residual. The checks that failed are listed first, each with what to do.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import yaml

from mocap.evaluate import bone_length_cv
from mocap.geometry import Rig
from mocap.io.keypoints import Keypoints2D
from mocap.io.tracks import Tracks
from mocap.io.files import atomic_write

#: A camera whose 3D reprojects farther than this fraction of the image height from its own
#: detections (median, limb joints) is flagged.
MAX_REPROJECTION_FRACTION = 0.03
#: A camera detecting somebody in fewer frames than this fraction is flagged.
MIN_COVERAGE = 0.5
#: Bone-length coefficient of variation above which a performer is flagged.
MAX_BONE_CV = 0.1


def bone_cv(points: np.ndarray, joint_names) -> float:
    """Mean bone-length coefficient of variation of one person ``(T, J, 3)`` (NaN: no bone seen)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(list(bone_length_cv(points, joint_names).values()) or [np.nan]))


def run_report(keypoints: Keypoints2D, rig: Rig, tracks: Tracks, timings: dict | None = None,
               export_summary: dict | None = None) -> dict:
    """The report's numbers.

    Args:
        keypoints: the detections, cameras in ``rig`` order (``align_to_rig``), with the
            detector's ``extras["detections"]`` when available (cross-view counts); or a frame
            source (:class:`~mocap.runtime.detection_frames.DetectionFrames`).
        rig: the calibration.
        tracks: the 3D result (or a ``tracks.npz`` path, read a chunk of frames at a time).
        timings: seconds per stage.
        export_summary: the exporter's ``export.json`` content (skeleton residuals).

    Returns:
        ``{"summary", "cameras", "people", "timings_s", "checks"}``; ``checks`` lists the
        problems found, one line each with what to do (empty when all is well).
    """
    from mocap.report.collect import take_figures

    return figures_report(take_figures(keypoints, rig, tracks), rig, timings, export_summary)


def figures_report(figures, rig: Rig, timings: dict | None = None, export_summary: dict | None = None) -> dict:
    """:func:`run_report` from what :func:`mocap.report.collect.take_figures` gathered (the take
    read once, a chunk of frames at a time)."""
    found = figures.found()  # (T, C) people detected
    T, C = found.shape
    reproj = figures.reprojection_per_camera()
    checks = []
    cameras = {}
    for c, cam in enumerate(rig.cameras):
        coverage = float((found[:, c] > 0).mean()) if T else 0.0
        px = reproj.get(cam.name, float("nan"))
        recorded = figures.recorded.get(cam.name, T)
        cameras[cam.name] = {
            "frames_with_people": round(coverage, 4),
            "people_per_frame": round(float(found[:, c].mean()) if T else 0.0, 3),
            "found_by_cross_view": figures.recovered.get(cam.name, 0),
            "frames_recorded": int(recorded),
            "reprojection_px": round(px, 2),
        }
        checks += camera_checks(cam, recorded, T, coverage, px)
    people = _people(figures, export_summary, checks)
    summary = {"frames": int(T), "fps": float(figures.fps), "cameras": int(C), "people": len(people),
               "performers_in_most_frames": int(sum(e["frames"] >= 0.5 * T for e in people.values()))}
    return {"summary": summary, "cameras": cameras, "people": people,
            "timings_s": {k: round(float(v), 3) for k, v in (timings or {}).items()}, "checks": checks}


def camera_checks(cam, recorded: int, T: int, coverage: float, px: float) -> list[str]:
    """The report's lines about one camera (empty when all is well)."""
    checks = []
    if recorded < T:
        checks.append(f"camera {cam.name}: its video ends at frame {recorded} of {T} (the camera stopped or the "
                      f"file is cut short); the rest of the take is solved from the other cameras")
    if coverage < MIN_COVERAGE:
        checks.append(f"camera {cam.name}: somebody detected in only {coverage:.0%} of frames; check that it "
                      f"sees the capture volume and that its video is the right one")
    if np.isfinite(px) and px > MAX_REPROJECTION_FRACTION * cam.size[1]:
        checks.append(f"camera {cam.name}: the 3D lands {px:.0f} px from its own detections (median); "
                      f"recalibrate it, or check that its video is in sync with the others")
    return checks


def _people(figures, export_summary: dict | None, checks: list) -> dict:
    present = figures.presence()  # (T, P)
    cv, _ = figures.bone_cv()
    J = len(figures.joint_names)
    solved = (export_summary or {}).get("people", {})
    people = {}
    for p, tid in enumerate(figures.track_ids):
        frames = int(present[:, p].sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no bone seen
            mean_cv = float(np.nanmean(cv[p])) if cv.shape[1] else float("nan")
        entry = {
            "frames": frames,
            "first_frame": int(np.argmax(present[:, p])) if frames else -1,
            "joints_triangulated": round(float(figures.ok_joints[p]) / (frames * J), 4) if frames else 0.0,
            "bone_length_cv": round(mean_cv, 4),
        }
        res = solved.get(f"person_{tid}", {}).get("residual_m")
        if res:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                entry["skeleton_residual_median_mm"] = round(1000 * float(np.nanmedian([v[0] for v in res.values()])), 1)
        elif export_summary is not None:
            entry["skeleton"] = "not solved (too few frames with hips); no BVH/FBX for this person"
        people[f"person_{tid}"] = entry
        if np.isfinite(mean_cv) and mean_cv > MAX_BONE_CV and frames >= 10:
            checks.append(f"person_{tid}: bone lengths vary by {mean_cv:.0%} over the take; look at the frames where "
                          f"they are hidden or close to someone (report.md lists the cameras' figures)")
    return people


def write_run_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.yaml`` and ``report.md`` into ``out_dir``."""
    out = Path(out_dir)
    y = atomic_write(out / "report.yaml", lambda tmp: Path(tmp).write_text(yaml.safe_dump(report, sort_keys=False)))
    s = report["summary"]
    lines = ["# Run report", "",
             f"{s['frames']} frames at {s['fps']:g} fps, {s['cameras']} cameras, "
             f"{s['people']} {'person' if s['people'] == 1 else 'people'} "
             f"({s['performers_in_most_frames']} in at least half of the frames).", ""]
    lines += ["## Checks", ""] + ([f"- {c}" for c in report["checks"]] or ["- nothing to look at"]) + [""]
    lines += ["## Cameras", "", "| camera | frames with people | people per frame | found by cross-view | "
              "3D vs own detections (px, median) |", "|---|---|---|---|---|"]
    for name, c in report["cameras"].items():
        lines.append(f"| {name} | {c['frames_with_people']:.0%} | {c['people_per_frame']:.2f} | "
                     f"{c['found_by_cross_view']} | {c['reprojection_px']:.1f} |")
    lines += ["", "## People", "", "| person | frames | first frame | joints triangulated | bone-length CV | "
              "skeleton residual (mm, median) |", "|---|---|---|---|---|---|"]
    for name, p in report["people"].items():
        lines.append(f"| {name} | {p['frames']} | {p['first_frame']} | {p['joints_triangulated']:.0%} | "
                     f"{p['bone_length_cv']:.3f} | {p.get('skeleton_residual_median_mm', p.get('skeleton', '-'))} |")
    if report["timings_s"]:
        lines += ["", "## Time", "", ", ".join(f"{k} {v:.1f} s" for k, v in report["timings_s"].items())]
    m = atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    return y, m


def load_export_summary(export_dir: str | Path) -> dict | None:
    """The exporter's ``export.json`` when present."""
    path = Path(export_dir) / "export.json"
    return json.loads(path.read_text()) if path.is_file() else None
