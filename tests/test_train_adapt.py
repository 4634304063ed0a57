"""Session adaptation of the learned algebraic triangulation (``mocap train algebraic --session``):
runs through the CLI on a small slice of the Pose2Sim single take, is seeded, and does not make the
held-out frames' held-out-view reprojection worse."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import POSE2SIM  # noqa: E402

from mocap.cli import main  # noqa: E402
from mocap.train.adapt import AdaptConfig, adapt_to_session, parse_adapt, session_people  # noqa: E402
from mocap.triangulation import learned  # noqa: E402

TAKE = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial"
CALIBRATION = POSE2SIM / "S00_Calibration" / "Calib.qca.txt"
SMALL = ["steps=8", "frames=50", "lr=3e-3"]


@pytest.fixture(scope="module")
def take():
    if not TAKE.is_dir():
        pytest.skip(f"{TAKE}: shared Pose2Sim data not present")
    return session_people(TAKE, CALIBRATION)


def test_adaptation_through_the_cli_does_not_make_the_held_out_frames_worse(tmp_path, capsys, take):
    out = tmp_path / "studio.pt"
    argv = ["train", "algebraic", "--out", str(out), "--session", str(TAKE), "--calibration", str(CALIBRATION)]
    for item in SMALL:
        argv += ["--adapt", item]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    before, after = printed["held_out_before"], printed["held_out_after"]
    assert np.isfinite(before["held_out_view_px"]) and np.isfinite(after["held_out_view_px"])
    assert after["held_out_view_px"] <= before["held_out_view_px"] + 0.5  # px, on the 20 held-out frames
    assert after["bone_cv"] <= before["bone_cv"] + 0.005
    model = learned.load_weights(out)  # loads with weights_only=True, as at inference
    shipped = learned.load_weights()
    moved = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values())]
    assert any(moved), "the adaptation changed no weight"
    blob = torch.load(out, weights_only=True)
    assert blob["meta"]["adapt"]["steps"] == 8 and blob["meta"]["frames_trained"] == 30


def test_the_same_seed_gives_the_same_weights(take):
    rig, people, names = take
    cfg = AdaptConfig(steps=3, frames=40, lr=3e-3)
    states = []
    for _ in range(2):
        model = copy.deepcopy(learned.load_weights())
        adapt_to_session(model, rig, people, names, cfg)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_bad_settings_and_inputs_are_one_clear_line(tmp_path, take):
    with pytest.raises(ValueError, match="--adapt stepz=3: expected KEY=VALUE"):
        parse_adapt(["stepz=3"])
    with pytest.raises(ValueError, match="'many' is not a int"):
        parse_adapt(["steps=many"])
    with pytest.raises(ValueError, match="needs at least 10 frames"):
        rig, people, names = take
        adapt_to_session(copy.deepcopy(learned.load_weights()), rig, people, names, AdaptConfig(frames=15))
    rc = main(["train", "algebraic", "--out", str(tmp_path / "w.pt"), "--session", str(TAKE)])
    assert rc != 0
    rc = main(["train", "algebraic", "--out", str(tmp_path / "w.pt"), "--session", str(tmp_path / "nope"),
               "--calibration", str(CALIBRATION)])
    assert rc != 0


@pytest.fixture(scope="module")
def small(take):
    """Consistency samples of the take's first 20 frames and the bones."""
    from mocap.evaluate import BONES
    from mocap.train.adapt import session_samples
    from mocap.triangulation.people import TriangulateConfig

    rig, people, names = take
    bones = [(names.index(a), names.index(b)) for a, b in BONES if a in names and b in names]
    return session_samples(rig, people[:20], names, AdaptConfig(), TriangulateConfig()), bones


def test_last_layer_adaptation_moves_only_the_output_layer(small):
    from mocap.train.adapt import fit_session

    samples, bones = small
    shipped = learned.load_weights()
    model = copy.deepcopy(shipped)
    with learned.one_torch_thread():
        fit_session(model, samples, bones, AdaptConfig(steps=3, lr=1e-2, trainable="last"))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, shipped.state_dict()[k])}
    assert changed == {f"body.{len(model.body) - 1}.weight"}


def test_early_stopping_never_ends_worse_than_the_start_on_its_validation_frames(small):
    from mocap.train.adapt import consistency_losses, fit_session

    samples, bones = small
    cfg = AdaptConfig(steps=4, lr=0.5)  # a destructive learning rate: the objective gets worse (212 -> ~297)

    def objective(model):
        with torch.no_grad():
            reproj, cv2 = consistency_losses(model, samples, bones, cfg)
        return float(reproj + cfg.bone_weight * cv2)

    start = learned.load_weights()
    before, runs = objective(start), {}
    for name, validation in (("without", None), ("with", samples)):
        model = copy.deepcopy(start)
        with learned.one_torch_thread():
            _, kept = fit_session(model, samples, bones, cfg, validation)
        runs[name] = (objective(model), kept)
    assert runs["without"][0] > before + 1.0 and runs["without"][1] == cfg.steps  # worse, every step kept
    assert runs["with"][0] <= before + 1e-9 and runs["with"][1] < cfg.steps  # back to the best step
