"""2D detection: people × joints × (x, y, confidence) per camera and frame.

Default detector: multi-person top-down BlazePose on the CPU (:mod:`.blazepose`, models from
:mod:`.models`); alternative: a user-supplied ONNX top-down model (:mod:`.onnx_backend`).
Per-camera output files are described in :mod:`.pipeline`.
"""

from mocap.detect.pipeline import (
    CameraDetections,
    DetectConfig,
    detect_video,
    load_camera_detections,
    make_detector,
    save_camera_detections,
    to_keypoints2d,
)
from mocap.detect.session import check_session, detect_session, session_videos

__all__ = [
    "CameraDetections", "DetectConfig", "check_session", "detect_session", "detect_video", "load_camera_detections", "make_detector",
    "save_camera_detections", "session_videos", "to_keypoints2d",
]
