"""Why is the board not found? Try the likely mistakes on a few frames and say which one it is.

Tried, in order: the printing's polarity (white-on-black vs black-on-white), a mirrored picture
(ChArUco only: a camera that flips its image turns every marker into one no dictionary holds),
other corner counts (squares counted instead of inner corners, one row or column off), and for
ChArUco other ArUco dictionaries. Each try runs on at most ``max_frames`` frames spread over the
source, so a hint costs a second or two, and only when the board was not found at all.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from mocap.calibration.boards import Board
from mocap.calibration.detect_corners import MIN_CORNERS, detect_board, iter_frames

log = logging.getLogger(__name__)

DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_1000", "DICT_5X5_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL")


def sample_frames(path, max_frames: int = 8, stride: int = 1) -> list[np.ndarray]:
    """At most ``max_frames`` gray frames spread evenly over a source (folder, glob or video)."""
    frames = [g for _, _, g in iter_frames(path, stride)]
    if len(frames) <= max_frames:
        return frames
    return [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]


def _found(frames: list[np.ndarray], board: Board, mirror: bool = False) -> int:
    n = 0
    for g in frames:
        img = g[:, ::-1] if mirror else g
        n += int(np.isfinite(detect_board(np.ascontiguousarray(img), board)[:, 0]).sum() >= MIN_CORNERS)
    return n


def _alternatives(board: Board) -> list[tuple[str, Board, bool]]:
    """``(what it would mean, board to try, mirrored)`` for each likely mistake."""
    out = [(f"printed {'black-on-white' if board.inverted else 'white-on-black (inverted)'}: set "
            f"`inverted: {str(not board.inverted).lower()}` in the board file", replace(board, inverted=not board.inverted),
            False)]
    if board.type == "charuco":
        out.append(("the camera mirrors its picture: turn mirroring off in the camera settings",
                    board, True))
        out.append(("the camera mirrors its picture and the board is printed the other way round",
                    replace(board, inverted=not board.inverted), True))
    sizes = {(board.cols - 1, board.rows - 1), (board.cols + 1, board.rows + 1), (board.cols - 1, board.rows),
             (board.cols, board.rows - 1), (board.cols + 1, board.rows), (board.cols, board.rows + 1)}
    low = 3 if board.type == "charuco" else 2
    for c, r in sorted(sizes):
        if c >= low and r >= low and (board.type == "charuco" or c != r):
            unit = "squares" if board.type == "charuco" else "inner corners"
            out.append((f"the board has {c} x {r} {unit}, not {board.cols} x {board.rows}: fix cols/rows in the board file",
                        replace(board, cols=c, rows=r), False))
    if board.type == "charuco":
        for d in DICTIONARIES:
            if d != board.dictionary:
                out.append((f"its markers are from {d}, not {board.dictionary}: fix `dictionary` in the board file",
                            replace(board, dictionary=d), False))
    return out


def board_not_found_hint(path, board: Board, max_frames: int = 8) -> str:
    """One sentence: which likely mistake makes the board findable in ``path``, or what else to check."""
    frames = sample_frames(path, max_frames)
    for what, alt, mirror in _alternatives(board):
        try:
            k = _found(frames, alt, mirror)
        except Exception as exc:  # an alternative OpenCV rejects (e.g. a dictionary too small): not the cause
            log.debug("hint %s: %s", what, exc)
            continue
        if k:
            return f"found in {k} of {len(frames)} sampled frames when {what}"
    return ("not found with the other polarity, mirrored, other corner counts" +
            (" or other dictionaries" if board.type == "charuco" else "") +
            "; check that the board is in view, sharp and evenly lit")
