"""report.html (mocap.report.html): one self-contained page that opens in headless Chromium
without errors, every figure rendered where the page puts it.

The check is pixel-level: each inline PNG is found again in Chromium's screenshot of the page
(normalised cross-correlation, scaled to the 900 CSS px the page shows it at), and the place it
is found holds a picture, not a blank box. The negative control breaks one figure's data and
that figure is then not found while the others still are.
"""

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import yaml

from conftest import missing_dependency
from mocap.calibration.io import save_calibration
from mocap.cli import main
from mocap.detect.pipeline import CameraDetections, save_camera_detections
from mocap.io.tracks import save_tracks
from mocap.pipeline import reconstruct
from mocap.report import run_report, write_html_report
from mocap.synthetic import SyntheticConfig, make_scene

FIGURE = re.compile(r'<figure id="plot-([a-z]+)"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
#: CSS width of a figure (report.html's STYLE).
SHOWN_PX = 900
#: Window of the screenshot: taller than the page, so every figure is in it.
WINDOW = (1000, 5200)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    missing_dependency("chromium", "Debian package `chromium`; `make sysdeps` installs it")


def screenshot(page, out_png, tmp_path) -> str:
    """Chromium's screenshot of ``page`` into ``out_png``; returns what it logged (console lines)."""
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--force-device-scale-factor=1",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={out_png}", "--enable-logging=stderr", "--v=0",
         page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert out_png.is_file(), done.stderr[-2000:]
    return done.stderr


def find(shot_gray: np.ndarray, png: bytes) -> tuple[float, np.ndarray]:
    """Best normalised correlation of the figure (as shown) in the screenshot, and the region."""
    fig = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    h = round(fig.shape[0] * SHOWN_PX / fig.shape[1])
    shown = cv2.resize(fig, (SHOWN_PX, h), interpolation=cv2.INTER_AREA)
    # half size on both sides: the same answer, four times fewer products
    small = cv2.resize(shot_gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    tmpl = cv2.resize(shown, (SHOWN_PX // 2, h // 2), interpolation=cv2.INTER_AREA)
    score = cv2.matchTemplate(small, tmpl, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(score)
    return best, shot_gray[2 * y:2 * y + h, 2 * x:2 * x + SHOWN_PX]


@pytest.fixture(scope="module")
def scene_and_tracks():
    scene = make_scene(SyntheticConfig(num_frames=60, num_people=2, num_cameras=4, seed=2,
                                       keypoint_format="blazepose_33"))
    return scene, reconstruct(scene.keypoints, scene.rig)


def test_report_html_opens_in_chromium_with_every_plot_rendered(tmp_path, scene_and_tracks):
    scene, tracks = scene_and_tracks
    report = run_report(scene.keypoints, scene.rig, tracks, {"detect": 3.2, "reconstruct": 0.6, "export": 0.2})
    page = write_html_report(report, tmp_path, scene.keypoints, scene.rig, tracks)
    text = page.read_text()
    # self-contained: nothing but inline data is loaded, no script runs
    assert not re.search(r'(src|href)="(?!data:)', text) and "<script" not in text
    figures = {key: base64.b64decode(data) for key, data in FIGURE.findall(text)}
    assert set(figures) == {"rig", "reprojection", "detection", "people", "bones", "timings"}
    log = screenshot(page, tmp_path / "shot.png", tmp_path)
    console = [ln for ln in log.splitlines() if ":CONSOLE" in ln or "Failed to load" in ln]
    assert console == [], console
    shot = cv2.imread(str(tmp_path / "shot.png"), cv2.IMREAD_GRAYSCALE)
    for key, png in figures.items():
        score, region = find(shot, png)
        # measured 0.96-1.00 (Chromium's and OpenCV's resampling differ)
        assert score > 0.9, (key, score)
        assert region.std() > 20 and (region < 200).mean() > 0.01, (key, region.std())  # a picture, not a box

    # negative control: one figure's data cut short -> a broken image, not found; the rest still are
    broken = text.replace(base64.b64encode(figures["bones"]).decode()[:4000], "AAAA", 1)
    (tmp_path / "broken.html").write_text(broken)
    screenshot(tmp_path / "broken.html", tmp_path / "broken.png", tmp_path)
    shot = cv2.imread(str(tmp_path / "broken.png"), cv2.IMREAD_GRAYSCALE)
    assert find(shot, figures["bones"])[0] < 0.5
    assert find(shot, figures["people"])[0] > 0.9


def write_process_folder(scene, tracks, out, blind_after=None):
    """What `mocap process` leaves that `mocap view --report` reads: calibration, tracks,
    keypoints2d/<cam>.npz, config.yaml (inputs, time per stage). ``blind_after {camera index:
    frame}``: that camera detects nobody from that frame on."""
    calib = save_calibration(scene.rig, out / "calibration.yaml")
    save_tracks(tracks, out / "tracks.npz")
    data = scene.keypoints.data  # (T, C, P, J, 3)
    for c, name in enumerate(scene.rig.names):
        kp = data[:, c].copy()
        kp[(blind_after or {}).get(c, len(kp)):] = np.nan
        scores = np.where(np.isfinite(kp[..., 0]).any(-1), 1.0, np.nan)  # (T, P): a person in the slot
        T, P = scores.shape
        save_camera_detections(CameraDetections(
            camera=name, keypoints=kp, scores=scores, appearance=np.full((T, P, 1), np.nan), rois=np.full((T, P, 4), np.nan),
            frame_indices=np.arange(T), joint_names=scene.keypoints.joint_names, fps=scene.fps,
            image_size=scene.rig[c].size, detector="synthetic"), out / "keypoints2d" / f"{name}.npz")
    (out / "config.yaml").write_text(yaml.safe_dump({"inputs": {"calibration": str(calib)},
                                                     "timings_s": {"detect": 4.0, "reconstruct": 1.0}}))


def test_view_report_writes_report_html_from_a_process_folder(tmp_path, scene_and_tracks, capsys):
    """`mocap view DIR --report`: the page from what `mocap process` left: its failed check listed
    first (camera 3 lost after 6 of 60 frames), the camera and people tables, its time per stage."""
    scene, tracks = scene_and_tracks
    write_process_folder(scene, tracks, tmp_path, blind_after={3: 6})
    assert main(["-q", "view", str(tmp_path), "--report"]) == 0
    assert f"wrote {tmp_path / 'report.html'}" in capsys.readouterr().out
    text = (tmp_path / "report.html").read_text()
    cam = scene.rig.names[3]
    assert text.index(f"camera {cam}: somebody detected in only 10% of frames") < text.index('id="plot-rig"')
    assert "Nothing to look at" not in text
    # "timings": from config.yaml's timings_s (the page has no time plot without them)
    assert {key for key, _ in FIGURE.findall(text)} == {"rig", "reprojection", "detection", "people", "bones", "timings"}
    for name in scene.rig.names:
        assert f"<td>{name}</td>" in text
    assert "<td>person_0</td>" in text and "<td>person_1</td>" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text((tmp_path / "config.yaml").read_text())
    save_tracks(tracks, empty / "tracks.npz")
    assert main(["-q", "view", str(empty), "--report"]) == 2
    assert "no keypoints2d/*.npz" in capsys.readouterr().err
