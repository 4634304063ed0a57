"""mocap: open multi-camera markerless motion capture.

Conventions (see README "Conventions"): metres, seconds, radians; world right-handed Z up;
OpenCV cameras with ``x_cam = R @ X_world + t``; arrays ordered ``(T, C, P, J, coord)`` with
NaN for missing data.
"""

__version__ = "0.1.0"
