"""Validation helpers used at public boundaries (trust inside)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def check_shape(x: np.ndarray, spec: str, name: str = "array") -> np.ndarray:
    """Check that ``x`` matches a shape spec such as ``"... C 2"`` or ``"3 3"``.

    Tokens are integers (exact size), letters (any size; the same letter must have the same size
    everywhere it appears), or a leading ``...`` (any number of leading dims).

    Returns ``x`` as a numpy array. Raises ``ValueError`` naming the argument, the expected spec
    and the actual shape.
    """
    arr = np.asarray(x)
    tokens = spec.split()
    ellipsis = bool(tokens) and tokens[0] == "..."
    fixed = tokens[1:] if ellipsis else tokens
    shape = arr.shape
    bad = len(shape) < len(fixed) if ellipsis else len(shape) != len(fixed)
    sizes: dict[str, int] = {}
    if not bad:
        tail = shape[len(shape) - len(fixed):] if fixed else ()
        for tok, dim in zip(fixed, tail):
            if tok.isdigit():
                bad = dim != int(tok)
            else:
                bad = sizes.setdefault(tok, dim) != dim
            if bad:
                break
    if bad:
        raise ValueError(f"{name}: expected shape ({', '.join(tokens)}), got {tuple(shape)}")
    return arr


def check_choice(value: str, allowed: Iterable[str], name: str) -> str:
    """Check that an option string is one of ``allowed``; the error lists the allowed values."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {', '.join(map(repr, allowed))}")
    return value


def check_rotation_matrix(R: np.ndarray, name: str = "R", atol: float = 1e-5) -> np.ndarray:
    """Check that ``R (..., 3, 3)`` is a proper rotation (orthonormal, determinant +1)."""
    R = check_shape(np.asarray(R, dtype=np.float64), "... 3 3", name)
    eye = np.eye(3)
    err = np.abs(np.swapaxes(R, -1, -2) @ R - eye).max() if R.size else 0.0
    det = np.linalg.det(R) if R.size else np.ones(())
    if not np.isfinite(R).all() or err > atol or np.any(np.abs(det - 1.0) > atol):
        raise ValueError(f"{name}: not a rotation matrix (max |R^T R - I| = {err:.2e}, det = {np.ravel(det)[0]:.4f})")
    return R
