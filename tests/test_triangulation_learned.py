"""Learned algebraic triangulation: the differentiable DLT, training (loss falls, gradients reach
every weight, seeded), the fallbacks to robust, and the shipped weights on held-out data."""

from __future__ import annotations

import dataclasses
import logging
import re
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mocap.errors import MocapError, ModelError  # noqa: E402
from mocap.train.algebraic import TrainConfig, batch_loss, to_tensors, train_algebraic, training_step  # noqa: E402
from mocap.train.data import Scenario, evidence_set, scenario_person  # noqa: E402
from mocap.triangulation import learned  # noqa: E402
from mocap.triangulation.features import dlt_rows  # noqa: E402
from mocap.triangulation.people import TriangulateConfig, learned_module, triangulate_people  # noqa: E402

LEARNED = TriangulateConfig(method="learned")
ROBUST = TriangulateConfig()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread (as ``mocap train`` by default): deterministic and not slowed by a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_set():
    """Evidence of one short capture (4 cameras, outliers and swaps), about 1000 points."""
    return evidence_set([Scenario(cameras=4, noise_px=3.0, outlier_rate=0.1, swap_rate=0.05, frames=40, seed=10_001,
                                  clip="01_01")])


@pytest.fixture(scope="module")
def held_out():
    """A capture none of whose settings the shipped weights were trained on (clip 131_01, the
    benchmark's rig of seed 0, noise 5 px, 10 % outliers and swaps)."""
    return {C: scenario_person(Scenario(cameras=C, noise_px=5.0, outlier_rate=0.1, swap_rate=0.1, frames=120, seed=0))
            for C in (4, 8)}


def test_weighted_dlt_recovers_exact_points():
    from mocap.synthetic import ring_rig

    rig = ring_rig(6, seed=3)
    X = np.random.default_rng(0).uniform([-1, -1, 0], [1, 1, 2], size=(50, 3))
    from mocap.geometry import project_rig

    xy = project_rig(rig, X)  # (50, C, 2), distorted pixels
    valid = np.ones(xy.shape[:2], bool)
    valid[:10, :3] = False  # some points seen by 3 views only
    rows, center, scale = dlt_rows(rig, xy, valid)
    w = torch.rand(valid.shape, generator=torch.Generator().manual_seed(0)) * torch.from_numpy(valid)
    Xc = learned.weighted_dlt(torch.from_numpy(rows), w.double())
    np.testing.assert_allclose(center + Xc.numpy() / scale, X, atol=1e-6)


def test_a_training_step_reduces_the_loss_on_a_fixed_batch(small_set):
    torch.manual_seed(0)
    model = learned.ViewWeightNet()
    batch = to_tensors(small_set)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = training_step(model, opt, batch)
    for _ in range(15):
        training_step(model, opt, batch)
    with torch.no_grad():
        after = float(batch_loss(model, batch))
    assert after < 0.8 * first, (first, after)


