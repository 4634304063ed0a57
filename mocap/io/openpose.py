"""Import OpenPose JSON keypoints (one folder per camera) and align cameras with a calibration.

Layout read by :func:`load_openpose` (DESIGN.md)::

    DIR/<cam>/*.json   or   DIR/<cam>_json/*.json        one file per frame
    SESSION/pose/camNN_json/*.json                        a Pose2Sim session folder

Each file is ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}``. Files
are taken in natural order of their names (``f2`` before ``f10``), the frame number being the
last integer in the name. OpenPose writes ``(0, 0, 0)`` for an undetected joint: confidence 0
means missing and becomes NaN.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from mocap.errors import CalibrationError, KeypointFormatError
from mocap.geometry import Rig, normalize_camera_name
from mocap.io.keypoints import Keypoints2D
from mocap.skeleton.joints import KEYPOINT_FORMATS, format_joint_names

log = logging.getLogger(__name__)


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``f2`` < ``f10``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def frame_number(path: Path) -> int:
    """The last integer in a file's stem (``cam01.0012.json`` -> 12, ``x_000000000034_keypoints`` -> 34), -1 if none."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


def camera_name_from_folder(folder: Path) -> str:
    """``cam01_json`` -> ``cam01``; other names unchanged."""
    return re.sub(r"[_-]json$", "", folder.name, flags=re.I) or folder.name


def find_camera_folders(path: str | os.PathLike, suffix: str = ".json") -> list[Path]:
    """Camera folders under ``path``: its sub-folders holding ``*suffix`` files, in natural order.

    A Pose2Sim session (``SESSION/pose/camNN_json``) is accepted too.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"keypoint folder not found: {path}")

    def folders(root: Path) -> list[Path]:
        return sorted((d for d in root.iterdir() if d.is_dir() and any(d.glob(f"*{suffix}"))),
                      key=lambda d: natural_key(d.name))

    found = folders(path)
    if not found and (path / "pose").is_dir():
        found = folders(path / "pose")
    if not found:
        raise KeypointFormatError(f"{path}: no camera folders with {suffix} files; expected DIR/<cam>/*{suffix} "
                                  f"or DIR/<cam>_json/*{suffix} (or a Pose2Sim session with pose/camNN_json/)")
    return found


def select_cameras(folders: list[Path], cameras, path) -> list[Path]:
    """Keep the folders whose camera name matches ``cameras`` (normalised names), in that order."""
    if cameras is None:
        return folders
    by_key = {normalize_camera_name(camera_name_from_folder(f)): f for f in folders}
    out = []
    for cam in cameras:
        key = normalize_camera_name(cam)
        if key not in by_key:
            have = ", ".join(camera_name_from_folder(f) for f in folders)
            raise KeypointFormatError(f"{path}: no keypoint folder for camera {cam!r}; found {have}")
        out.append(by_key[key])
    return out


def _format_hint(n_values: int) -> str:
    fits = [f for f, names in KEYPOINT_FORMATS.items() if 3 * len(names) == n_values]
    return f" ({' or '.join(fits)} has {n_values // 3} joints)" if fits else ""


def _read_frame(file: Path, n_joints: int, keypoint_format: str) -> np.ndarray:
    """``(P, J, 3)`` people of one OpenPose JSON file."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeypointFormatError(f"{file}: not valid JSON ({exc}); expected OpenPose output "
                                  '{"people": [{"pose_keypoints_2d": [...]}]}') from None
    people = doc.get("people") if isinstance(doc, dict) else None
    if people is None:
        raise KeypointFormatError(f'{file}: missing field "people"; expected OpenPose output '
                                  '{"people": [{"pose_keypoints_2d": [...]}]}')
    rows = []
    for p, person in enumerate(people):
        if not isinstance(person, dict):
            raise KeypointFormatError(f"{file}: person {p}: expected an object with pose_keypoints_2d, "
                                      f"got {person!r:.40}")
        values = person.get("pose_keypoints_2d") or []
        if len(values) == 0:
            # Pose2Sim writes {} for a person it could not associate; OpenPose writes [] for a
            # person found only by the face/hand detectors: no body keypoints either way.
            continue
        if len(values) != 3 * n_joints:
            raise KeypointFormatError(
                f"{file}: person {p}: {len(values)} values in pose_keypoints_2d, expected {3 * n_joints} "
                f"({n_joints} joints x 3) for keypoint format {keypoint_format!r}; pass --keypoint-format "
                f"matching the detector{_format_hint(len(values))}")
        rows.append(values)
    if not rows:
        return np.empty((0, n_joints, 3))
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), n_joints, 3)
    except (TypeError, ValueError):
        raise KeypointFormatError(f"{file}: non-numeric value in pose_keypoints_2d") from None


def stack_cameras(per_camera: list[list[np.ndarray]], names: list[str], n_joints: int) -> np.ndarray:
    """Stack per-camera lists of per-frame ``(P_f, J, 3)`` arrays into ``(T, C, P, J, 3)``, NaN-padded.

    Cameras with fewer frames than the longest are padded at the end (with a warning naming them).
    """
    T = max((len(frames) for frames in per_camera), default=0)
    P = max((f.shape[0] for frames in per_camera for f in frames), default=0)
    data = np.full((T, len(per_camera), P, n_joints, 3), np.nan)
    for c, frames in enumerate(per_camera):
        if len(frames) < T:
            log.warning("camera %s has %d frames, others up to %d: the last %d frames are missing (NaN)",
                        names[c], len(frames), T, T - len(frames))
        for t, people in enumerate(frames):
            data[t, c, : people.shape[0]] = people
    return data


