"""What a person needs to trust a rig calibration, measured and written beside it.

* per-camera reprojection RMS (intrinsic fit and final bundle adjustment), frames used/rejected;
* the board's square length measured in 3D: corners triangulated from all cameras with the final
  calibration (not from the bundle's own board poses), distances of neighbouring corners compared
  with the printed square size — mean and SD of the error in mm;
* which camera pairs saw the board together (frames shared / agreeing);
* per-camera coverage images: where in the image the board corners were seen.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from mocap.calibration.boards import Board
from mocap.geometry.camera import Rig, pixel_to_normalized

log = logging.getLogger(__name__)


def triangulate_corners(rig: Rig, xy: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of corners seen by at least two cameras.

    Args:
        rig: the calibrated rig (C cameras).
        xy: ``(C, F, N, 2)`` distorted pixels, NaN-missing.

    Returns:
        ``(F, N, 3)`` world points, NaN where fewer than two cameras saw the corner.
    """
    C, F, N, _ = xy.shape
    xn = np.stack([pixel_to_normalized(cam, xy[c]) for c, cam in enumerate(rig.cameras)])  # (C,F,N,2)
    P = np.stack([np.hstack([cam.R, cam.t[:, None]]) for cam in rig.cameras])  # normalised cameras
    ok = np.isfinite(xn).all(-1)  # (C,F,N)
    x = np.where(ok[..., None], xn, 0.0)
    # rows x*P3 - P1 and y*P3 - P2 per camera (Hartley & Zisserman 12.2), zero rows where unseen
    A = np.concatenate([x[..., :1, None] * P[:, None, None, 2:3] - P[:, None, None, 0:1],
                        x[..., 1:2, None] * P[:, None, None, 2:3] - P[:, None, None, 1:2]], axis=-2)  # (C,F,N,2,4)
    A = A * ok[..., None, None]
    A = np.moveaxis(A, 0, 2).reshape(F, N, 2 * C, 4)
    _, _, Vt = np.linalg.svd(A)
    X = Vt[..., -1, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        pts = X[..., :3] / X[..., 3:]
    pts[ok.sum(0) < 2] = np.nan
    return pts


def square_length_errors_mm(points: np.ndarray, board: Board) -> np.ndarray:
    """Errors (mm) of all neighbouring-corner distances ``(K,)`` against the square size.

    ``points`` is ``(F, N, 3)`` in metres (NaN-missing); pairs with a missing corner are skipped.
    """
    pairs = board.neighbour_pairs()
    d = np.linalg.norm(points[:, pairs[:, 0]] - points[:, pairs[:, 1]], axis=-1).ravel()
    d = d[np.isfinite(d)]
    return (d - board.square_size) * 1000.0


def coverage_image(xy: np.ndarray, size: tuple[int, int], used: np.ndarray | None = None, max_side: int = 640) -> np.ndarray:
    """A BGR picture ``(h, w, 3)`` of every corner seen by one camera: green used, red not used.

    ``xy`` is ``(F, N, 2)``; ``used`` ``(F,)`` marks the frames kept by the calibration.
    """
    import cv2

    w, h = size
    s = min(1.0, max_side / max(w, h))
    img = np.full((round(h * s), round(w * s), 3), 40, np.uint8)
    used = np.ones(len(xy), bool) if used is None else used
    for flag, colour in ((False, (60, 60, 220)), (True, (80, 220, 80))):
        pts = xy[used == flag].reshape(-1, 2)
        pts = pts[np.isfinite(pts).all(-1)] * s
        for p in np.round(pts).astype(int):
            cv2.circle(img, (int(p[0]), int(p[1])), 2, colour, -1, cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), (200, 200, 200), 1)
    return img


