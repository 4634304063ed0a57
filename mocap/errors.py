"""Exceptions for configuration and input errors the user must fix.

Messages are one line and say which file, camera or frame, and what to do.
"""


class MocapError(Exception):
    """Base class: bad input or configuration, reported as one line by the CLI."""


class CalibrationError(MocapError):
    """A calibration file is missing, malformed or inconsistent."""


class KeypointFormatError(MocapError):
    """A keypoint file does not match the declared format."""


class VideoError(MocapError):
    """A video cannot be opened or decoded."""


class ModelError(MocapError):
    """A model file is missing or fails its checksum."""