def load_openpose(path: str | os.PathLike, keypoint_format: str = "body_25", cameras=None,
                  fps: float | None = None) -> Keypoints2D:
    """Read OpenPose JSON of every camera.

    Args:
        path: folder with one sub-folder of JSON per camera, or a Pose2Sim session folder.
        keypoint_format: ``body_25``, ``body_25b``, ``coco_17`` or ``blazepose_33``.
        cameras: camera names to read, in this order (matched ignoring case, ``_``/``-``,
            leading zeros and a ``_json`` suffix); default: every folder, in natural order.
        fps: frame rate to record, if known.

    Returns:
        :class:`Keypoints2D` with ``data (T, C, P, J, 3)`` (x px, y px, confidence; NaN where
        missing or confidence 0), ``camera_names`` from the folder names without ``_json``,
        ``frame_indices`` the frame numbers of the longest camera's files. ``P`` is the most
        people in any file.

    Raises:
        KeypointFormatError: a file with the wrong number of values (names the file, person,
            count found and expected), bad JSON, or no camera folders.
    """
    joint_names = format_joint_names(keypoint_format)
    J = len(joint_names)
    folders = select_cameras(find_camera_folders(path), cameras, path)
    per_camera, frame_numbers = [], []
    for folder in folders:
        files = sorted(folder.glob("*.json"), key=lambda f: natural_key(f.name))
        per_camera.append([_read_frame(f, J, keypoint_format) for f in files])
        frame_numbers.append([frame_number(f) for f in files])
    names = [camera_name_from_folder(f) for f in folders]
    data = stack_cameras(per_camera, names, J)
    data[data[..., 2] <= 0] = np.nan  # OpenPose: confidence 0 = not detected
    longest = max(frame_numbers, key=len)
    frames = np.asarray(longest, dtype=np.int64)
    if len(frames) != len(set(longest)) or (frames < 0).any():
        frames = np.arange(data.shape[0])
    log.info("read OpenPose keypoints from %s: %d frames, %d cameras, up to %d people",
             path, data.shape[0], data.shape[1], data.shape[2])
    return Keypoints2D(data, joint_names, tuple(names), fps=fps, frame_indices=frames)


def rig_order(names, rig: Rig, what: str = "camera") -> np.ndarray:
    """Which of ``names`` each calibration camera is: ``(C_rig,)`` index into ``names``, -1 where
    none. Names match with :meth:`Rig.index` (``cam01_json`` ↔ ``cam_01`` ↔ ``cam1``); a name the
    rig lacks, or two names for one camera, is a :class:`CalibrationError` listing the rig's cameras
    (``what`` names the kind of camera in the message)."""
    src_of_rig = np.full(len(rig), -1, dtype=np.int64)
    for c, name in enumerate(names):
        try:
            r = rig.index(name)
        except ValueError:
            raise CalibrationError(f"{what} {name!r} matches no calibration camera; the calibration has "
                                   f"{', '.join(rig.names)} (names match ignoring case, '_', '-', leading zeros)"
                                   ) from None
        if src_of_rig[r] >= 0:
            raise CalibrationError(f"{what}s {names[src_of_rig[r]]!r} and {name!r} both match "
                                   f"calibration camera {rig.names[r]!r}")
        src_of_rig[r] = c
    return src_of_rig


def align_to_rig(kp: Keypoints2D, rig: Rig) -> Keypoints2D:
    """Reorder the cameras of ``kp`` to the rig's order, matching names with :meth:`Rig.index`.

    ``cam01_json`` ↔ ``cam_01`` ↔ ``cam1`` match. A rig camera without keypoints gets all-NaN
    data (and a warning); a keypoint camera the rig lacks is an error listing the rig's cameras.

    Returns:
        :class:`Keypoints2D` with ``data (T, C_rig, P, J, 3)`` and ``camera_names`` = ``rig.names``.
        ``extras`` arrays whose axis 1 is the camera axis are reordered the same way.
    """
    src_of_rig = rig_order(kp.camera_names, rig, "keypoint camera")
    missing = [rig.names[r] for r in np.flatnonzero(src_of_rig < 0)]
    if missing:
        log.warning("no keypoints for calibration camera(s) %s: they are treated as seeing nothing", ", ".join(missing))

    def take(arr: np.ndarray) -> np.ndarray:
        out = np.full((arr.shape[0], len(rig)) + arr.shape[2:], np.nan if arr.dtype.kind == "f" else 0, dtype=arr.dtype)
        have = src_of_rig >= 0
        out[:, have] = arr[:, src_of_rig[have]]
        return out

    C = len(kp.camera_names)
    extras = {k: take(v) if isinstance(v, np.ndarray) and v.ndim >= 2 and v.shape[1] == C else v
              for k, v in kp.extras.items()}
    return Keypoints2D(take(kp.data), kp.joint_names, tuple(rig.names), fps=kp.fps,
                       frame_indices=kp.frame_indices, extras=extras)
