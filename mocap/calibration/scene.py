"""Extrinsics from known scene points: 3D positions in metres and their pixel positions per camera.

Each camera is placed on its own by PnP with its lens held (SQPnP, Terzakis & Lourakis 2020, then
Levenberg-Marquardt on the reprojection error); the world is the points' own frame, so a floor
marked with a tape measure gives the world Z up and its origin directly (Pose2Sim's ``scene``
method). A scene file::

    points:                       # metres, world frame (Z up)
      p1: [-2.0, 0.3, 0.0]
      p2: [-2.0, 0.0, 0.0]
    cameras:                      # pixel positions per camera (x right, y down); missing points left out
      cam01: {p1: [412.5, 1630.0], p2: [501.0, 1601.5]}

``points`` may also be a list (named ``p1``, ``p2``, … in order), e.g. Pose2Sim's
``object_coords_3d`` from its ``Config.toml`` (:func:`pose2sim_scene_points`).

A camera whose points fit is still reported as failed when they do not hold it: points on one
line are refused, and 1 px of click error propagated through the pose (:func:`centre_sigma`)
must move the camera by at most :data:`MAX_CENTRE_SIGMA_M`. On Pose2Sim's demo only the four
points on the treadmill's centre line are visible marks (2 m x 5 cm, one plane): each camera fits
them at 0.5-1.5 px yet 1 px moves it 11-23 cm, and the poses land 0.5-6 m from Qualisys's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from mocap.errors import CalibrationError
from mocap.geometry.camera import Camera, Rig, normalize_camera_name

log = logging.getLogger(__name__)

MIN_POINTS = 4  # PnP's minimum; 6 or more, not all on one plane, are better
MAX_RMS_PX = 5.0  # clicked points land within 1-3 px; worse means a point clicked on the wrong mark
CLICK_SIGMA_PX = 1.0  # how far a careful click lands from the mark, for the position uncertainty
MAX_CENTRE_SIGMA_M = 0.05  # a camera whose points leave its position looser than this is not "solved"


def pose2sim_scene_points(config_toml: str | Path) -> np.ndarray:
    """``object_coords_3d`` ``(N, 3)`` metres from a Pose2Sim ``Config.toml``."""
    import tomllib

    doc = tomllib.loads(Path(config_toml).read_text())
    try:
        pts = doc["calibration"]["calculate"]["extrinsics"]["scene"]["object_coords_3d"]
    except KeyError:
        raise CalibrationError(f"{config_toml}: no [calibration.calculate.extrinsics.scene] object_coords_3d") from None
    return np.asarray(pts, np.float64)


def load_scene(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Read a scene file: ``({point: (3,) metres}, {camera: {point: (2,) px}})``."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text()) if path.is_file() else None
    if not isinstance(doc, dict) or "points" not in doc:
        raise CalibrationError(f"{path}: expected a YAML scene file with 'points' (metres) and 'cameras' (pixels)")
    pts = doc["points"]
    if isinstance(pts, str):  # a Pose2Sim Config.toml beside it
        pts = pose2sim_scene_points(path.parent / pts).tolist()
    if isinstance(pts, list):
        pts = {f"p{i + 1}": p for i, p in enumerate(pts)}
    points = {str(k): np.asarray(v, np.float64) for k, v in pts.items()}
    bad = [k for k, v in points.items() if v.shape != (3,)]
    if bad:
        raise CalibrationError(f"{path}: point {bad[0]}: expected [x, y, z] in metres")
    pixels = {}
    for cam, entry in (doc.get("cameras") or {}).items():
        unknown = [k for k in entry if str(k) not in points]
        if unknown:
            raise CalibrationError(f"{path}: camera {cam}: point {unknown[0]} is not under 'points'")
        pixels[str(cam)] = {str(k): np.asarray(v, np.float64) for k, v in entry.items()}
    return points, pixels


def place_camera(lens: Camera, points: dict[str, np.ndarray], pixels: dict[str, np.ndarray]) -> Camera:
    """cam_from_world of one camera from its clicked points (lens held); ``rms_px`` set."""
    import cv2

    names = [n for n in pixels if n in points]
    if len(names) < MIN_POINTS:
        raise CalibrationError(f"camera {lens.name}: {len(names)} scene point(s) given, need at least {MIN_POINTS}; "
                               "click more points (`mocap calibrate click`)")
    obj = np.stack([points[n] for n in names])
    spread = np.linalg.svd(obj - obj.mean(0), compute_uv=False)
    if spread[1] < 1e-3 * spread[0]:
        raise CalibrationError(f"camera {lens.name}: its {len(names)} scene points ({', '.join(names)}) lie on one "
                               "line, which leaves the camera free to turn about it; click points off that line")
    img = np.stack([pixels[n] for n in names])
    ok, rv, tv = cv2.solvePnP(obj, img, lens.K, lens.dist, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise CalibrationError(f"camera {lens.name}: no pose fits its {len(names)} scene points; check their order")
    rv, tv = cv2.solvePnPRefineLM(obj, img, lens.K, lens.dist, rv, tv)
    proj = cv2.projectPoints(obj, rv, tv, lens.K, lens.dist)[0].reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum((proj - img) ** 2, -1))))
    return Camera(lens.name, lens.size, lens.K, lens.dist, cv2.Rodrigues(rv)[0], tv.ravel(), rms)


def centre_sigma(cam: Camera, obj: np.ndarray, sigma_px: float = CLICK_SIGMA_PX) -> float:
    """How far (metres, largest standard deviation) ``sigma_px`` of click error moves ``cam``'s centre.

    First-order propagation through the pose's Gauss-Newton covariance
    ``sigma_px^2 (J^T J)^-1`` (J: the projections' derivative by the 6 pose parameters, taken
    numerically), then through ``C = -R^T t``. Points nearly on a line or a small patch far away
    give a large value: the pose fits the clicks but is not held by them.
    """
    import cv2

    rv0, t0 = cv2.Rodrigues(cam.R)[0].ravel(), np.asarray(cam.t, np.float64)
    x0 = np.concatenate([rv0, t0])

    def proj(x):
        return cv2.projectPoints(obj, x[:3], x[3:], cam.K, cam.dist)[0].ravel()

    def centre(x):
        return -cv2.Rodrigues(x[:3])[0].T @ x[3:]

    steps = np.eye(6) * 1e-6
    jac = np.stack([(proj(x0 + d) - proj(x0 - d)) / 2e-6 for d in steps], 1)
    jc = np.stack([(centre(x0 + d) - centre(x0 - d)) / 2e-6 for d in steps], 1)
    cov = sigma_px ** 2 * np.linalg.pinv(jac.T @ jac)
    return float(np.sqrt(max(np.linalg.eigvalsh(jc @ cov @ jc.T).max(), 0.0)))


def calibrate_from_scene(lenses: dict[str, Camera], scene: str | Path
                         ) -> tuple[Rig, dict[str, str], dict[str, float]]:
    """Every camera of ``scene``'s ``cameras`` placed by :func:`place_camera`.

    Returns the rig (world = the points' frame), ``{camera: reason}`` for cameras whose points
    reproject worse than :data:`MAX_RMS_PX` or hold its position looser than
    :data:`MAX_CENTRE_SIGMA_M` at :data:`CLICK_SIGMA_PX` of click error, and ``{camera: that
    position uncertainty in metres}``.
    """
    points, pixels = load_scene(scene)
    by_key = {normalize_camera_name(n): c for n, c in lenses.items()}
    cams, failed, sigma = [], {}, {}
    for name, px in pixels.items():
        lens = by_key.get(normalize_camera_name(name))
        if lens is None:
            raise CalibrationError(f"camera {name}: no intrinsics for it; run `mocap calibrate intrinsics` for it first")
        cam = place_camera(Camera(name, lens.size, lens.K, lens.dist, np.eye(3), np.zeros(3)), points, px)
        sigma[name] = centre_sigma(cam, np.stack([points[n] for n in px]))
        if not cam.rms_px <= MAX_RMS_PX:
            failed[name] = (f"camera {name}: its scene points reproject at {cam.rms_px:.1f} px RMS (over "
                            f"{MAX_RMS_PX:g} px): a point clicked on the wrong mark or in the wrong order")
        elif not sigma[name] <= MAX_CENTRE_SIGMA_M:
            failed[name] = (f"camera {name}: its {len(px)} scene points fit, but {CLICK_SIGMA_PX:g} px of click "
                            f"error moves it by {sigma[name] * 100:.0f} cm (over {MAX_CENTRE_SIGMA_M * 100:g} cm): "
                            "they span too little of the view or lie near one line or plane; add points "
                            "spread across the volume and off that plane")
        cams.append(cam)
    if not cams:
        raise CalibrationError(f"{scene}: no camera has pixel positions under 'cameras'")
    return Rig(tuple(cams), {"world": f"scene points of {Path(scene).name}"}), failed, sigma


def click_points(image_path: str | Path, point_names: list[str]) -> dict[str, list[float]]:
    """Let a person click ``point_names`` in order on an image (needs a display); ``{name: [x, y]}``.

    Left click places the current point, right click skips it, Esc stops.
    """
    import os

    import cv2

    if not os.environ.get("DISPLAY") and os.name != "nt":
        raise CalibrationError("no display to click on: write the pixel positions into the scene file under "
                               "'cameras: {NAME: {point: [x, y]}}' instead")
    img = cv2.imread(str(image_path))
    if img is None:
        raise CalibrationError(f"{image_path}: cannot read this image")
    out: dict[str, list[float]] = {}
    state = {"i": 0}

    def on_mouse(event, x, y, *_):
        if state["i"] >= len(point_names):
            return
        if event == cv2.EVENT_LBUTTONDOWN:
            out[point_names[state["i"]]] = [float(x), float(y)]
            cv2.circle(img, (x, y), 6, (0, 0, 255), 2)
            state["i"] += 1
        elif event == cv2.EVENT_RBUTTONDOWN:
            state["i"] += 1

    cv2.namedWindow("mocap click", cv2.WINDOW_NORMAL)
    cv2.setMouseCallback("mocap click", on_mouse)
    while state["i"] < len(point_names):
        shown = img.copy()
        cv2.putText(shown, f"click {point_names[state['i']]} (right: skip, Esc: stop)", (20, 40),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 255, 255), 2)
        cv2.imshow("mocap click", shown)
        if cv2.waitKey(30) == 27:
            break
    cv2.destroyAllWindows()
    return out
