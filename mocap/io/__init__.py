"""Importers of keypoints and motion files (OpenPose JSON, Pose2Sim layout, TRC, BVH)."""
