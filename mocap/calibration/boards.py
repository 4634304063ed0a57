"""Calibration boards: definitions read from YAML, their 3D corner layout, printable images.

A board YAML (``calibration/*.yaml``)::

    type: checkerboard        # or charuco
    cols: 9                   # checkerboard: inner corners across; charuco: squares across
    rows: 6                   # checkerboard: inner corners down;   charuco: squares down
    square_size: 0.025        # metres
    # charuco only:
    dictionary: DICT_4X4_1000
    marker_ratio: 0.75        # marker side / square side
    inverted: true            # printed white-on-black (detect on 255 - gray)

Board frame (``board``): origin at the first inner corner (checkerboard) or at the outer corner
of the first square (charuco, OpenCV's convention), x along a row, y down the columns, z = x × y
pointing into the board, away from a camera that sees its printed face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mocap._checks import check_choice
from mocap.errors import CalibrationError
from mocap.paths import REPO_ROOT

BOARD_DIR = REPO_ROOT / "calibration"
BOARD_TYPES = ("checkerboard", "charuco")
_KEYS = {"type", "cols", "rows", "square_size", "dictionary", "marker_ratio", "inverted", "name"}


@dataclass(frozen=True)
class Board:
    """A planar calibration target.

    Attributes:
        type: ``"checkerboard"`` or ``"charuco"``.
        cols: checkerboard: inner corners per row; charuco: squares per row.
        rows: checkerboard: inner corners per column; charuco: squares per column.
        square_size: side of one square in metres (sets the metric scale of the calibration).
        dictionary: ArUco dictionary name for charuco (``cv2.aruco.DICT_*``).
        marker_ratio: marker side / square side for charuco.
        inverted: the board is printed white-on-black; detection runs on ``255 - gray``.
        name: a label for messages and reports.
    """

    type: str
    cols: int
    rows: int
    square_size: float
    dictionary: str = "DICT_4X4_1000"
    marker_ratio: float = 0.75
    inverted: bool = False
    name: str = "board"

    def __post_init__(self):
        check_choice(self.type, BOARD_TYPES, "board type")
        low = 3 if self.type == "charuco" else 2
        if int(self.cols) < low or int(self.rows) < low:
            raise ValueError(f"board {self.name}: cols and rows must be >= {low}, got {self.cols} x {self.rows}")
        if not self.square_size > 0:
            raise ValueError(f"board {self.name}: square_size must be > 0 metres, got {self.square_size}")
        if self.type == "checkerboard" and self.cols == self.rows:
            raise ValueError(f"board {self.name}: a square checkerboard ({self.cols} x {self.rows} inner corners) "
                             "is ambiguous under 90° rotation; use cols != rows")
        if self.type == "charuco" and not 0 < self.marker_ratio < 1:
            raise ValueError(f"board {self.name}: marker_ratio must be in (0, 1), got {self.marker_ratio}")

    @property
    def corner_grid(self) -> tuple[int, int]:
        """Inner corners ``(cols, rows)`` (the chessboard corners both board types report)."""
        if self.type == "charuco":
            return self.cols - 1, self.rows - 1
        return self.cols, self.rows

    @property
    def n_corners(self) -> int:
        c, r = self.corner_grid
        return c * r

    @property
    def object_points(self) -> np.ndarray:
        """Corner positions ``(N, 3)`` in the board frame, metres, row-major (id = row * cols + col)."""
        c, r = self.corner_grid
        j, i = np.mgrid[0:r, 0:c]
        offset = 1.0 if self.type == "charuco" else 0.0
        pts = np.stack([i.ravel() + offset, j.ravel() + offset, np.zeros(i.size)], axis=-1)
        return pts * self.square_size

    @property
    def symmetric(self) -> bool:
        """True when a 180° turn maps the printed pattern onto itself (corner order then ambiguous).

        A checkerboard of (cols + 1) × (rows + 1) squares is symmetric when cols + rows is even
        (the two outer corner squares have the same colour). ChArUco ids remove the ambiguity.
        """
        return self.type == "checkerboard" and (self.cols + self.rows) % 2 == 0

    def neighbour_pairs(self) -> np.ndarray:
        """Index pairs ``(M, 2)`` of corners one square apart (along rows and columns)."""
        c, r = self.corner_grid
        idx = np.arange(c * r).reshape(r, c)
        horiz = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], -1)
        vert = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], -1)
        return np.concatenate([horiz, vert])

    def to_dict(self) -> dict:
        d = {"type": self.type, "cols": int(self.cols), "rows": int(self.rows), "square_size": float(self.square_size)}
        if self.type == "charuco":
            d.update(dictionary=self.dictionary, marker_ratio=float(self.marker_ratio), inverted=bool(self.inverted))
        return d


def board_from_dict(data: dict, name: str = "board") -> Board:
    """Build a :class:`Board` from a YAML mapping; unknown keys are rejected."""
    if not isinstance(data, dict):
        raise CalibrationError(f"board {name}: expected a mapping with type, cols, rows, square_size")
    unknown = set(data) - _KEYS
    if unknown:
        raise CalibrationError(f"board {name}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    missing = {"type", "cols", "rows", "square_size"} - set(data)
    if missing:
        raise CalibrationError(f"board {name}: missing keys {sorted(missing)}")
    kw = dict(data)
    kw.setdefault("name", name)
    try:
        return Board(type=str(kw.pop("type")), cols=int(kw.pop("cols")), rows=int(kw.pop("rows")),
                     square_size=float(kw.pop("square_size")), **kw)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"board {name}: {exc}") from None


def load_board(name_or_path: str | Path) -> Board:
    """Read a board YAML by path, or by name from the repository's ``calibration/`` folder.

    ``"checkerboard_9x6_25mm"`` and ``"calibration/checkerboard_9x6_25mm.yaml"`` both work.
    """
    p = Path(name_or_path)
    candidates = [p, BOARD_DIR / p.name, BOARD_DIR / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            with open(c) as fh:
                return board_from_dict(yaml.safe_load(fh), name=c.stem)
    known = sorted(f.stem for f in BOARD_DIR.glob("*.yaml"))
    raise CalibrationError(f"board {str(name_or_path)!r} not found; give a YAML path or one of: {', '.join(known)}")


def charuco_board(board: Board):
    """OpenCV's ``cv2.aruco.CharucoBoard`` for a ChArUco ``board`` (its squares, markers, dictionary).

    The one place both the detector and the printed image get OpenCV's view of the board from.
    """
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    return cv2.aruco.CharucoBoard((board.cols, board.rows), board.square_size,
                                  board.square_size * board.marker_ratio, dictionary)


def board_image(board: Board, px_per_square: int = 100, margin_squares: float = 1.0) -> np.ndarray:
    """The printed face of the board as a grayscale image ``(H, W)`` uint8, with a white margin.

    Returns the image; pixel ``(u, v)`` centre sits at board coordinates
    ``((u + 0.5) / px_per_square - m, (v + 0.5) / px_per_square - m) * square_size`` relative to the
    board-frame origin, where ``m`` is :func:`board_image_origin_squares`.
    """
    s = int(px_per_square)
    margin = int(round(margin_squares * s))
    if board.type == "charuco":
        inner = charuco_board(board).generateImage((board.cols * s, board.rows * s), marginSize=0, borderBits=1)
        if board.inverted:
            inner = 255 - inner
    else:
        nc, nr = board.cols + 1, board.rows + 1
        j, i = np.mgrid[0:nr, 0:nc]
        squares = np.where((i + j) % 2 == 0, 0, 255).astype(np.uint8)  # top-left square black
        inner = np.kron(squares, np.ones((s, s), np.uint8))
    bg = 0 if board.inverted else 255
    return np.pad(inner, margin, constant_values=bg)


def board_image_origin_squares(board: Board, margin_squares: float = 1.0) -> float:
    """Offset, in squares, from the image's top-left edge to the board-frame origin."""
    return margin_squares + (0.0 if board.type == "charuco" else 1.0)