def test_gradients_reach_every_weight(small_set):
    torch.manual_seed(1)
    model = learned.ViewWeightNet()
    batch_loss(model, to_tensors(small_set)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert (p.grad.abs() > 0).float().mean() > 0.5, f"{name}: most entries get no gradient"


def test_the_same_seed_gives_the_same_weights():
    cfg = TrainConfig(seed=3, scenes=2, frames=20, steps=6, batch=256)
    a, _ = train_algebraic(cfg)
    b, _ = train_algebraic(cfg)
    c, _ = train_algebraic(dataclasses.replace(cfg, seed=4))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_shipped_weights_are_small_and_load_weights_only():
    assert learned.SHIPPED_WEIGHTS.is_file()
    assert learned.SHIPPED_WEIGHTS.stat().st_size < 10 * 2**20
    blob = torch.load(learned.SHIPPED_WEIGHTS, weights_only=True)
    assert blob["meta"]["config"]["seed"] == 0 and blob["features"] == list(learned.FEATURE_NAMES)


@pytest.mark.parametrize("C, limit", [(4, 0.9), (8, 0.9)])
def test_shipped_weights_beat_robust_on_held_out_data(held_out, C, limit):
    scene, person, gt = held_out[C]
    robust = triangulate_people(scene.rig, person, scene.joint_names, ROBUST).points
    ours = triangulate_people(scene.rig, person, scene.joint_names, LEARNED).points
    both = np.isfinite(robust).all(-1) & np.isfinite(gt).all(-1)
    assert np.array_equal(np.isfinite(ours).all(-1), np.isfinite(robust).all(-1))
    e_robust = np.linalg.norm(robust - gt, axis=-1)[both].mean()
    e_learned = np.linalg.norm(ours - gt, axis=-1)[both].mean()
    print(f"\n{C} cameras: robust {1000 * e_robust:.2f} mm, learned {1000 * e_learned:.2f} mm "
          f"({e_learned / e_robust:.3f}x)")
    assert e_learned <= limit * e_robust


def test_a_view_with_nan_evidence_falls_back_never_nan(held_out, caplog):
    scene, person, gt = held_out[4]
    person = person[:30].copy()
    person[:, 1, 1:, 2] = 0.0  # camera 2 sees one joint only: its person size, hence its features, are NaN
    person[:, 2, :, 2] = np.nan  # camera 3's confidences lost
    person[5, 0, :, :2] = np.nan  # frame 5: camera 1's pixels lost
    robust = triangulate_people(scene.rig, person, scene.joint_names, ROBUST).points
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.learned"):
        ours = triangulate_people(scene.rig, person, scene.joint_names, LEARNED).points
    had = np.isfinite(robust).all(-1)
    assert had.sum() > 100 and np.isfinite(ours[had]).all()
    assert np.array_equal(np.isfinite(ours).all(-1), had)
    nan_features = int(re.search(r"NaN features: (\d+)", caplog.text).group(1))
    assert nan_features >= 25, caplog.text  # joint 0 of every frame camera 2 saw, robust had
    refined = int(re.search(r"learned triangulation: (\d+) of", caplog.text).group(1))
    assert refined > 100


def test_one_camera_gives_nan_like_robust(held_out):
    from mocap.geometry import Rig

    scene, person, _ = held_out[4]
    rig = Rig(scene.rig.cameras[:1])
    tri = triangulate_people(rig, person[:5, :1], scene.joint_names, LEARNED)
    assert tri.points.shape == (5, len(scene.joint_names), 3) and np.isnan(tri.points).all()


def test_a_failed_learned_point_keeps_the_robust_one(held_out, monkeypatch, caplog):
    scene, person, _ = held_out[8]
    person = person[:20]
    robust = triangulate_people(scene.rig, person, scene.joint_names, ROBUST).points
    real = learned.learned_points

    def broken(model, ev, bias=None):
        X, W = real(model, ev, bias)
        X[::3] += 10.0  # far from robust and from the neighbouring frames: a failure
        X[1::3] = np.nan
        return X, W

    monkeypatch.setattr(learned, "learned_points", broken)
    with caplog.at_level(logging.INFO, logger="mocap.triangulation.learned"):
        ours = triangulate_people(scene.rig, person, scene.joint_names, LEARNED).points
    flat_o, flat_r = ours.reshape(-1, 3), robust.reshape(-1, 3)
    np.testing.assert_array_equal(flat_o[::3], flat_r[::3])
    np.testing.assert_array_equal(flat_o[1::3], flat_r[1::3])
    assert "failed or > 0.5 m from robust and the neighbouring frames" in caplog.text


def test_without_torch_one_clear_line(monkeypatch):
    import importlib.util

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MocapError, match="needs torch: pip install"):
        learned_module()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else object())
    with pytest.raises(MocapError, match="needs torch: pip install"):  # at config time, before any detection
        TriangulateConfig(method="learned")
    TriangulateConfig(method="robust")  # other modes do not need it


def test_a_missing_or_bad_weights_file_is_named(tmp_path, held_out):
    scene, person, _ = held_out[4]
    with pytest.raises(MocapError, match="nope.pt: file not found"):  # at config time
        dataclasses.replace(LEARNED, learned_weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ModelError, match="nope.pt: weights file not found"):
        learned.load_weights(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="bad.pt: not a readable weights file"):
        learned.load_weights(bad)


def test_mocap_train_algebraic_writes_loadable_weights(tmp_path):
    from mocap.cli import main

    out = tmp_path / "w.pt"
    assert main(["train", "algebraic", "--out", str(out), "--scenes", "1", "--frames", "10", "--steps", "3"]) == 0
    model = learned.load_weights(out)
    assert isinstance(model, learned.ViewWeightNet)
    assert torch.load(out, weights_only=True)["meta"]["config"]["steps"] == 3


def test_chunks_give_the_same_points_as_one_pass(held_out, monkeypatch):
    scene, person, _ = held_out[8]
    person = person[:40]
    whole = triangulate_people(scene.rig, person, scene.joint_names, LEARNED).points
    monkeypatch.setattr(learned, "CHUNK_POINTS", 97)
    chunked = triangulate_people(scene.rig, person, scene.joint_names, LEARNED).points
    np.testing.assert_allclose(chunked, whole, atol=1e-9)
