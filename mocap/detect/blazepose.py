"""Multi-person top-down BlazePose with LiteRT: detector, rotated regions of interest, landmarks.

Pipeline for one frame (Bazarevsky et al. 2020, "BlazePose: On-device Real-time Body Pose
Tracking", and the published model cards):

1. Detector (``pose_detection.tflite``): the frame letterboxed into 224×224, RGB in [-1, 1];
   SSD decoding and weighted NMS (:mod:`mocap.detect.anchors`) give one detection per person
   with two alignment keypoints: the mid-hip centre and a point at half the body size from it in
   the body's "up" direction.
2. Region of interest (ROI): a square centred on the hips, side 2 × |alignment vector| × 1.25,
   rotated so that the body stands upright in the crop.
3. Landmark model (``pose_landmark_full.tflite``): the 256×256 crop, RGB in [0, 1], gives 39
   landmarks (the 33 BlazePose joints + the 2 alignment points + 4 auxiliary), each
   ``(x, y, z, visibility logit, presence logit)`` in crop pixels, a pose-presence probability, a
   segmentation mask, 64×64×39 heatmap logits and world landmarks. x, y are refined with the
   heatmap (score-weighted mean over a 7×7 window) and mapped back to image pixels.
4. Tracking: the landmarks' alignment points (indices 33, 34) give the next frame's ROI; the
   detector runs only every ``detect_every`` frames, while nobody is tracked, or for
   ``redetect_seconds`` after a track was lost. A track ends when its presence drops below
   ``min_presence``, or when it becomes a duplicate of another (the one that moved less is
   kept). Each crop has the other tracked people greyed out with their previous-frame
   segmentation masks (``mask_other_people``), and a track's ROI changes at most as fast as a
   person moves (``limit_roi_motion``).

Image coordinates follow the project convention (pixel (0, 0) is the centre of the top-left
pixel). ROIs are ``(cx, cy, size, theta)``: centre and side in pixels, ``theta`` the rotation in
radians (clockwise in the image, y down) that makes the person upright.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from mocap.detect.anchors import DETECTOR_INPUT, decode_detections, ssd_anchors, weighted_nms
from mocap.detect.models import ensure_models, sha256_file, verify_model
from mocap.errors import ModelError
from mocap.skeleton.joints import BLAZEPOSE_33, left_right_permutation  # noqa: F401  (used here and by callers)

log = logging.getLogger(__name__)

LANDMARK_INPUT = 256
HEATMAP_SIZE = 64
NUM_LANDMARKS = 33
NUM_OUTPUT_LANDMARKS = 39
ROI_SCALE = 1.25
REFINE_KERNEL = 7
REFINE_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class BlazePoseConfig:
    """Settings of the BlazePose detector."""

    tracking: bool = True
    """Derive each frame's ROI from the previous frame's landmarks (BlazePose's tracking mode)."""
    detect_every: int = 10
    """In tracking mode, also run the person detector every N frames to pick up new people."""
    min_detection_score: float = 0.5
    """Detector score threshold (sigmoid)."""
    nms_iou: float = 0.3
    """IoU above which detector boxes are merged into one person."""
    min_presence: float = 0.5
    """Pose-presence probability below which a person is dropped (and its track ends)."""
    same_person_distance: float = 0.2
    """Two candidates are the same person when their ROI centres (or, after the landmark model,
    their joints, median) are closer than this fraction of the ROI size. Distances, not box
    overlap: people standing in front of each other have overlapping boxes."""
    tile_detection: bool = True
    """Also run the detector on square tiles of the frame (finds smaller people; see
    :func:`~mocap.detect.proposals.tile_regions`)."""
    tile_levels: int = 1
    """Levels of tiles (with ``tile_detection``): the frame's short side (two tiles of a 16:9
    frame), then halves of it with half-tile overlap, down to 112 px (half the detector input:
    at most 2× upsampling). A person 300 px tall in a 1920×1080 frame is 35 px at the
    detector's 224 input in the whole frame, 62 px in a level-1 tile, 124 px in a level-2 one.
    Photos (:func:`~mocap.detect.proposals.detect_people`) use 3. In videos 1 stays the default:
    with 3 on the Pose2Sim balancing trial, cam02 also tracks a woman far in the background
    (real) and a false person on the floor equipment, whose segmentation masks (``mask_other_people``)
    then grey out parts of the performer's crop: his limbs move by 64-83 px in 4 of 100 frames
    and his median limb error against OpenPose rises from 17 to 26 px, and each frame runs the
    landmark model three times. Set 2-3 for wide shots of small performers."""
    tiles_per_run: int = 4
    """In a video, each detector run covers level 1 and this many of the finer tiles, in
    rotation (a 1920×1080 frame has 119 finer tiles: all are covered every ~30 runs, ~5 s at
    60 fps with ``detect_every`` 10); new people found there join the tracks. 0: every tile on
    every run. A photo (:func:`~mocap.detect.proposals.detect_people`) runs every tile."""
    max_people: int = 8
    """At most this many people per frame (highest scores kept)."""
    mask_other_people: bool = True
    """In tracking mode, grey out in each person's crop the pixels that the previous frame's
    segmentation gave to the other people tracked: with two people overlapping in a crop the
    landmark model otherwise mixes their joints or follows the wrong one. Only pixels that another
    person's mask claims more strongly than the track's own mask are greyed (a mixed result's
    mask covers both people; hiding all of it hid the other person from their own crop)."""
    limit_roi_motion: bool = True
    """In tracking mode, a track's next ROI moves and scales at most as fast as a person can
    (see :func:`~mocap.detect.roi_tracking.limit_roi_motion`): a crop drifting onto a neighbour then
    stays on its person. Needs the video's frame rate (``new_tracker(fps)``)."""
    redetect_seconds: float = 0.5
    """In tracking mode, after a track ends, run the detector on every frame for this long (not
    only on the next): a person lost while still in view (partly hidden behind someone, or
    masked out with them) is usually found again within a fraction of a second. Measured on the
    Pose2Sim two-person cam03: 0.25 s and 0.5 s both raise the frames with both people found
    from 82 % to 86 %; the single-person trial is unchanged."""
    lost_track_frames: int = 0
    """In tracking mode, a track that is lost (presence too low, or merged into another track)
    is looked for again at its last ROI in this many following frames, with the other people
    masked; found again, it keeps its slot (the person detector misses people partly hidden
    behind another). 0 (default) disables it: on the Pose2Sim demo, 10 together with
    ``mask_other_people`` made the single-person cam02 worse (median limb error 17 -> 55 px;
    cause not yet found), while the two-person cam03 gained 3 % of frames."""
    refine_with_heatmap: bool = True
    """Refine landmark x, y with the 64×64 heatmaps."""
    keep_heatmaps: bool = False
    """Return the 33 joints' heatmaps (float16) with their heatmap→image transforms."""
    num_threads: int = 1
    """LiteRT CPU threads per interpreter."""
    fix_left_right_flips: bool = True
    """Make left/right labels consistent along each track (see :func:`fix_left_right_flips`)."""

    def __post_init__(self):
        if self.detect_every < 1:
            raise ValueError(f"detect_every: must be >= 1, got {self.detect_every}")
        if not self.redetect_seconds >= 0:
            raise ValueError(f"redetect_seconds: must be >= 0, got {self.redetect_seconds}")
        if self.lost_track_frames < 0:
            raise ValueError(f"lost_track_frames: must be >= 0, got {self.lost_track_frames}")
        if self.tile_levels < 1:
            raise ValueError(f"tile_levels: must be >= 1, got {self.tile_levels}")
        if self.tiles_per_run < 0:
            raise ValueError(f"tiles_per_run: must be >= 0 (0 = every tile), got {self.tiles_per_run}")
        if self.max_people < 1:
            raise ValueError(f"max_people: must be >= 1, got {self.max_people}")


@dataclass
class FrameResult:
    """People found in one frame, in track slots.

    Attributes:
        keypoints: ``(S, 33, 3)`` x px, y px, confidence (landmark visibility); NaN in empty slots.
        scores: ``(S,)`` pose-presence probability; NaN in empty slots.
        rois: ``(S, 4)`` (cx, cy, size, theta) of the crop each person was found in.
        heatmaps: ``(S, 33, 64, 64)`` float16 heatmap probabilities, or None.
        image_from_heatmap: ``(S, 2, 3)`` affine map from heatmap pixel to image pixel, or None.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    rois: np.ndarray
    heatmaps: np.ndarray | None = None
    image_from_heatmap: np.ndarray | None = None
    detector_ran: bool = False


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 inside the block (Python exceptions
    still propagate; only the C++ library's log lines are dropped)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_interpreter(path, key: str, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter

    verify_model(path, key)
    try:
        with quiet_native_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" banner
            interp = Interpreter(model_path=str(path), num_threads=num_threads)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model {path}: LiteRT cannot load it ({exc}); delete it and run `mocap models fetch`") from None
    return interp


def rois_from_alignment(centre_xy: np.ndarray, scale_xy: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """ROIs ``(N, 4)`` (cx, cy, size, theta) from alignment points ``(N, 2)`` each, in pixels.

    The body's "up" vector runs from the centre point to the scale point; the ROI is rotated so
    that it points up in the crop (theta = 90° - angle of the vector, y flipped to point up).
    """
    d = scale_xy - centre_xy
    size = 2.0 * np.hypot(d[:, 0], d[:, 1]) * scale
    theta = np.pi / 2 - np.arctan2(-d[:, 1], d[:, 0])
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    return np.column_stack([centre_xy, size, theta])


def image_from_crop(rois: np.ndarray, crop_size: int = LANDMARK_INPUT) -> np.ndarray:
    """Affine maps ``(N, 2, 3)`` from crop pixel to image pixel (both centre-of-pixel convention)."""
    c, s = np.cos(rois[:, 3]), np.sin(rois[:, 3])
    k = rois[:, 2] / crop_size
    A = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], axis=-2) * k[:, None, None]
    # ROI centre in centre convention; crop u (centre convention) -> edge u + 0.5: img = c + A (u + 0.5 - crop/2)
    b = rois[:, :2] - A @ np.full(2, crop_size / 2.0 - 0.5)
    return np.concatenate([A, b[:, :, None]], axis=-1)


def apply_affine(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``M (N, 2, 3)`` applied to points ``(N, K, 2)``."""
    return np.einsum("nij,nkj->nki", M[:, :, :2], xy) + M[:, None, :, 2]


def roi_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` distance between ROI centres ``a (N, 4)``, ``b (M, 4)`` over their mean size;
    infinite when the sizes differ by more than 1.5× (a far and a near person)."""
    d = np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=-1)
    mean = 0.5 * (a[:, None, 2] + b[None, :, 2])
    ratio = a[:, None, 2] / np.maximum(b[None, :, 2], 1e-9)
    return np.where((ratio < 1.5) & (ratio > 1 / 1.5), d / np.maximum(mean, 1e-9), np.inf)


def refine_with_heatmap(xy_crop: np.ndarray, heat: np.ndarray, kernel: int = REFINE_KERNEL,
                        min_confidence: float = REFINE_MIN_CONFIDENCE) -> np.ndarray:
    """Refine landmarks with their heatmaps: probability-weighted mean cell in a window.

    Heatmap cell ``(row i, column j)`` stands for the crop point ``(4 j, 4 i)`` in edge
    convention (cell index / 64 = normalised crop coordinate). Measured against OpenPose on the
    Pose2Sim demo this convention gives a median limb error of 12-16 px per camera; treating
    cells as centred at ``4 (j + 0.5)`` adds a consistent ~8 px shift (17-20 px).

    Args:
        xy_crop: ``(N, J, 2)`` landmark positions in crop pixels (256 grid).
        heat: ``(N, J, 64, 64)`` heatmap probabilities (rows y, columns x).

    Returns:
        ``(N, J, 2)``; landmarks whose window peak is below ``min_confidence`` are unchanged.
    """
    n, j, h, w = heat.shape
    stride = LANDMARK_INPUT / w
    r = kernel // 2
    centre = np.clip(np.round((xy_crop + 0.5) / stride).astype(int), 0, w - 1)
    offs = np.arange(-r, r + 1)
    cols = np.clip(centre[..., 0:1] + offs, 0, w - 1)  # (N, J, k)
    rows = np.clip(centre[..., 1:2] + offs, 0, h - 1)
    nn, jj = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")
    win = heat[nn[..., None, None], jj[..., None, None], rows[..., :, None], cols[..., None, :]]  # (N, J, k, k)
    total = win.sum(axis=(-1, -2))
    ok = (win.max(axis=(-1, -2)) >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    mean_col = (win.sum(axis=-2) * cols).sum(-1) / safe
    mean_row = (win.sum(axis=-1) * rows).sum(-1) / safe
    refined = np.stack([mean_col * stride - 0.5, mean_row * stride - 0.5], axis=-1)
    return np.where(ok[..., None], refined, xy_crop)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


class FramePyramid:
    """A frame and its 2×-area-downscaled levels, computed on demand (one per frame).

    Crops are warped from the level whose resolution is at most twice the crop's, so the linear
    warp never skips pixels (no aliasing) and no slow fractional area resize is needed.
    """

    def __init__(self, frame_bgr: np.ndarray):
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"frame: expected shape (H, W, 3), got {frame_bgr.shape}")
        self.levels = [frame_bgr]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    def level(self, k: int) -> np.ndarray:
        while len(self.levels) <= k and min(self.levels[-1].shape[:2]) >= 64:
            prev = self.levels[-1]
            self.levels.append(cv2.resize(prev, ((prev.shape[1] + 1) // 2, (prev.shape[0] + 1) // 2),
                                          interpolation=cv2.INTER_AREA))
        return self.levels[min(k, len(self.levels) - 1)]

    def warp(self, image_from_out: np.ndarray, size: int) -> np.ndarray:
        """``(size, size, 3)`` uint8 image sampled through ``image_from_out`` (2×3, centre convention)."""
        scale = np.sqrt(abs(np.linalg.det(image_from_out[:, :2])))
        src = self.level(max(0, int(np.floor(np.log2(max(scale, 1.0))))))
        H, W = self.levels[0].shape[:2]
        sx, sy = src.shape[1] / W, src.shape[0] / H
        M = np.diag([sx, sy]) @ image_from_out  # full-res centre -> level edge -> level centre
        M[:, 2] += np.array([sx, sy]) * 0.5 - 0.5
        return cv2.warpAffine(src, M, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT)


def as_frame_pyramid(frame) -> FramePyramid:
    """``frame`` as a :class:`FramePyramid`: a BGR image ``(H, W, 3)`` uint8 is wrapped, a pyramid
    is returned as it is (so one frame's levels are built once however many steps read it)."""
    return frame if isinstance(frame, FramePyramid) else FramePyramid(np.asarray(frame))


class BlazePose:
    """The two BlazePose models, stateless per frame (see :class:`PoseTracker` for video).

    Args:
        config: :class:`BlazePoseConfig`.
        detector_path, landmark_path: model files; default: the verified cache (fetched if missing).
    """

    def __init__(self, config: BlazePoseConfig | None = None, detector_path=None, landmark_path=None):
        self.config = config or BlazePoseConfig()
        if detector_path is None or landmark_path is None:
            paths = ensure_models()
            detector_path = detector_path or paths["pose_detection"]
            landmark_path = landmark_path or paths["pose_landmark_full"]
        self._det = load_interpreter(detector_path, "pose_detection", self.config.num_threads)
        self._lm = load_interpreter(landmark_path, "pose_landmark_full", self.config.num_threads)
        self.model_sha256 = {"pose_detection": sha256_file(detector_path), "pose_landmark_full": sha256_file(landmark_path)}
        self._anchors = ssd_anchors()
        self.left_right_perm = left_right_permutation(BLAZEPOSE_33)
        det_out = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_boxes, self._det_scores = det_out["Identity"], det_out["Identity_1"]
        lm_out = {d["name"]: d["index"] for d in self._lm.get_output_details()}
        self._lm_idx = (lm_out["Identity"], lm_out["Identity_1"], lm_out["Identity_3"], lm_out["Identity_2"])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return BLAZEPOSE_33

    def new_tracker(self, fps: float | None = None):
        """A fresh per-video :class:`~mocap.detect.roi_tracking.PoseTracker` using these models
        (``fps``: the video's frame rate, for the tracker's per-second motion limits)."""
        from mocap.detect.roi_tracking import PoseTracker

        return PoseTracker(self, fps)

    # -- detector -------------------------------------------------------------------------------
    def detect(self, frame_bgr: np.ndarray, rotation: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """People in one frame by the detector: ``rois (D, 4)`` and ``scores (D,)``, best first.

        With ``tile_detection`` the detector also runs on square tiles of the frame
        (:func:`~mocap.detect.proposals.tile_regions`, ``tile_levels`` levels), which raises the
        resolution it sees: people far from the camera or beside a larger one are found that the
        single letterboxed pass misses. ``rotation`` (the tracker's count of detector runs)
        limits the finer levels to ``tiles_per_run`` tiles, the ``rotation``-th group of them;
        None runs every tile. Detections of the same person from several passes are merged
        (the best score is kept).
        """
        from mocap.detect.proposals import merge_proposals, tile_regions

        frame_bgr = as_frame_pyramid(frame_bgr)
        H, W = frame_bgr.shape[:2]
        regions = [(0, 0, W, H)]
        if self.config.tile_detection:
            tiles = tile_regions(W, H, DETECTOR_INPUT // 2, self.config.tile_levels)
            first = tiles[:, 2] == min(W, H)
            fine = tiles[~first]
            n = self.config.tiles_per_run
            if rotation is not None and n and len(fine) > n:
                fine = fine[(np.arange(n) + rotation * n) % len(fine)]
            regions += [tuple(int(v) for v in r) for r in np.concatenate([tiles[first], fine])]
        rois, scores = zip(*(self.detect_region(frame_bgr, *r) for r in regions))
        rois, scores = merge_proposals(np.concatenate(rois), np.concatenate(scores), self.config.same_person_distance)
        return rois[: self.config.max_people], scores[: self.config.max_people]

    def detect_region(self, pyramid: FramePyramid, x0: int, y0: int, W: int, H: int,
                      hidden: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Detector on the sub-image ``[y0:y0+H, x0:x0+W]`` letterboxed to 224×224; ROIs in frame pixels.

        ``hidden``: optional ``(masks (K, m, m), image_from_mask (K, 2, 3))`` person probabilities
        on landmark crops; the pixels they cover are blended towards mid-grey (people already
        found hidden from the detector, so that someone behind them can be found).
        """
        s = DETECTOR_INPUT / max(W, H)
        ox, oy = (DETECTOR_INPUT - W * s) / 2, (DETECTOR_INPUT - H * s) / 2
        # input pixel (edge) u -> frame pixel (edge) (u - o) / s + x0; both shifted to centre convention
        image_from_input = np.array([[1 / s, 0, (0.5 - ox) / s + x0 - 0.5], [0, 1 / s, (0.5 - oy) / s + y0 - 0.5]])
        crop = pyramid.warp(image_from_input, DETECTOR_INPUT).astype(np.float32)
        if hidden is not None:
            from mocap.detect.roi_tracking import masks_into_crops

            w = masks_into_crops(hidden[0], hidden[1], image_from_input[None], DETECTOR_INPUT)[0, ..., None]
            crop = crop * (1.0 - w) + np.float32(127.5) * w
        self._det.set_tensor(self._det.get_input_details()[0]["index"], crop[None, ..., ::-1] / 127.5 - 1.0)
        self._det.invoke()
        boxes, kps, scores = decode_detections(self._det.get_tensor(self._det_boxes)[0],
                                               self._det.get_tensor(self._det_scores)[0],
                                               self._anchors, self.config.min_detection_score)
        _, kps, scores = weighted_nms(boxes, kps, scores, self.config.nms_iou)
        # detector input (normalised, edge convention) -> frame pixels (centre convention)
        kp_img = (kps * DETECTOR_INPUT - np.array([ox, oy])) / s + np.array([x0, y0]) - 0.5
        return rois_from_alignment(kp_img[:, 0], kp_img[:, 1]), scores

    # -- landmarks ------------------------------------------------------------------------------
    def landmarks(self, frame_bgr: np.ndarray, rois: np.ndarray, masked: np.ndarray | None = None) -> dict:
        """Landmarks of the people in ``rois (N, 4)``.

        ``masked``: optional ``(N, 256, 256)`` weights in [0, 1] per crop pixel; each crop is
        blended towards mid-grey by them (other people hidden from the model).

        Returns a dict: ``keypoints (N, 33, 3)`` image px + visibility, ``presence (N,)``,
        ``next_rois (N, 4)`` for the next frame, ``heatmaps (N, 33, 64, 64)`` probabilities,
        ``image_from_heatmap (N, 2, 3)``, ``segmentation (N, 256, 256)`` float32 person
        probability per crop pixel, ``image_from_crop (N, 2, 3)``.
        """
        n = len(rois)
        M = image_from_crop(rois)
        crops = self._crops(as_frame_pyramid(frame_bgr), M)
        if masked is not None and n:
            w = np.asarray(masked, np.float32)[..., None]
            crops = crops * (1.0 - w) + np.float32(0.5) * w
        raw = np.empty((n, NUM_OUTPUT_LANDMARKS * 5), np.float32)
        presence = np.empty(n)
        heat = np.empty((n, NUM_LANDMARKS, HEATMAP_SIZE, HEATMAP_SIZE), np.float32)
        seg = np.empty((n, LANDMARK_INPUT, LANDMARK_INPUT), np.float32)
        inp = self._lm.get_input_details()[0]["index"]
        for i in range(n):  # the model runs one crop at a time (batching measured slower on CPU)
            self._lm.set_tensor(inp, crops[i:i + 1])
            self._lm.invoke()
            raw[i] = self._lm.get_tensor(self._lm_idx[0])[0]
            presence[i] = self._lm.get_tensor(self._lm_idx[1]).ravel()[0]
            heat[i] = np.moveaxis(self._lm.get_tensor(self._lm_idx[2])[0, :, :, :NUM_LANDMARKS], -1, 0)
            seg[i] = self._lm.get_tensor(self._lm_idx[3])[0, :, :, 0]
        lm = raw.reshape(n, NUM_OUTPUT_LANDMARKS, 5).astype(np.float64)
        heat = _sigmoid(heat)
        xy_crop = lm[:, :, :2] - 0.5  # model outputs edge-convention crop coordinates
        if self.config.refine_with_heatmap and n:
            xy_crop[:, :NUM_LANDMARKS] = refine_with_heatmap(xy_crop[:, :NUM_LANDMARKS], heat)
        xy = apply_affine(M, xy_crop)
        vis = _sigmoid(lm[:, :NUM_LANDMARKS, 3])
        keypoints = np.concatenate([xy[:, :NUM_LANDMARKS], vis[..., None]], axis=-1)
        next_rois = rois_from_alignment(xy[:, 33], xy[:, 34]) if n else np.zeros((0, 4))
        hm_scale = LANDMARK_INPUT / HEATMAP_SIZE
        # heatmap cell h -> crop pixel (centre convention) h * stride - 0.5 -> image
        image_from_heatmap = np.concatenate([M[:, :, :2] * hm_scale,
                                             (M[:, :, 2] - 0.5 * M[:, :, :2].sum(-1))[..., None]], axis=-1)
        return dict(keypoints=keypoints, presence=presence, next_rois=next_rois, heatmaps=heat,
                    image_from_heatmap=image_from_heatmap, segmentation=_sigmoid(seg).astype(np.float32),
                    image_from_crop=M)

    @staticmethod
    def _crops(pyramid: FramePyramid, M: np.ndarray) -> np.ndarray:
        """Rotated ROI crops ``(N, 256, 256, 3)`` RGB float32 in [0, 1] through ``M (N, 2, 3)``."""
        out = np.empty((len(M), LANDMARK_INPUT, LANDMARK_INPUT, 3), np.float32)
        for i in range(len(M)):  # one warp per person
            out[i] = pyramid.warp(M[i], LANDMARK_INPUT)[..., ::-1] * np.float32(1.0 / 255.0)
        return out

