"""``DIR/report.html``: the run report as one self-contained page with pictures.

The figures (:mod:`mocap.report.plots`) are inline PNGs (``data:`` URIs), the styles inline; the
page loads nothing else and runs no script, so it opens from an e-mail attachment or a build
artefact. Sections: what to look at (the report's checks), the rig and its capture volume,
reprojection error per camera and joint, detection rate per camera, people and identities over
time, bone-length steadiness, time per stage, and the tables of ``report.md``.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np

from mocap.geometry import Rig
from mocap.io.files import atomic_write
from mocap.io.keypoints import Keypoints2D
from mocap.io.tracks import Tracks
from mocap.report.collect import TakeFigures
from mocap.report.run import MAX_BONE_CV

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 940px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
figure { margin: 12px 0; } figure img { width: 900px; height: auto; display: block; }
figcaption { color: #555; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f3f3f3; } td.num { text-align: right; }
.checks li { color: #a02020; } .ok { color: #207020; }
"""


def figure(png: bytes, key: str, caption: str) -> str:
    """An ``<figure>`` holding ``png`` inline (``id="plot-<key>"``)."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="plot-{key}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def table(header, rows) -> str:
    """An HTML table; numbers right-aligned."""
    def cell(v):
        cls = ' class="num"' if isinstance(v, (int, float, np.number)) else ""
        text = f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)
        return f"<td{cls}>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _summary(report: dict) -> str:
    s = report["summary"]
    line = (f"{s['frames']} frames at {s['fps']:g} fps, {s['cameras']} cameras, {s['people']} "
            f"{'person' if s['people'] == 1 else 'people'} ({s['performers_in_most_frames']} in at least half of "
            f"the frames).")
    checks = report.get("checks") or []
    listed = ("<ul class='checks'>" + "".join(f"<li>{html.escape(c)}</li>" for c in checks) + "</ul>") if checks \
        else "<p class='ok'>Nothing to look at: every check passed.</p>"
    return f"<p>{html.escape(line)}</p><h2>Checks</h2>{listed}"


def _tables(report: dict) -> str:
    cams = table(["camera", "frames with people", "people per frame", "found by cross-view",
                  "3D vs own detections (px, median)"],
                 [[n, f"{c['frames_with_people']:.0%}", c["people_per_frame"], c["found_by_cross_view"],
                   c["reprojection_px"]] for n, c in report["cameras"].items()])
    people = table(["person", "frames", "first frame", "joints triangulated", "bone-length CV",
                    "skeleton residual (mm, median)"],
                   [[n, p["frames"], p["first_frame"], f"{p['joints_triangulated']:.0%}", p["bone_length_cv"],
                     p.get("skeleton_residual_median_mm", p.get("skeleton", "-"))] for n, p in report["people"].items()])
    return f"<h2>Cameras</h2>{cams}<h2>People</h2>{people}"


def html_report(report: dict, keypoints: Keypoints2D, rig: Rig, tracks: Tracks, title: str = "Run report") -> str:
    """The page's HTML.

    Args:
        report: :func:`mocap.report.run_report`'s numbers (checks, tables, ``timings_s``).
        keypoints: the detections ``data (T, C, P, J, 3)``, cameras in ``rig`` order.
        rig: the calibration.
        tracks: the 3D result ``positions (T, P, J, 3)``.
        title: the page's heading.
    """
    from mocap.report.collect import take_figures

    return figures_html(report, take_figures(keypoints, rig, tracks), rig, title)


def figures_html(report: dict, figures: TakeFigures, rig: Rig, title: str = "Run report") -> str:
    """:func:`html_report` from what :func:`mocap.report.collect.take_figures` gathered."""
    from mocap.report import plots
    from mocap.view.scene import capture_volume

    errors, joints = figures.reprojection_per_joint(), list(figures.compared)
    parts = [f"<h1>{html.escape(title)}</h1>", _summary(report), "<h2>Rig and capture volume</h2>",
             figure(plots.plot_rig(rig, capture_volume(rig), figures.person_paths()), "rig",
                    "Cameras as frusta; shaded floor: seen by at least two cameras at ankle, hip and head height; "
                    "lines: each performer's path.")]
    if joints:
        parts += ["<h2>Reprojection error per camera and joint</h2>",
                  figure(plots.plot_reprojection(errors, rig.names, joints), "reprojection",
                         "Median distance between the 3D result projected into a camera and that camera's own "
                         "detection. A bright row: the camera's calibration or sync; a bright column: a joint the "
                         "detector places differently from view to view.")]
    cv, bones = figures.bone_cv()
    parts += ["<h2>Detection rate per camera</h2>",
              figure(plots.plot_detection(figures.found(), figures.detections_fps, rig.names), "detection",
                     "Share of frames in which each camera detects somebody, and how many people it detects over "
                     "the take."),
              "<h2>People and identities over time</h2>",
              figure(plots.plot_people(figures.presence(), figures.track_ids), "people",
                     "Each ID's frames; an ID that stops and another that starts there may be one performer "
                     "whose identity was lost."),
              "<h2>Bone-length steadiness</h2>",
              figure(plots.plot_bones(cv, bones, figures.track_ids, MAX_BONE_CV), "bones",
                     "A real bone keeps its length: large variation points at frames where the performer is "
                     "hidden or close to someone.")]
    if report.get("timings_s"):
        parts += ["<h2>Time per stage</h2>", figure(plots.plot_timings(report["timings_s"]), "timings",
                                                    "Wall-clock seconds of each stage of this run.")]
    parts.append(_tables(report))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_html_report(report: dict, out_dir: str | os.PathLike, keypoints: Keypoints2D | None, rig: Rig,
                      tracks: Tracks | None, title: str = "Run report", figures: TakeFigures | None = None) -> Path:
    """Write ``report.html`` (:func:`html_report`) into ``out_dir``; returns its path. With
    ``figures`` (:func:`mocap.report.collect.take_figures`), ``keypoints`` and ``tracks`` are not read."""
    from mocap.report.collect import take_figures

    figures = figures if figures is not None else take_figures(keypoints, rig, tracks)
    page = figures_html(report, figures, rig, title)
    return atomic_write(Path(out_dir) / "report.html", lambda tmp: Path(tmp).write_text(page, encoding="utf-8"),
                        suffix=".html")
