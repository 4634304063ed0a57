"""Import MMPose / COCO-style keypoint predictions.

Accepted JSON files (one camera each):

- MMPose inferencer / demo output for a video: a list of frames
  ``[{"frame_id": 0, "instances": [{"keypoints": [[x, y], ...], "keypoint_scores": [...]}, ...]}, ...]``,
  or the same list under ``{"instance_info": [...]}`` (``topdown_demo_with_mmdet --save-predictions``).
- COCO keypoint results: ``[{"image_id": 7, "keypoints": [x0, y0, s0, x1, ...], "score": 0.9}, ...]``;
  frames are the distinct ``image_id`` values in increasing order.
- One image's predictions: a list of instances ``[{"keypoints": ..., "keypoint_scores": ...}]``;
  a folder of such files (natural order) is one camera, one file per frame.

:func:`load_mmpose` takes such a file (one camera), a folder of such files (one camera per
``*.json``), or a folder of per-camera folders of per-frame files. MMPose scores are kept as
confidences; a score of exactly 0 marks a missing joint (NaN), as in OpenPose.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from mocap.errors import KeypointFormatError
from mocap.io.openpose import camera_name_from_folder, frame_number, natural_key, select_cameras, stack_cameras
from mocap.io.keypoints import Keypoints2D
from mocap.skeleton.joints import format_joint_names

log = logging.getLogger(__name__)


def _instance(file: Path, frame: int, p: int, inst: dict, J: int, fmt: str) -> np.ndarray:
    """``(J, 3)`` x, y, score of one instance."""
    try:
        kps = np.asarray(inst["keypoints"], dtype=np.float64)
    except KeyError:
        raise KeypointFormatError(f'{file}: frame {frame}: person {p}: missing field "keypoints"') from None
    except (TypeError, ValueError):
        raise KeypointFormatError(f"{file}: frame {frame}: person {p}: non-numeric keypoints") from None
    flat = kps.ravel()
    if kps.ndim == 2 and kps.shape[1] in (2, 3):
        n, width = kps.shape[0], kps.shape[1]
    elif kps.ndim == 1 and flat.size % 3 == 0:
        n, width = flat.size // 3, 3
    else:
        n, width = -1, 0
    if n != J:
        raise KeypointFormatError(f"{file}: frame {frame}: person {p}: {kps.shape} keypoint values, expected {J} "
                                  f"joints for keypoint format {fmt!r}; pass --keypoint-format matching the model")
    xy_s = flat.reshape(J, width)
    out = np.empty((J, 3))
    out[:, :2] = xy_s[:, :2]
    if "keypoint_scores" in inst:
        scores = np.asarray(inst["keypoint_scores"], dtype=np.float64).ravel()
        if scores.size != J:
            raise KeypointFormatError(f"{file}: frame {frame}: person {p}: {scores.size} keypoint_scores, expected {J}")
        out[:, 2] = scores
    else:
        out[:, 2] = xy_s[:, 2] if width == 3 else 1.0
    return out


def _frames_of(doc, file: Path) -> list[tuple[int, list]]:
    """``[(frame number, [instance dicts])]`` of one file, in frame order."""
    if isinstance(doc, dict) and "instance_info" in doc:
        doc = doc["instance_info"]
    if not isinstance(doc, list):
        raise KeypointFormatError(f"{file}: expected a JSON list of frames, instances or COCO results")
    if not doc:
        return []
    first = doc[0] if isinstance(doc[0], dict) else {}
    if "instances" in first:
        return [(int(f.get("frame_id", i)), f.get("instances") or []) for i, f in enumerate(doc)]
    if "image_id" in first:
        ids = sorted({d["image_id"] for d in doc})
        by_id = {i: [] for i in ids}
        for d in doc:
            by_id[d["image_id"]].append(d)
        numeric = all(isinstance(i, int) for i in ids)
        return [(i if numeric else k, by_id[i]) for k, i in enumerate(ids)]
    if "keypoints" in first:
        return [(frame_number(file), doc)]
    raise KeypointFormatError(f"{file}: unrecognised JSON; expected MMPose 'instances' per frame, COCO results "
                              "with 'image_id', or a list of instances with 'keypoints'")


def _read(file: Path) -> object:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeypointFormatError(f"{file}: not valid JSON ({exc})") from None


def _people(file: Path, frame: int, instances: list, J: int, fmt: str) -> np.ndarray:
    if not instances:
        return np.empty((0, J, 3))
    return np.stack([_instance(file, frame, p, inst, J, fmt) for p, inst in enumerate(instances)])


def _camera_sources(path: Path) -> list[tuple[str, list[Path]]]:
    """``[(camera name, files)]``: files are one whole-video file, or one file per frame."""
    if path.is_file():
        return [(path.stem, [path])]
    if not path.is_dir():
        raise FileNotFoundError(f"keypoint file or folder not found: {path}")
    folders = sorted((d for d in path.iterdir() if d.is_dir() and any(d.glob("*.json"))),
                     key=lambda d: natural_key(d.name))
    if folders:
        return [(camera_name_from_folder(d), sorted(d.glob("*.json"), key=lambda f: natural_key(f.name)))
                for d in folders]
    files = sorted(path.glob("*.json"), key=lambda f: natural_key(f.name))
    if not files:
        raise KeypointFormatError(f"{path}: no .json files; expected MMPose/COCO prediction files")
    return [(f.stem, [f]) for f in files]


def load_mmpose(path: str | os.PathLike, keypoint_format: str = "coco_17", cameras=None,
                fps: float | None = None) -> Keypoints2D:
    """Read MMPose / COCO-style predictions of one or several cameras (see the module doc).

    Args:
        path: a prediction file (one camera), a folder of them (one camera per file), or a
            folder of per-camera folders of per-frame files.
        keypoint_format: the model's keypoint layout (``coco_17`` for MMPose's COCO models).
        cameras: camera names to keep, in this order (normalised matching as in OpenPose import).
        fps: frame rate to record, if known.

    Returns:
        :class:`Keypoints2D` ``data (T, C, P, J, 3)`` x px, y px, score; NaN where missing.
        Cameras are aligned by position in frame order; shorter ones are NaN-padded at the end.
    """
    joint_names = format_joint_names(keypoint_format)
    J = len(joint_names)
    path = Path(path)
    sources = _camera_sources(path)
    if cameras is not None:
        keep = select_cameras([Path(name) for name, _ in sources], cameras, path)
        lookup = dict(sources)
        sources = [(p.name, lookup[p.name]) for p in keep]
    per_camera, numbers = [], []
    for _, files in sources:
        frames = [fr for f in files for fr in ((n, f, inst) for n, inst in _frames_of(_read(f), f))]
        per_camera.append([_people(f, n, inst, J, keypoint_format) for n, f, inst in frames])
        numbers.append([n for n, _, _ in frames])
    names = [name for name, _ in sources]
    data = stack_cameras(per_camera, names, J)
    data[data[..., 2] <= 0] = np.nan
    longest = max(numbers, key=len)
    frame_indices = np.asarray(longest, dtype=np.int64) if len(set(longest)) == len(longest) else None
    log.info("read MMPose keypoints from %s: %d frames, %d cameras", path, data.shape[0], data.shape[1])
    return Keypoints2D(data, joint_names, tuple(names), fps=fps, frame_indices=frame_indices)
