"""Calibration: file formats, boards, rig calibration."""