def render_board(board: Board, out: str | Path, dpi: int = 300) -> Path:
    """Write a printable image of ``board`` at true size (``.png`` or ``.pdf``); returns the path.

    At ``dpi`` dots per inch one square spans ``square_size / 0.0254 * dpi`` pixels, so printing
    at 100 % reproduces the metric square size written in the board file.
    """
    import cv2

    out = Path(out)
    check_choice(out.suffix.lower(), (".png", ".pdf"), "board output extension")
    px = max(8, int(round(board.square_size / 0.0254 * dpi)))
    img = board_image(board, px_per_square=px, margin_squares=0.5)
    label = f"{board.name}: {board.type} {board.cols}x{board.rows}, square {board.square_size * 1000:g} mm"
    cv2.putText(img, label, (px // 10, img.shape[0] - px // 10), cv2.FONT_HERSHEY_SIMPLEX,
                max(0.4, px / 250), 255 if board.inverted else 0, max(1, px // 100), cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        cv2.imwrite(str(out), img)
    else:
        _write_pdf(img, out, dpi)
    return out


def _write_pdf(gray: np.ndarray, out: Path, dpi: int) -> None:
    """A one-page PDF holding ``gray`` as an uncompressed-then-deflated image at ``dpi``."""
    import zlib

    h, w = gray.shape
    wpt, hpt = w * 72.0 / dpi, h * 72.0 / dpi
    data = zlib.compress(np.ascontiguousarray(gray).tobytes())
    content = f"q {wpt:.3f} 0 0 {hpt:.3f} 0 0 cm /Im0 Do Q".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {wpt:.3f} {hpt:.3f}] "
        f"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
        f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    buf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, 1):
        offsets.append(len(buf))
        buf += f"{k} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(buf)
    buf += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    buf += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    buf += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    out.write_bytes(bytes(buf))
