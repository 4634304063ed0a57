"""Overlay videos: the 3D result drawn back onto every camera's video, to check a take by eye.

Each performer's joints are projected through the calibration and drawn as a stick figure in
their own colour with their ID; optionally the camera's own 2D detections are drawn as small
grey dots beside them, so a camera whose detections and 3D disagree (calibration, sync, a wrong
match) shows at a glance. One ``<cam>.mp4`` per camera, written atomically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from mocap.geometry import Rig, project
from mocap.io.tracks import Tracks
from mocap.io.files import atomic_write

log = logging.getLogger(__name__)

#: Sticks drawn between joints (those present in the tracks).
EDGES = (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_ankle", "left_heel"), ("left_ankle", "left_foot_index"), ("right_ankle", "right_heel"),
    ("right_ankle", "right_foot_index"), ("neck", "nose"),
)
#: BGR colours, one per track ID (cycled).
COLOURS = ((60, 200, 255), (255, 120, 40), (80, 220, 80), (200, 80, 255), (40, 40, 230), (230, 230, 60))


def person_colour(track_id: int) -> tuple[int, int, int]:
    return COLOURS[int(track_id) % len(COLOURS)]


def draw_people(frame: np.ndarray, xy: np.ndarray, track_ids, joint_names, thickness: int = 3) -> np.ndarray:
    """Draw stick figures into ``frame`` (in place) and return it.

    Args:
        frame: ``(H, W, 3)`` uint8 BGR.
        xy: ``(P, J, 2)`` pixels, NaN where a joint is missing.
        track_ids: ``(P,)`` IDs (colour and label).
        joint_names: ``(J,)`` names.
    """
    names = list(joint_names)
    edges = [(names.index(a), names.index(b)) for a, b in EDGES if a in names and b in names]
    H, W = frame.shape[:2]
    for p, tid in enumerate(track_ids):
        colour = person_colour(tid)
        pts = xy[p]
        with np.errstate(invalid="ignore"):
            ok = (np.abs(pts) < 4 * max(H, W)).all(-1)  # finite, and sane ints for cv2
        for a, b in edges:
            if ok[a] and ok[b]:
                cv2.line(frame, tuple(np.round(pts[a]).astype(int)), tuple(np.round(pts[b]).astype(int)), colour,
                         thickness, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(frame, tuple(np.round(pts[j]).astype(int)), thickness + 1, colour, -1, cv2.LINE_AA)
        if ok.any():
            top = pts[ok][np.argmin(pts[ok, 1])]
            cv2.putText(frame, f"person_{tid}", (int(top[0]) - 40, int(top[1]) - 20), cv2.FONT_HERSHEY_SIMPLEX,
                        0.9, colour, 2, cv2.LINE_AA)
    return frame


def write_overlays(tracks: Tracks, rig: Rig, videos: dict, out_dir: str | os.PathLike, detections=None,
                   progress: bool = False) -> list[Path]:
    """One overlay video per camera.

    Args:
        tracks: the 3D result (rows are the videos' frame indices ``tracks.frame_indices``).
        rig: the calibration; ``videos`` are matched to its cameras by name.
        videos: ``{camera: video path}`` (e.g. :func:`mocap.detect.session.session_videos`).
        out_dir: where ``<cam>.mp4`` go.
        detections: optional :class:`~mocap.io.keypoints.Keypoints2D` (cameras in ``rig`` order)
            whose keypoints are drawn as grey dots.
        progress: a progress bar per camera.

    Returns:
        The files written.
    """
    from mocap.detect.video import read_frames, video_info

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    row_of = {int(f): i for i, f in enumerate(tracks.frame_indices)}
    written = []
    for cam_name, video in videos.items():
        c = rig.index(cam_name)
        camera = rig.cameras[c]
        proj = project(camera, tracks.positions)  # (T, P, J, 2)
        with np.errstate(invalid="ignore"):
            behind = (np.einsum("ij,tpkj->tpki", camera.R, tracks.positions) + camera.t)[..., 2] <= 0
        proj[behind] = np.nan
        info = video_info(video)
        fps = info.fps or tracks.fps

        def write(tmp, video=video, proj=proj, c=c, info=info, fps=fps):
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, info.size)
            if not writer.isOpened():
                raise OSError(f"cannot write an MP4 video to {tmp} (OpenCV's mp4v encoder)")
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=info.frame_count or None, desc=f"{cam_name} overlay", unit="frame", leave=False)
            try:
                for index, frame in read_frames(video):
                    t = row_of.get(index)
                    if t is not None:
                        if detections is not None and t < detections.data.shape[0]:
                            for q in np.argwhere(np.isfinite(detections.data[t, c, ..., 0])):
                                x, y = detections.data[t, c, q[0], q[1], :2]
                                cv2.circle(frame, (int(round(x)), int(round(y))), 3, (160, 160, 160), -1)
                        draw_people(frame, proj[t], tracks.track_ids, tracks.joint_names)
                    cv2.putText(frame, f"{cam_name}  frame {index}", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                                (255, 255, 255), 2, cv2.LINE_AA)
                    writer.write(frame)
                    if bar is not None:
                        bar.update(1)
            finally:
                writer.release()
                if bar is not None:
                    bar.close()

        path = atomic_write(out / f"{Path(video).stem}.mp4", write, suffix=".mp4")
        log.debug("wrote %s", path)
        written.append(path)
    return written
