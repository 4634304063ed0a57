import numpy as np
import pytest

from mocap.geometry import Camera

from mocap.paths import shared_data_dir

SHARED = shared_data_dir()
POSE2SIM = SHARED / "sessions" / "pose2sim_demo"
CMU = SHARED / "motion" / "cmu"


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
