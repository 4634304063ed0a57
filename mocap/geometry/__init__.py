"""Geometry core: cameras, projection, the lens model (:mod:`.lens`, compiled twin :mod:`.lens_compiled`), rotations."""

from mocap.geometry.camera import (
    Camera,
    Rig,
    distort_normalized,
    epipolar_distance,
    fundamental_matrix,
    normalize_camera_name,
    pixel_to_normalized,
    pixel_to_ray,
    project,
    project_rig,
    skew,
    undistort_normalized,
    undistort_points,
    undistort_points_rig,
    world_to_cam,
)
from mocap.geometry.rotations import (
    euler_to_rotmat,
    quat_to_rotmat,
    quat_to_rotvec,
    rotation_between,
    rotmat_to_euler,
    rotmat_to_quat,
    rotmat_to_rotvec,
    rotvec_to_quat,
    rotvec_to_rotmat,
    unwrap_euler,
)

__all__ = [
    "Camera", "Rig", "distort_normalized", "epipolar_distance", "fundamental_matrix",
    "normalize_camera_name", "pixel_to_normalized", "pixel_to_ray", "project", "project_rig",
    "skew", "undistort_normalized", "undistort_points", "undistort_points_rig", "world_to_cam",
    "euler_to_rotmat", "quat_to_rotmat", "quat_to_rotvec", "rotation_between", "rotmat_to_euler",
    "rotmat_to_quat", "rotmat_to_rotvec", "rotvec_to_quat", "rotvec_to_rotmat", "unwrap_euler",
]