def write_report(report: dict, out_dir: Path, stem: str, coverage: dict[str, np.ndarray]) -> list[Path]:
    """Write ``<stem>_report.yaml``, a readable ``<stem>_report.md`` and ``<stem>_coverage_<cam>.png``."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}_report.yaml", out_dir / f"{stem}_report.md"]
    paths[0].write_text(yaml.safe_dump(_plain(report), sort_keys=False))
    paths[1].write_text(format_report(report))
    for name, img in coverage.items():
        p = out_dir / f"{stem}_coverage_{name}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 6)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def format_report(report: dict) -> str:
    """A Markdown summary of :func:`mocap.calibration.rig.calibrate_rig`'s report dict."""
    lines = [f"# Calibration report: {report.get('board', '')}", ""]
    lines += ["| camera | solved | frames with board | intrinsic frames used | rejected | intrinsic RMS px | final RMS px | fx |",
              "|---|---|---|---|---|---|---|---|"]
    for name, c in report["cameras"].items():
        lines.append(f"| {name} | {'yes' if c['solved'] else 'NO'} | {c['frames_with_board']} | {c['intrinsic_frames']} | "
                     f"{c['rejected_frames']} | {_f(c['intrinsic_rms_px'])} | {_f(c['final_rms_px'])} | {_f(c['fx'], 1)} |")
    sq = report.get("square_length_check", {})
    lines += ["", "## Metric check: square length measured in 3D",
              f"{sq.get('n', 0)} neighbouring-corner distances from triangulated corners; printed square "
              f"{sq.get('square_mm', float('nan')):.1f} mm; error mean {_f(sq.get('mean_error_mm'))} mm, "
              f"SD {_f(sq.get('sd_error_mm'))} mm, median |error| {_f(sq.get('median_abs_error_mm'))} mm.", ""]
    lines += ["## Camera pairs (frames where both saw the board / agreeing with the pair's consensus)", ""]
    names = list(report["cameras"])
    shared, agree = report["pairs"]["shared_frames"], report["pairs"]["agreeing_frames"]
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for i, n in enumerate(names):
        lines.append(f"| {n} | " + " | ".join("—" if i == j else f"{shared[i][j]}/{agree[i][j]}" for j in range(len(names))) + " |")
    ba = report.get("bundle", {})
    lines += ["", f"Bundle adjustment: {ba.get('observations_used', 0)} of {ba.get('observations', 0)} corner observations "
              f"kept, RMS {_f(ba.get('rms_px'))} px, {ba.get('message', '')}", ""]
    if report.get("failed"):
        lines += ["## Failed: not trusted, not written under the output name", ""]
        lines += [f"- {r}" for reasons in report["failed"].values() for r in reasons] + [""]
    lenses = {n: c["lens"] for n, c in report["cameras"].items() if c.get("lens")}
    if lenses:
        lines += ["## Lenses", ""] + [f"- {n}: {v}" for n, v in lenses.items()] + [""]
    if report.get("messages"):
        lines += ["## Problems found", ""] + [f"- {m}" for m in report["messages"]]
    lines.append(f"\nWorld frame: {report.get('world', '')}")
    return "\n".join(lines) + "\n"


def _f(x, digits: int = 3) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def build_report(board, names, dets, intr, solved_idx, cam_rms, ba, obs, init, sq, messages, world_desc, K, C) -> dict:
    """The report dict written beside a calibration (see :func:`format_report`)."""
    final = dict(zip(solved_idx.tolist(), cam_rms.tolist()))
    fx_final = dict(zip(solved_idx.tolist(), ba.K[:, 0, 0].tolist()))
    cams = {}
    for c, n in enumerate(names):
        r = intr[n]
        cams[n] = {"solved": bool(c in final), "frames": int(len(dets[c].valid)), "frames_with_board": int(dets[c].valid.sum()),
                   "intrinsic_frames": int(r.used.sum()), "rejected_frames": len(r.rejected),
                   "intrinsic_rms_px": float(r.rms_px), "final_rms_px": float(final.get(c, np.nan)),
                   "fx": float(fx_final.get(c, K[c, 0, 0]))}
    n = len(sq)
    return {
        "board": f"{board.name} ({board.type} {board.cols}x{board.rows}, {board.square_size * 1000:g} mm)",
        "cameras": cams,
        "square_length_check": {"n": n, "square_mm": board.square_size * 1000,
                                "mean_error_mm": float(np.mean(sq)) if n else np.nan,
                                "sd_error_mm": float(np.std(sq)) if n else np.nan,
                                "median_abs_error_mm": float(np.median(np.abs(sq))) if n else np.nan},
        "pairs": {"cameras": names, "shared_frames": init.shared.tolist(), "agreeing_frames": init.agree.tolist()},
        "bundle": {"observations": len(obs), "observations_used": int(ba.inlier.sum()), "rms_px": ba.rms_px,
                   "converged": ba.success, "message": ba.message, "evaluations": ba.n_evaluations},
        "world": world_desc,
        "messages": list(messages),
    }
