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
