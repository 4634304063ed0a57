import numpy as np
import pytest

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
