"""BlazePose decoding, geometry and tracking helpers, against generated ground truth."""

import numpy as np
import pytest

from mocap.detect.anchors import box_iou, decode_detections, ssd_anchors, weighted_nms
from mocap.detect.appearance import DESCRIPTOR_SIZE, appearance_descriptors, appearance_similarity
from mocap.detect.blazepose import (
    FramePyramid,
    apply_affine,
    image_from_crop,
    left_right_permutation,
    refine_with_heatmap,
    rois_from_alignment,
)
from mocap.detect.roi_tracking import fix_left_right_flips
from mocap.skeleton.joints import BLAZEPOSE_33

J = {n: i for i, n in enumerate(BLAZEPOSE_33)}


def test_ssd_anchors_count_and_grid():
    a = ssd_anchors()
    assert a.shape == (2254, 2)
    # first grid: stride 8 -> 28x28 cells, 2 anchors per cell, centred on the cells
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28])
    # last group: stride 32 (3 layers merged) -> 7x7 cells, 6 anchors per cell
    np.testing.assert_allclose(a[-6:], np.tile([6.5 / 7, 6.5 / 7], (6, 1)))
    assert ((a > 0) & (a < 1)).all()


def test_decode_detections_recovers_box_and_keypoints(rng):
    anchors = ssd_anchors()
    raw = np.zeros((2254, 12))
    scores = np.full(2254, -10.0)
    i = 1000
    box = np.array([0.4, 0.3, 0.2, 0.25])  # centre x, y, w, h (normalised)
    kps = rng.uniform(0.1, 0.9, (4, 2))
    raw[i, :2] = (box[:2] - anchors[i]) * 224
    raw[i, 2:4] = box[2:] * 224
    raw[i, 4:] = ((kps - anchors[i]) * 224).ravel()
    scores[i] = 3.0
    boxes, k, s = decode_detections(raw, scores, anchors, min_score=0.5)
    assert boxes.shape == (1, 4) and k.shape == (1, 4, 2)
    np.testing.assert_allclose(boxes[0], [0.3, 0.175, 0.5, 0.425], atol=1e-9)
    np.testing.assert_allclose(k[0], kps, atol=1e-9)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-3.0)))


def test_weighted_nms_merges_overlaps_and_keeps_separate_people():
    boxes = np.array([[0, 0, 1, 1], [0.05, 0, 1.05, 1], [3, 3, 4, 4]], float)
    kps = np.stack([np.full((4, 2), v) for v in (0.0, 1.0, 5.0)])
    scores = np.array([0.9, 0.6, 0.8])
    b, k, s = weighted_nms(boxes, kps, scores, iou_threshold=0.3)
    assert len(s) == 2
    np.testing.assert_allclose(s, [0.9, 0.8])
    np.testing.assert_allclose(k[0], 0.6 / 1.5)  # score-weighted mean of 0 and 1
    np.testing.assert_allclose(b[1], [3, 3, 4, 4])
    assert weighted_nms(np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0))[2].shape == (0,)


def test_box_iou_known_values():
    iou = box_iou(np.array([[0, 0, 2, 2]], float), np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]], float))
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0]])


def test_rois_from_alignment_upright_and_rotated():
    hips = np.array([[500.0, 800.0], [500.0, 800.0]])
    up = np.array([[500.0, 600.0], [700.0, 800.0]])  # straight up; pointing right (lying, head right)
    rois = rois_from_alignment(hips, up)
    np.testing.assert_allclose(rois[:, :2], hips)
    np.testing.assert_allclose(rois[:, 2], 2 * 200 * 1.25)
    np.testing.assert_allclose(rois[:, 3], [0.0, np.pi / 2], atol=1e-12)


def test_image_from_crop_maps_crop_up_to_body_up():
    rois = rois_from_alignment(np.array([[500.0, 800.0]]), np.array([[700.0, 800.0]]))
    M = image_from_crop(rois)
    centre = apply_affine(M, np.array([[[127.5, 127.5]]]))  # crop centre (centre convention)
    np.testing.assert_allclose(centre[0, 0], [500, 800], atol=1e-9)
    top = apply_affine(M, np.array([[[127.5, -0.5]]]))  # top edge of the crop
    np.testing.assert_allclose(top[0, 0], [500 + rois[0, 2] / 2, 800], atol=1e-9)  # = body "up"


def test_refine_with_heatmap_finds_the_peak():
    hm = np.zeros((1, 2, 64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    hm[0, 0] = np.exp(-((xx - 20.3) ** 2 + (yy - 40.0) ** 2) / 2.0)
    hm[0, 1] = 0.1  # below the refinement threshold: unchanged
    start = np.array([[[20 * 4 + 3.0, 40 * 4 - 2.0], [10.0, 10.0]]])
    out = refine_with_heatmap(start, hm)
    # cell (row i, col j) stands for crop point (4 j, 4 i) in edge convention -> -0.5 in centre convention
    np.testing.assert_allclose(out[0, 0], [20.3 * 4 - 0.5, 40.0 * 4 - 0.5], atol=0.05)
    np.testing.assert_allclose(out[0, 1], [10.0, 10.0])


def test_left_right_permutation_is_an_involution():
    p = left_right_permutation(BLAZEPOSE_33)
    np.testing.assert_array_equal(p[p], np.arange(33))
    assert BLAZEPOSE_33[p[J["left_wrist"]]] == "right_wrist" and p[J["nose"]] == J["nose"]


def _walking_track(T: int, rng) -> np.ndarray:
    """A person translating smoothly, left joints on the image right (facing the camera)."""
    base = np.zeros((33, 2))
    for name, i in J.items():
        side = 1 if name.startswith("left") else -1 if name.startswith("right") else 0
        base[i] = [side * 60 + rng.normal(0, 5), i * 20.0]
    xy = base[None] + np.linspace(0, 200, T)[:, None, None]
    return np.concatenate([xy, np.ones((T, 33, 1))], axis=-1)[:, None]  # (T, 1, 33, 3)


def test_fix_left_right_flips_undoes_a_short_flip(rng):
    kp = _walking_track(60, rng)
    perm = left_right_permutation(BLAZEPOSE_33)
    flipped = kp.copy()
    flipped[20:30, 0] = kp[20:30, 0][:, perm]  # the model swaps labels for 10 frames
    flip = fix_left_right_flips(flipped, perm)
    np.testing.assert_array_equal(np.flatnonzero(flip[:, 0]), np.arange(20, 30))
    assert not fix_left_right_flips(kp, perm).any()


def test_fix_left_right_flips_respects_gaps(rng):
    """A 3-frame flip inside a segment is undone; a short segment after a gap, mirrored as a whole,
    is kept as it is: nothing links it to the frames before the gap (the person may have turned
    round while unseen). Bridging the gap would mirror it too: 5 × swap_cost = 0.10 is cheaper
    than the one mirrored step, ~0.19 of the person's size."""
    kp = _walking_track(28, rng)
    perm = left_right_permutation(BLAZEPOSE_33)
    seen = kp.copy()
    seen[8:11, 0] = kp[8:11, 0][:, perm]  # flipped for 3 frames within the first segment
    seen[20:23] = np.nan  # the gap
    seen[23:28, 0] = kp[23:28, 0][:, perm]  # the second segment, mirrored throughout
    expected = np.zeros((28, 1), dtype=bool)
    expected[8:11] = True
    np.testing.assert_array_equal(fix_left_right_flips(seen, perm), expected)


def test_frame_pyramid_warp_identity_and_downscale():
    img = np.zeros((512, 512, 3), np.uint8)
    img[::2] = 200  # stripes that alias when sampled without area averaging
    pyr = FramePyramid(img)
    ident = pyr.warp(np.array([[1.0, 0, 100], [0, 1.0, 50]]), 64)
    np.testing.assert_array_equal(ident, img[50:114, 100:164])
    small = pyr.warp(np.array([[4.0, 0, 1.5], [0, 4.0, 1.5]]), 128)  # whole image at 1/4
    assert abs(float(small.mean()) - 100.0) < 3 and small.std() < 10


def _person_image(torso_bgr, legs_bgr):
    img = np.full((400, 300, 3), 128, np.uint8)
    kp = np.full((33, 3), np.nan)
    pts = {"left_shoulder": (200, 100), "right_shoulder": (100, 100), "left_hip": (190, 220), "right_hip": (110, 220),
           "left_knee": (190, 300), "right_knee": (110, 300), "left_ankle": (190, 380), "right_ankle": (110, 380)}
    for n, (x, y) in pts.items():
        kp[J[n]] = [x, y, 0.9]
    img[100:220, 100:200] = torso_bgr
    img[220:380, 110:190] = legs_bgr
    return img, kp


def test_appearance_separates_clothing_colours():
    img_a, kp = _person_image((0, 0, 220), (220, 0, 0))  # red shirt, blue trousers
    img_b, _ = _person_image((0, 200, 0), (0, 200, 200))  # green shirt, yellow trousers
    da = appearance_descriptors(img_a, kp[None])
    db = appearance_descriptors(img_b, kp[None])
    assert da.shape == (1, DESCRIPTOR_SIZE)
    np.testing.assert_allclose(da[0, :32].sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(appearance_similarity(da, da), [1.0], atol=1e-5)
    assert appearance_similarity(da, db)[0] < 0.2


def test_appearance_nan_for_missing_joints():
    img, kp = _person_image((0, 0, 220), (220, 0, 0))
    kp[J["left_knee"]] = np.nan
    d = appearance_descriptors(img, kp[None])
    assert np.isfinite(d[0, :32]).all() and np.isnan(d[0, 32:]).all()
    assert appearance_descriptors(img, np.zeros((0, 33, 3))).shape == (0, DESCRIPTOR_SIZE)
    with pytest.raises(ValueError, match="keypoints"):
        appearance_descriptors(img, np.zeros((33, 3)))


def test_masks_into_crops_matches_pointwise_resampling(rng):
    from mocap.detect.roi_tracking import masks_into_crops

    src = np.array([[500.0, 400.0, 300.0, 0.2]])
    dst = np.array([[560.0, 430.0, 360.0, -0.5], [5000.0, 5000.0, 300.0, 0.0]])  # overlapping, far away
    mask = np.zeros((1, 256, 256), np.float32)
    mask[0, 60:200, 90:170] = 1.0  # a block in the source crop
    out = masks_into_crops(mask, image_from_crop(src), image_from_crop(dst))
    assert out.shape == (2, 256, 256) and not out[1].any()
    # reference: every destination pixel -> image -> source crop, nearest source pixel
    v, u = np.mgrid[0:256, 0:256]
    img = apply_affine(image_from_crop(dst[:1]), np.stack([u, v], -1).reshape(1, -1, 2).astype(float))[0]
    A = image_from_crop(src)[0]
    uv = np.linalg.solve(A[:, :2], (img - A[:, 2]).T).T.round().astype(int)
    inside = ((uv >= 0) & (uv < 256)).all(axis=1)
    ref = np.zeros(len(uv), np.float32)
    ref[inside] = mask[0, uv[inside, 1], uv[inside, 0]]
    ref = ref.reshape(256, 256)
    assert out[0].sum() > 1000  # the block is seen in the overlapping crop
    assert np.mean(np.abs(out[0] - ref)) < 0.02  # only the block's edges differ (bilinear vs nearest)


def test_duplicate_tracks_keep_the_one_that_did_not_jump():
    from types import SimpleNamespace

    from mocap.detect.blazepose import BlazePoseConfig
    from mocap.detect.roi_tracking import PoseTracker

    tracker = PoseTracker(SimpleNamespace(config=BlazePoseConfig()))
    body = np.zeros((33, 3))
    body[:, 0], body[:, 1] = np.linspace(300, 340, 33), np.linspace(500, 900, 33)
    keypoints = np.stack([body, body + 2.0])  # two tracks on one person: duplicates
    rois = np.array([[320.0, 700.0, 800.0, 0.0], [480.0, 700.0, 820.0, 0.0]])
    next_rois = np.array([[321.0, 700.0, 800.0, 0.0], [330.0, 700.0, 820.0, 0.0]])  # track 1 slid 150 px
    presence = np.array([0.97, 0.999])  # the slid track is (slightly) more confident
    keep = tracker._select(keypoints, presence, rois, next_rois, rank=np.array([0, 0]))
    assert keep.tolist() == [True, False]
    # a new detection never displaces a live track, whatever its presence
    keep = tracker._select(keypoints, presence, rois, next_rois[::-1], rank=np.array([0, 2]))
    assert keep.tolist() == [True, False]


def test_lost_track_frames_must_be_non_negative():
    from mocap.detect.blazepose import BlazePoseConfig

    with pytest.raises(ValueError, match="lost_track_frames"):
        BlazePoseConfig(lost_track_frames=-1)


def test_roi_motion_is_limited_to_what_a_person_can_do_per_second():
    from mocap.detect.roi_tracking import MAX_CENTRE_SPEED, MAX_SCALE_RATE, limit_roi_motion

    prev = np.array([[300.0, 780.0, 770.0, 0.1]] * 3)
    new = np.array([[300.0, 780.0, 1100.0, 0.2],  # a crop sliding onto a larger neighbour: +43 % at once
                    [400.0, 780.0, 770.0, 0.1],  # its centre jumping 100 px (13 % of the ROI) in a frame
                    [302.0, 781.0, 775.0, 0.1]])  # ordinary motion
    out = limit_roi_motion(prev, new, dt=1 / 60)
    assert out[0, 2] == pytest.approx(770.0 * np.exp(MAX_SCALE_RATE / 60))  # grows only at the limit
    assert out[0, 3] == 0.2  # rotation untouched
    assert out[1, 0] - 300.0 == pytest.approx(MAX_CENTRE_SPEED / 60 * 770.0)  # moves at most the limit
    assert out[1, 1] == pytest.approx(780.0)  # along the same direction
    np.testing.assert_allclose(out[2], new[2])  # motion within the limits is kept as is
    # the limits are per second: at 30 fps a frame may change twice as much as at 60 fps
    step60 = np.log(limit_roi_motion(prev, new, 1 / 60)[0, 2] / 770.0)
    step30 = np.log(limit_roi_motion(prev, new, 1 / 30)[0, 2] / 770.0)
    assert step30 == pytest.approx(2 * step60)


def test_other_people_are_masked_only_where_their_mask_exceeds_the_tracks_own():
    """A mixed result's mask covers both people; greying all of it out of the other person's
    crop would hide that person from their own track."""
    from types import SimpleNamespace

    from mocap.detect.blazepose import BlazePoseConfig, image_from_crop
    from mocap.detect.roi_tracking import PoseTracker

    tracker = PoseTracker(SimpleNamespace(config=BlazePoseConfig()))
    rois = np.array([[500.0, 500.0, 256.0, 0.0], [500.0, 500.0, 256.0, 0.0]])  # 1 crop px = 1 image px
    mixed = np.zeros((256, 256), np.float32)
    mixed[50:200, 20:230] = 0.9  # track 0's mask spans both people
    own = np.zeros((256, 256), np.float32)
    own[50:200, 20:110] = 0.95  # track 1's own person, on the left
    tracker._slots, tracker._masks = np.array([0, 1]), np.stack([mixed, own])
    tracker._mask_maps = image_from_crop(rois)
    occ = tracker._occluders(rois, np.array([0, 1]))
    assert occ[1, 60:190, 30:100].max() == 0.0  # track 1's person stays visible in its crop
    assert occ[1, 60:190, 130:220].min() == pytest.approx(0.9, abs=0.01)  # the rest of track 0's mask is hidden
    # from the mixed track, track 1's person (whose own mask is stronger) is hidden, nothing else
    assert occ[0, 60:190, 30:100].min() == pytest.approx(0.95, abs=0.01)
    assert occ[0, :, 120:].max() == 0.0


def test_redetect_seconds_must_be_non_negative():
    from mocap.detect.blazepose import BlazePoseConfig

    with pytest.raises(ValueError, match="redetect_seconds"):
        BlazePoseConfig(redetect_seconds=-0.1)
