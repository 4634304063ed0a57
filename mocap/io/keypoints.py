"""2D keypoints of every camera: the array every detector and importer produces.

``data`` is ``(T, C, P, J, 3)``: pixel x, pixel y (distorted image coordinates, OpenCV
convention), confidence in [0, 1]; NaN (all three) where a person/joint is missing. ``P`` is the
maximum number of detections in any camera and frame; detections are *not* associated across
views (person index p in camera a need not be person p in camera b) until matching has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mocap._checks import check_shape

#: Frame rate assumed where neither the input nor the user gives one (OpenPose JSON carries none;
#: ``fps`` in the config tree overrides it).
DEFAULT_FPS = 30.0


@dataclass(frozen=True, eq=False)
class Keypoints2D:
    """Per-camera 2D detections.

    Attributes:
        data: ``(T, C, P, J, 3)`` x px, y px, confidence; NaN for missing.
        joint_names: ``(J,)`` canonical joint names.
        camera_names: ``(C,)`` names as found in the source (match with ``Rig.index``).
        fps: frames per second if known, else None.
        frame_indices: ``(T,)`` source frame numbers.
        extras: optional per-detection arrays keyed by name (e.g. ``appearance`` ``(T, C, P, D)``).
    """

    data: np.ndarray
    joint_names: tuple[str, ...]
    camera_names: tuple[str, ...]
    fps: float | None = None
    frame_indices: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        data = check_shape(np.asarray(self.data, dtype=np.float64), "T C P J 3", "keypoints")
        T, C, _, J, _ = data.shape
        if len(self.joint_names) != J:
            raise ValueError(f"joint_names: expected {J} names, got {len(self.joint_names)}")
        if len(self.camera_names) != C:
            raise ValueError(f"camera_names: expected {C} names, got {len(self.camera_names)}")
        frames = np.arange(T) if self.frame_indices is None else np.asarray(self.frame_indices, dtype=np.int64)
        if frames.shape != (T,):
            raise ValueError(f"frame_indices: expected {T} entries, got {frames.shape}")
        # One NaN coordinate makes the whole keypoint missing.
        bad = ~np.isfinite(data).all(axis=-1)
        if bad.any():
            data = data.copy()
            data[bad] = np.nan
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        object.__setattr__(self, "camera_names", tuple(self.camera_names))
        object.__setattr__(self, "frame_indices", frames)

    @property
    def xy(self) -> np.ndarray:
        """``(T, C, P, J, 2)`` pixels."""
        return self.data[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        """``(T, C, P, J)`` confidence, NaN where missing."""
        return self.data[..., 2]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape
