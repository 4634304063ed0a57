"""ONNX top-down backend: SimCC and heatmap heads, crop geometry, the caliscope fixture model."""

import numpy as np
import pytest

from mocap.detect.blazepose import FramePyramid
from mocap.detect.onnx_backend import OnnxConfig, OnnxPose, decode_heatmaps, decode_simcc
from mocap.detect.video import read_frames
from mocap.errors import ModelError

from conftest import POSE2SIM, SHARED, require_module

FIXTURE = SHARED / "calibration" / "caliscope_charuco_4cam" / "fixtures_onnx" / "simcc_3pt.onnx"
VIDEO = POSE2SIM / "S00_P00_SingleParticipant" / "S00_P00_T01_BalancingTrial" / "videos" / "cam01.mp4"


@pytest.fixture(scope="module")
def frame():
    return next(read_frames(VIDEO))[1]


def test_decode_simcc_known_bins():
    sx, sy = np.zeros((1, 2, 96)), np.zeros((1, 2, 128))
    sx[0, 0, 30], sy[0, 0, 52], sx[0, 1, 10], sy[0, 1, 20] = 5.0, 5.0, 0.2, 0.4
    kp = decode_simcc(sx, sy, (48, 64))
    np.testing.assert_allclose(kp[0], [[15.0, 26.0, 1.0], [5.0, 10.0, 0.3]])


def test_decode_heatmaps_peak_and_quarter_shift():
    hm = np.zeros((1, 1, 16, 12))
    hm[0, 0, 5, 7], hm[0, 0, 5, 8] = 0.9, 0.5  # right neighbour higher -> +0.25 cell in x
    kp = decode_heatmaps(hm, (48, 64))
    np.testing.assert_allclose(kp[0, 0], [(7.25 + 0.5) * 4 - 0.5, (5 + 0.5) * 4 - 0.5, 0.9])


def test_fixture_model_keypoints_follow_the_person_box(frame):
    model = OnnxPose(FIXTURE)
    assert model.joint_names == ("nose", "left_eye", "right_eye", "low_conf") and model.head == "simcc"
    res = model.new_tracker().step(frame)
    p = int(np.nanargmax(res.scores))
    # the fixture outputs constant bins: nose (48, 64) / 2 in the 48x64 input, low_conf below 0.3
    people = model.people.new_tracker().step(frame)
    M = model.person_boxes(people.keypoints[p:p + 1])[0]
    np.testing.assert_allclose(res.keypoints[p, 0, :2], M[:, :2] @ [24.0, 32.0] + M[:, 2], atol=1e-6)
    assert res.keypoints[p, 0, 2] == 1.0 and np.isnan(res.keypoints[p, 3]).all()


def test_bad_onnx_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxPose(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxPose(bad)


def _export(head, path):
    """Export a 'pose model' whose every keypoint is the reddest spot of its input crop."""
    torch = require_module("torch")
    require_module("onnx")

    class BrightSpot(torch.nn.Module):
        def forward(self, x):
            red = x[:, :1] - 0.5 * (x[:, 1:2] + x[:, 2:3])  # redness: white and grey stay low
            if head == "heatmap":
                return torch.nn.functional.avg_pool2d(red, 4).repeat(1, 17, 1, 1)
            px = torch.nn.functional.interpolate(red.amax(dim=2), scale_factor=2.0, mode="nearest")
            py = torch.nn.functional.interpolate(red.amax(dim=3), scale_factor=2.0, mode="nearest")
            return px.repeat(1, 17, 1), py.repeat(1, 17, 1)

    outputs = ["heatmaps"] if head == "heatmap" else ["simcc_x", "simcc_y"]
    torch.onnx.export(BrightSpot(), torch.zeros(1, 3, 256, 192), str(path), input_names=["input"],
                      output_names=outputs, dynamo=False)
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter
@pytest.mark.parametrize("head, tol_input_px", [("simcc", 1.0), ("heatmap", 2.5)])
def test_exported_model_finds_a_painted_spot(frame, tmp_path, head, tol_input_px):
    model = OnnxPose(_export(head, tmp_path / f"{head}.onnx"), OnnxConfig(min_confidence=0.0))
    assert model.joint_names[0] == "nose" and model.head == head and model.input_size == (192, 256)
    people = model.people.new_tracker().step(frame)
    p = int(np.nanargmax(people.scores))
    M = model.person_boxes(people.keypoints[p:p + 1])
    img = frame.copy()
    target = M[0, :, :2] @ [120.0, 90.0] + M[0, :, 2]  # a point inside the crop
    x, y = np.round(target).astype(int)
    img[y - 6:y + 7, x - 6:x + 7] = (0, 0, 255)
    kp = model.estimate(FramePyramid(img), M)
    scale = M[0, 0, 0]  # image px per input px
    err = np.linalg.norm(kp[0, :, :2] - target, axis=-1)
    assert kp.shape == (1, 17, 3) and (err < tol_input_px * scale + 7).all(), err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter
def test_photo_bench_runs_an_onnx_model_on_the_multi_person_proposals(frame, tmp_path):
    """``mocap bench detect --photos --detector onnx:MODEL``'s path: the people the proposals find
    (:func:`~mocap.detect.proposals.detect_people`), the user's model on each, its 12 limb
    keypoints by name in image pixels. The exported model puts every keypoint on the reddest spot
    of its crop; a spot painted on the person's hips is where all of them must land."""
    from mocap.bench.detect import photo_detector

    import cv2

    path = _export("simcc", tmp_path / "simcc.onnx")
    img = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # a photo-sized image
    people = OnnxPose(path).people.new_tracker().step(img)
    p = int(np.nanargmax(people.scores))
    x, y = np.round(people.rois[p, :2]).astype(int)  # the ROI centre: the person's hips
    img[y - 4:y + 5, x - 4:x + 5] = (0, 0, 255)
    limbs = photo_detector(f"onnx:{path}")(img)
    assert limbs.ndim == 3 and limbs.shape[1:] == (12, 2)
    near = int(np.argmin(np.linalg.norm(np.nanmean(limbs, axis=1) - [x, y], axis=-1)))
    err = np.linalg.norm(limbs[near] - [x, y], axis=-1)
    assert err.max() < 0.02 * people.rois[p, 2] + 5, err
    with pytest.raises(ValueError, match="limb keypoints"):
        photo_detector(f"onnx:{FIXTURE}")
