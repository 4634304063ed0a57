"""`--executor ray`: a local Ray runtime started in the test process (this machine only, no
dashboard, 2 CPUs) runs the chunks of a take; the tracks it writes are identical to the local run's."""

import os

import numpy as np
import pytest

from conftest import require_module
from mocap.io.tracks import load_tracks, save_tracks
from mocap.pipeline import reconstruct
from mocap.runtime.executor import make_executor
from mocap.synthetic import SyntheticConfig, make_scene

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: serve on 127.0.0.1 only


@pytest.fixture(scope="module")
def ray_executor():
    require_module("ray")
    executor = make_executor("ray", num_cpus=2)
    yield executor
    executor.close()
    import ray

    assert not ray.is_initialized()


def test_ray_and_local_write_identical_tracks(ray_executor, tmp_path):
    import ray

    assert ray.is_initialized() and ray_executor.workers == 2
    nodes = ray.nodes()  # one node, serving on the loopback address only
    assert len(nodes) == 1 and nodes[0]["NodeManagerAddress"] == "127.0.0.1"
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    scene = make_scene(SyntheticConfig(seed=11, num_frames=120, num_people=2, num_cameras=4))
    # the same chunks locally (chunked = one pass within 1e-6 m is tests/test_long_takes.py's)
    local = save_tracks(reconstruct(scene.keypoints, scene.rig, chunk_frames=30), tmp_path / "local.npz")
    remote = save_tracks(reconstruct(scene.keypoints, scene.rig, chunk_frames=30, executor=ray_executor),
                         tmp_path / "ray.npz")
    a, b = np.load(local), np.load(remote)
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        if key != "confidence":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    same = np.isclose(a["confidence"], b["confidence"], atol=1e-9)
    assert same.mean() >= 0.999
    assert load_tracks(remote).positions.shape[1] == 2


def test_unknown_executor_and_stray_address_are_one_line_errors():
    with pytest.raises(ValueError, match="executor: expected one of local, ray"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--address: only with --executor ray"):
        make_executor("local", "127.0.0.1:6379")
