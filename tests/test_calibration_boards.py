"""Board definitions, printable boards, corner detection and ordering."""

import numpy as np
import pytest

from mocap.calibration.boards import BOARD_DIR, Board, board_from_dict, load_board, render_board
from mocap.calibration.detect_corners import detect_board, detect_source, list_source
from mocap.calibration.render import render_board_view
from mocap.errors import CalibrationError
from mocap.geometry.camera import Camera, project

SHIPPED = ["checkerboard_9x6_25mm", "checkerboard_4x7_60mm", "charuco_4x5_54mm_inverted"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_boards_load_and_have_their_png(name):
    b = load_board(name)
    assert load_board(BOARD_DIR / f"{name}.yaml") == b
    assert (BOARD_DIR / f"{name}.png").is_file()
    assert b.object_points.shape == (b.n_corners, 3)


def test_object_points_spacing():
    b = load_board("checkerboard_9x6_25mm")
    p = b.object_points
    assert b.n_corners == 54
    np.testing.assert_allclose(p[1] - p[0], [0.025, 0, 0])
    np.testing.assert_allclose(p[9] - p[0], [0, 0.025, 0])
    c = load_board("charuco_4x5_54mm_inverted")
    assert c.corner_grid == (3, 4) and c.inverted
    np.testing.assert_allclose(c.object_points[0], [0.054, 0.054, 0])  # OpenCV's ChArUco corner 0


def test_symmetry_rule():
    assert not Board("checkerboard", 9, 6, 0.025).symmetric  # 10 x 7 squares
    assert Board("checkerboard", 8, 6, 0.025).symmetric  # 9 x 7 squares
    assert not Board("charuco", 4, 5, 0.05).symmetric


def test_board_errors():
    with pytest.raises(CalibrationError, match="unknown keys"):
        board_from_dict({"type": "checkerboard", "cols": 9, "rows": 6, "square_size": 0.02, "colour": "red"})
    with pytest.raises(CalibrationError, match="missing keys"):
        board_from_dict({"type": "checkerboard", "cols": 9})
    with pytest.raises(CalibrationError, match="square_size must be > 0"):
        board_from_dict({"type": "checkerboard", "cols": 9, "rows": 6, "square_size": -1})
    with pytest.raises(ValueError, match="ambiguous under 90"):
        Board("checkerboard", 7, 7, 0.03)
    with pytest.raises(CalibrationError, match="not found; give a YAML path or one of: .*checkerboard_9x6_25mm"):
        load_board("no_such_board")


def test_render_png_at_true_size(tmp_path):
    import cv2

    b = load_board("checkerboard_9x6_25mm")
    out = render_board(b, tmp_path / "b.png", dpi=254)  # 10 px per mm
    img = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    # (9+1) x (6+1) squares of 25 mm plus a half-square margin on each side
    assert img.shape == (round(7 * 250 + 250), round(10 * 250 + 250))
    found = detect_board(img, b)
    assert np.isfinite(found).all()
    np.testing.assert_allclose(np.linalg.norm(found[1] - found[0]), 250, atol=1.0)


def test_render_pdf(tmp_path):
    out = render_board(load_board("charuco_4x5_54mm_inverted"), tmp_path / "c.pdf", dpi=100)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF") and b"/Image" in data
    with pytest.raises(ValueError, match="board output extension"):
        render_board(load_board("checkerboard_9x6_25mm"), tmp_path / "c.svg")


def _view(board, rotate_deg=0.0):
    K = np.array([[900.0, 0, 640], [0, 900, 360], [0, 0, 1]])
    cam = Camera("c", (1280, 720), K, [-0.05, 0.01, 0, 0, 0])
    a = np.radians(rotate_deg)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = [0, 0, 1.2] - R @ board.object_points.mean(0)
    img = render_board_view(board, cam, T, np.random.default_rng(0))
    truth = project(cam, board.object_points @ R.T + T[:3, 3])
    return img, truth


@pytest.mark.parametrize("rotate", [0.0, 180.0, 150.0])
def test_checkerboard_corner_order_is_the_physical_order(rotate):
    b = Board("checkerboard", 9, 6, 0.05)
    img, truth = _view(b, rotate)
    xy = detect_board(img, b)
    assert np.linalg.norm(xy - truth, axis=-1).max() < 0.3  # corner i is physical corner i, even upside down


@pytest.mark.parametrize("rotate", [0.0, 180.0])
def test_inverted_charuco_ids(rotate):
    b = load_board("charuco_4x5_54mm_inverted")
    img, truth = _view(b, rotate)
    xy = detect_board(img, b)
    seen = np.isfinite(xy[:, 0])
    assert seen.sum() >= 10
    assert np.linalg.norm(xy[seen] - truth[seen], axis=-1).max() < 0.5


def test_caliscope_chessboard_negative_frame(shared):
    # cam_0_frame_000.jpg has no board; the other frames of cam_0 have it
    folder = shared / "calibration" / "caliscope_charuco_4cam" / "chessboard_intrinsic"
    det = detect_source("cam_0", str(folder / "cam_0_*.jpg"), Board("checkerboard", 9, 6, 0.03))
    assert det.frame_names[0] == "cam_0_frame_000.jpg"
    assert not det.valid[0] and det.valid[1:].all()


def test_source_errors(tmp_path):
    with pytest.raises(CalibrationError, match="not an image folder, an image glob or a video file"):
        list_source(tmp_path / "nothing*.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        list_source(tmp_path / "empty")
