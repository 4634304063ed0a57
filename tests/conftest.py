import importlib
import os
import shutil

import numpy as np
import pytest

from mocap.geometry import Camera

from mocap.paths import shared_data_dir

SHARED = shared_data_dir()
POSE2SIM = SHARED / "sessions" / "pose2sim_demo"
CMU = SHARED / "motion" / "cmu"


# What each optional dependency is and how to get it. `make test` installs all of them.
TOOL_HINTS = {
    "blender": "Debian package `blender` (Blender 3.4); `make sysdeps` installs it",
    "assimp": "Debian package `assimp-utils`; `make sysdeps` installs it",
}
MODULE_HINTS = {
    "aniposelib.cameras": "`make venv` installs aniposelib==0.8.0 with --no-deps, plus toml and pandas",
    "bvhio": "the `test` extra: pip install -e '.[test]'",
    "c3d": "the `test` extra: pip install -e '.[test]'",
    "torch": "the `test` extra: pip install -e '.[test]'",
    "onnx": "the `test` extra: pip install -e '.[test]'",
}


def missing_dependency(what: str, hint: str):
    """A test's tool or package is absent: a failure in CI (env ``CI`` set, not ``0``/``false``),
    where every test must run, else a skip that says how to install it."""
    message = f"{what} is not installed ({hint})"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"{message}; CI runs every test, so a missing dependency fails", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of the external program ``name`` (see :func:`missing_dependency` when absent)."""
    path = shutil.which(name)
    if path is None:
        missing_dependency(name, TOOL_HINTS.get(name, "make sysdeps"))
    return path


def require_module(name: str):
    """The imported module ``name`` (see :func:`missing_dependency` when it cannot be imported)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing_dependency(name, f"{MODULE_HINTS.get(name, 'pip install it')}; import said: {exc}")


@pytest.fixture(scope="session")
def blender() -> str:
    return require_tool("blender")


@pytest.fixture(scope="session")
def assimp() -> str:
    return require_tool("assimp")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared():
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED}; clone the project beside ../shared")
    return SHARED


def look_at_camera(name, eye, target=(0, 0, 1.0), f=1200.0, size=(1920, 1080),
                   dist=(-0.25, 0.08, 1e-3, -5e-4, -0.01), skew=0.0, aspect=1.001):
    """A camera at ``eye`` looking at ``target`` (world Z up), with a realistic lens."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    K = np.array([[f, skew, size[0] / 2 - 0.5], [0, f * aspect, size[1] / 2 + 3.2], [0, 0, 1]])
    return Camera(name, size, K, np.array(dist), R, -R @ eye)


@pytest.fixture(autouse=True)
def restore_backend_choice():
    """`mocap process` run in-process may pick the numpy backend for a short take by setting
    MOCAP_BACKEND (for the rest of its process); restore it so one test's choice does not leak."""
    from mocap.triangulation.backend import BACKEND_ENV, env_backend

    before = os.environ.get(BACKEND_ENV)
    yield
    if os.environ.get(BACKEND_ENV) != before:
        if before is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = before
        env_backend.cache_clear()


def assert_same_tracks(a, b):
    """Two Tracks equal as chunked = one pass promises: joints within 1e-6 m, same IDs and frames."""
    assert a.joint_names == b.joint_names and list(a.track_ids) == list(b.track_ids)
    assert a.positions.shape == b.positions.shape
    np.testing.assert_array_equal(np.isfinite(a.positions), np.isfinite(b.positions))
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-6, rtol=0, equal_nan=True)
    # confidence: the mean detector confidence over the views used; a view below min_confidence
    # (weight 0, so the joint does not move) can fall either side of the inlier test by rounding
    same = np.isclose(a.confidence, b.confidence, atol=1e-9)
    assert same.mean() >= 0.999, np.argwhere(~same)[:5]
    np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
