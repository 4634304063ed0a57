"""Person proposals for multi-person scenes, and one detection per person from the landmark model.

BlazePose's person detector sees the frame letterboxed into 224×224: a person 300 px tall in a
1920×1080 frame is 35 px there, their face a few pixels, below what its anchors resolve. A wide
shot of several performers is not what it was made for. The proposals here are cheap places to
run the landmark model, from several sources:

- **Tiles** (:func:`tile_regions`): the detector over overlapping square tiles of the frame at
  halving sizes, the first the frame's short side, down to ``min_tile`` px (default half the
  detector input, so a tile is upsampled at most 2×, the bound the landmark crops keep). From
  the second level on, tiles overlap by half, so a person up to half a tile's side lies whole
  in one. The levels follow from the detector's input size and the frame, not from any photo.
- **Faces** (:class:`FaceDetector`, optional): MediaPipe's full-range face detector (192×192,
  faces up to about 5 m), run on the frame and on the first ``face_levels`` levels of tiles;
  each face becomes a body ROI through the ratios in :func:`body_rois_from_faces`. Measured on
  the shared photos it found nobody the tiles had not (``mocap bench detect --photos --faces``),
  so it is off by default and its model file is fetched only when asked for.
- the previous frame's landmarks (:mod:`.roi_tracking`) and the other cameras' 3D
  (:mod:`.cross_view`), outside this module.

Proposals of the same person (ROI centres within ``same_person_distance`` of the ROI size) are
merged before the landmark model runs, so it runs about once per person; its output is then
de-duplicated on what the model itself says (:func:`landmark_nms`): pose presence, the overlap
of the people's segmentation masks, the agreement of their body joints, and whether one lies
within the other's body (:func:`containment`: a crop of someone's arm or upper body returns a
smaller "person" drawn on them). Last, people partly hidden behind those found are looked for
with the people found greyed out (:func:`find_hidden_people`).

Measured on the shared photos (``mocap bench detect --photos --cameras 0``, 35 people in 12
photos): tiles and landmark NMS alone 24 found at OKS >= 0.5, 1.33 extra detections per photo;
with containment 24 and 0.83; with the hidden-people pass too 27 (77 %) and 0.83, mean OKS 0.830,
at the same CPU time per photo (the containment pass drops duplicates before the last landmark
pass, which pays for the extra detector runs). Most extras left are real people the sets do not
annotate (OCHuman labels one or two people per photo).
"""

from __future__ import annotations

import logging

import numpy as np

from mocap.detect.anchors import DETECTOR_INPUT, weighted_nms
from mocap.detect.blazepose import FramePyramid, as_frame_pyramid, image_from_crop, roi_distance
from mocap.detect.roi_tracking import BODY_JOINTS, keypoint_distance, masks_into_crops

log = logging.getLogger(__name__)

FACE_INPUT = 192
#: Full-range face detector: one 48×48 grid (stride 4), one anchor per cell, boxes and 6
#: keypoints (eyes, nose tip, mouth, ears) relative to the anchor centre in input pixels.
FACE_GRID = 48
FACE_KEYPOINTS = 6
#: A body ROI from a face box of width ``f``: centred ``FACE_TO_HIPS · f`` below the face centre
#: (along the eyes→mouth direction), ``FACE_TO_ROI · f`` across. Measured as BlazePose's own
#: tracking ROIs against this detector's faces on the Pose2Sim videos (median 3.4 and 12.1, 10th-90th
#: percentile 3.1-3.8 and 10.5-13.1); anthropometry agrees (a head is 1/7.5 of a standing
#: height, a face box about 0.7 of the head, the ROI 1.25 heights: 13 face widths).
FACE_TO_HIPS = 3.4
FACE_TO_ROI = 12.0


def tile_regions(width: int, height: int, min_tile: int = DETECTOR_INPUT // 2, max_levels: int = 3) -> np.ndarray:
    """Square tiles ``(N, 4)`` (x0, y0, side, side) px covering a ``width × height`` frame, level
    by level (coarse first).

    Level 1 has the frame's short side and ``ceil(long / short)`` tiles along the long side
    (two for a 16:9 or 9:16 frame; none for a square frame, which is the whole frame the caller
    runs anyway); each next level halves the side, down to ``min_tile`` (default half the
    detector input: a tile is upsampled at most 2×, the same bound the landmark crops keep) and
    at most ``max_levels`` levels. From level 2 on, tiles start at equal steps of at most half a
    side, first and last flush with the frame's edges, so a person up to half a tile across lies
    whole in one.
    """
    if width < 1 or height < 1:
        raise ValueError(f"frame size: expected positive width and height, got {width}x{height}")
    out = []
    side = min(width, height)
    for level in range(max_levels):
        if side < min_tile:
            break
        step, slack = (side, 0.05) if level == 0 else (side / 2, 0.0)  # level 1 exactly as earlier versions
        xs, ys = _starts(width, side, step, slack), _starts(height, side, step, slack)
        if len(xs) * len(ys) > 1:
            gx, gy = np.meshgrid(xs, ys)
            out.append(np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, side), np.full(gx.size, side)]))
        side //= 2
    return np.concatenate(out).astype(int) if out else np.zeros((0, 4), int)


def _starts(length: int, side: int, step: float, slack: float) -> np.ndarray:
    """Tile starts along one axis: at most ``step`` apart (``(1 + slack) step``), first 0, last
    ``length - side``; rounded down to whole pixels so that no gap exceeds the step."""
    if length <= side:
        return np.zeros(1, int)
    n = int(np.ceil((length - side) / step - slack)) + 1
    return np.linspace(0, length - side, n).round().astype(int)


def merge_proposals(rois: np.ndarray, scores: np.ndarray, same_person_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy suppression of ROIs ``(N, 4)`` of the same person (centres closer than
    ``same_person_distance`` of their mean size, sizes within 1.5×), best score first."""
    order = np.argsort(-scores)
    rois, scores = rois[order], scores[order]
    near = roi_distance(rois, rois) < same_person_distance
    keep = np.ones(len(rois), dtype=bool)
    for i in range(len(rois)):  # over proposals (tens), not anchors
        if keep[i]:
            dup = near[i].copy()
            dup[: i + 1] = False
            keep &= ~dup
    return rois[keep], scores[keep]


def landmark_nms(keypoints: np.ndarray, presence: np.ndarray, rois: np.ndarray, segmentation: np.ndarray,
                 image_from_crop: np.ndarray, *, min_presence: float, same_person_distance: float,
                 max_mask_overlap: float, rank: np.ndarray | None = None,
                 max_containment: float = 1.0) -> np.ndarray:
    """Which landmark results to keep so that one person is one detection.

    Args:
        keypoints: ``(N, 33, 3)`` px and visibility; presence: ``(N,)``; rois: ``(N, 4)``.
        segmentation: ``(N, 256, 256)`` person probability per crop pixel, with
            ``image_from_crop (N, 2, 3)``.
        min_presence: results below it are dropped.
        same_person_distance: two results whose body joints lie closer than this (median, over
            the mean ROI size; :func:`~mocap.detect.roi_tracking.keypoint_distance`) are one person.
        max_mask_overlap: ... and so are two whose segmentation masks overlap by more than this
            (intersection over the smaller mask) while their joints are within twice the distance:
            the same body found from two crops gives nearly the same mask, two people side by
            side give two masks, however close their joints.
        rank: ``(N,)`` lower wins among duplicates before presence does (tracked before new).
        max_containment: ... and so are two of which one lies within the other's body by more
            than this (:func:`containment`): a crop of one person's arm or upper body returns a
            whole, smaller "person" drawn on their body (its mask and joints inside theirs),
            wherever its joints lie. Among duplicates the one the model is surest of wins:
            presence times the mean visibility of the body joints (a partial view has its
            guessed joints at low visibility), so a large crop straddling several people does
            not swallow the people it straddles.

    Returns:
        ``(N,)`` bool.
    """
    keep = presence >= min_presence
    n = len(presence)
    if keep.sum() < 2:
        return keep
    dist = keypoint_distance(keypoints, rois[:, 2])
    same = dist < same_person_distance
    close = (dist < 2 * same_person_distance) & ~same
    if close.any() and max_mask_overlap < 1:
        same |= close & (mask_overlap(segmentation, image_from_crop) > max_mask_overlap)
    score = presence
    if max_containment < 1:
        inside = containment(keypoints, segmentation, image_from_crop)
        same |= np.maximum(inside, inside.T) > max_containment
        score = presence * keypoints[:, BODY_JOINTS, 2].mean(axis=1)
    rank = np.zeros(n) if rank is None else rank
    for i in np.lexsort((-score, rank)):  # greedy over people (a handful)
        if keep[i]:
            dup = same[i] & keep
            dup[i] = False
            keep &= ~dup
    return keep


def containment(keypoints: np.ndarray, segmentation: np.ndarray, image_from_crop: np.ndarray,
                threshold: float = 0.5, core: float = 0.9) -> np.ndarray:
    """``(N, N)``: how far person ``i`` lies within person ``j``'s body, the mean of two shares:
    of ``i``'s mask (probability > ``threshold``) inside ``j``'s body, and of ``i``'s 33 landmarks
    on ``j``'s body; ``j``'s body is where ``j``'s mask is surest (probability > ``core``). 1 on
    the diagonal.

    A partial view of a person (a crop of their arm or upper body) returns a smaller "person"
    whose mask and joints lie on the whole person's mask; a person partly hidden behind another
    has most of their visible mask off the other's, and two people side by side share little.
    A mask spills onto a neighbour at low probability, hence the core: on the shared photos two
    skiers one behind the other lie 0.84 within each other with ``core`` 0.5, 0.74 with 0.9,
    while most partial views (crops of an arm or an upper body) lie 0.85-1.0 within their person.
    """
    n = len(segmentation)
    masks = segmentation > threshold
    area = np.maximum(masks.sum(axis=(1, 2)), 1)
    crop_from_image = np.linalg.inv(np.concatenate([image_from_crop, np.tile([0.0, 0.0, 1.0], (n, 1, 1))], axis=1))[:, :2]
    size = segmentation.shape[-1]
    out = np.eye(n)
    for j in range(n):  # person j's mask in every crop, and every person's landmarks in crop j
        body = segmentation[j] > core
        seen = masks_into_crops(body[None].astype(np.float32), image_from_crop[j:j + 1], image_from_crop) > 0.5
        mask_share = (seen & masks).sum(axis=(1, 2)) / area
        uv = np.round(keypoints[:, :, :2] @ crop_from_image[j, :, :2].T + crop_from_image[j, :, 2]).astype(int)
        ok = ((uv >= 0) & (uv < size)).all(-1)
        on = ok & body[np.clip(uv[..., 1], 0, size - 1), np.clip(uv[..., 0], 0, size - 1)]
        col = 0.5 * (mask_share + on.mean(axis=1))
        col[j] = 1.0
        out[:, j] = col
    return out


def mask_overlap(segmentation: np.ndarray, image_from_crop: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``(N, N)`` overlap of the people's masks (probability > ``threshold``): the intersection
    over the smaller mask, each mask drawn into the other's crop."""
    n = len(segmentation)
    masks = (segmentation > threshold).astype(np.float32)
    area = np.maximum(masks.sum(axis=(1, 2)), 1.0)  # in each own crop's pixels
    out = np.zeros((n, n))
    for j in range(n):  # mask j seen in every crop i (one warp per pair that can overlap)
        seen = masks_into_crops(masks[j:j + 1], image_from_crop[j:j + 1], image_from_crop) > 0.5
        inter = (seen & (masks > 0)).sum(axis=(1, 2))  # (N,) in crop i's pixels
        scale = np.abs(np.linalg.det(image_from_crop[:, :, :2]))  # image px² per crop px
        inter_img = inter * scale
        out[:, j] = inter_img / np.minimum(area * scale, area[j] * scale[j])
    np.fill_diagonal(out, 1.0)
    return np.minimum(out, out.T)


def body_rois_from_faces(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Body ROIs ``(F, 4)`` (cx, cy, size, theta) from face ``boxes (F, 4)`` and face
    ``keypoints (F, 6, 2)`` px: the body hangs below the face along its eyes→mouth direction."""
    f = boxes[:, 2] - boxes[:, 0]
    down = keypoints[:, 3] - keypoints[:, :2].mean(axis=1)
    down = down / np.maximum(np.linalg.norm(down, axis=-1, keepdims=True), 1e-9)
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:]) + FACE_TO_HIPS * f[:, None] * down
    theta = np.pi / 2 - np.arctan2(down[:, 1], -down[:, 0])  # up = -down, y flipped (rois_from_alignment)
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    return np.column_stack([centre, FACE_TO_ROI * f, theta])


def detector_proposals(model, pyramid: FramePyramid, regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The person detector over the whole frame and ``regions (N, 4)``: ROIs ``(D, 4)`` and
    scores ``(D,)`` in frame pixels (not merged)."""
    H, W = pyramid.shape[:2]
    found = [model.detect_region(pyramid, 0, 0, W, H)]
    found += [model.detect_region(pyramid, *map(int, r)) for r in regions]
    rois, scores = zip(*found)
    return np.concatenate(rois), np.concatenate(scores)


def detect_people(model, frame, *, min_tile: int = DETECTOR_INPUT // 2, max_levels: int = 3,
                  max_mask_overlap: float = 0.5, max_containment: float = 0.8, mask_others: bool = False,
                  hidden_people: bool = True, faces: FaceDetector | None = None, face_levels: int = 2) -> dict:
    """Every person in one image (no tracking).

    1. Proposals: the person detector on the whole frame and its tiles (:func:`tile_regions`),
       optionally faces; the same person's proposals merged (:func:`merge_proposals`).
    2. The landmark model once per proposal; its landmarks give each a new ROI (as the tracker's
       next frame would), merged again. A proposal's ROI is often off (a partial view, a box
       from a neighbour's face), the ROI from the landmarks is BlazePose's own.
    3. The landmark model on those ROIs, :func:`landmark_nms`.
    4. Once more per person kept, on the ROI their landmarks give (a real person's crop
       converges onto them, a crop between two people drifts onto one and becomes their
       duplicate), and :func:`landmark_nms` again (with ``max_containment``: a partial view
       inside a person is that person). With ``mask_others`` the other people are greyed out in
       that pass (:func:`occluder_masks`, as the tracker does in a video); on the shared photos
       it found 25 people against 27 (1.00 extra per photo against 0.83), so it is off here.
    5. With ``hidden_people``: :func:`find_hidden_people` (on the shared photos 24 -> 27 people
       found, no extra detection added). ``max_containment``: 0.75-0.85 all give 27 people and
       0.83 extras per photo there (0.7: 26; 0.9: 1.00 extras; 1, off: 1.33).

    Returns :meth:`~mocap.detect.blazepose.BlazePose.landmarks`' dict for the people kept, plus
    ``rois (N, 4)`` the crops they were found in.
    """
    cfg = model.config
    pyramid = as_frame_pyramid(frame)
    H, W = pyramid.shape[:2]
    rois, scores = detector_proposals(model, pyramid, tile_regions(W, H, min_tile, max_levels))
    if faces is not None:
        found = [faces.detect_region(pyramid, 0, 0, W, H)]
        found += [faces.detect_region(pyramid, *map(int, r)) for r in tile_regions(W, H, min_tile, face_levels)]
        b, k, sc = (np.concatenate(a) for a in zip(*found))
        rois, scores = np.concatenate([rois, body_rois_from_faces(b, k)]), np.concatenate([scores, sc])
    rois, _ = merge_proposals(rois, scores, cfg.same_person_distance)
    first = model.landmarks(pyramid, rois)
    rois, _ = merge_proposals(first["next_rois"], first["presence"], cfg.same_person_distance)
    nms = dict(max_mask_overlap=max_mask_overlap, max_containment=max_containment)
    out = _kept(model, model.landmarks(pyramid, rois), rois, **nms)
    if len(out["rois"]):
        rois = out["next_rois"]
        masks = occluder_masks(out["segmentation"], out["image_from_crop"], rois) if mask_others else None
        out = _kept(model, model.landmarks(pyramid, rois, masks), rois, **nms)
    if hidden_people and len(out["rois"]):
        out = find_hidden_people(model, pyramid, out, nms)
    return out


def find_hidden_people(model, pyramid: FramePyramid, found: dict, nms: dict) -> dict:
    """People partly hidden behind those ``found`` (:func:`detect_people`'s dict).

    The person detector runs once more over each person's box with every person found greyed
    out (their segmentation masks): with the front person gone, the one behind them is what is
    left to detect. New proposals (not the same as a person found, :func:`merge_proposals`' rule)
    go through the landmark model twice (on the proposal, then on the ROI its landmarks give),
    each time with the people found greyed out, so that the model takes the person behind and
    not the one in front; :func:`landmark_nms` then keeps the people found first. Costs one
    detector run per person found, and the landmark model only where someone new is proposed.
    """
    cfg = model.config
    hidden = (found["segmentation"], found["image_from_crop"])
    H, W = pyramid.shape[:2]
    rois, scores = [], []
    for cx, cy, size, _ in found["rois"]:
        x0, y0 = int(max(cx - size / 2, 0)), int(max(cy - size / 2, 0))
        w, h = int(min(cx + size / 2, W)) - x0, int(min(cy + size / 2, H)) - y0
        if min(w, h) >= DETECTOR_INPUT // 4:
            r, sc = model.detect_region(pyramid, x0, y0, w, h, hidden)
            rois.append(r)
            scores.append(sc)
    if not rois or not sum(map(len, rois)):
        return found
    rois, scores = merge_proposals(np.concatenate(rois), np.concatenate(scores), cfg.same_person_distance)
    rois = rois[~(roi_distance(rois, found["rois"]) < cfg.same_person_distance).any(axis=1)]
    for _ in range(2):  # on the proposal, then on the ROI the landmarks give
        if not len(rois):
            return found
        new = model.landmarks(pyramid, rois, masks_into_crops(*hidden, image_from_crop(rois)))
        new["rois"] = rois
        rois = new["next_rois"][new["presence"] >= cfg.min_presence]
    both = {k: np.concatenate([found[k], new[k]]) for k in found}
    keep = landmark_nms(both["keypoints"], both["presence"], both["rois"], both["segmentation"], both["image_from_crop"],
                        min_presence=cfg.min_presence, same_person_distance=cfg.same_person_distance / 2,
                        rank=np.r_[np.zeros(len(found["rois"])), np.ones(len(new["rois"]))], **nms)
    return {k: v[keep] for k, v in both.items()}


def _kept(model, out: dict, rois: np.ndarray, max_mask_overlap: float, max_containment: float) -> dict:
    cfg = model.config
    keep = landmark_nms(out["keypoints"], out["presence"], rois, out["segmentation"], out["image_from_crop"],
                        min_presence=cfg.min_presence, same_person_distance=cfg.same_person_distance / 2,
                        max_mask_overlap=max_mask_overlap, max_containment=max_containment)
    return {k: v[keep] for k, v in out.items()} | {"rois": rois[keep]}


def occluder_masks(segmentation: np.ndarray, image_from_mask: np.ndarray, rois: np.ndarray) -> np.ndarray | None:
    """``(N, 256, 256)`` for person ``i``'s new crop ``rois[i]``: the pixels the *other* people's
    masks ``segmentation (N, 256, 256)`` (on crops ``image_from_mask (N, 2, 3)``) claim more
    strongly than person ``i``'s own mask does (as the tracker masks); None when nobody overlaps."""
    n = len(rois)
    crops = image_from_crop(rois)
    out = np.zeros((n, 256, 256), np.float32)
    own = np.zeros_like(out)
    for k in range(n):  # each person into every crop (a handful of warps per overlapping pair)
        seen = masks_into_crops(segmentation[k:k + 1], image_from_mask[k:k + 1], crops)
        others = np.arange(n) != k
        out[others] = np.maximum(out[others], seen[others])
        own[k] = seen[k]
    out[own >= out] = 0.0
    return out if out.any() else None


class FaceDetector:
    """MediaPipe's full-range face detector (``face_detection_full_range_sparse.tflite``):
    faces ``boxes (F, 4)`` (x0, y0, x1, y1 px), ``keypoints (F, 6, 2)`` px (right eye, left eye,
    nose tip, mouth, right ear, left ear) and ``scores (F,)`` in a region of a frame."""

    def __init__(self, path=None, num_threads: int = 1, min_score: float = 0.6, nms_iou: float = 0.3):
        from mocap.detect.blazepose import load_interpreter
        from mocap.detect.models import model_path

        path = path or model_path("face_detection_full_range")
        self._interp = load_interpreter(path, "face_detection_full_range", num_threads)
        self._input = self._interp.get_input_details()[0]["index"]
        out = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self._boxes, self._scores = out["Identity"], out["Identity_1"]
        cells = (np.arange(FACE_GRID) + 0.5) / FACE_GRID
        gy, gx = np.meshgrid(cells, cells, indexing="ij")
        self._anchors = np.column_stack([gx.ravel(), gy.ravel()])
        self.min_score, self.nms_iou = min_score, nms_iou

    def detect_region(self, pyramid: FramePyramid, x0: int, y0: int, W: int, H: int):
        """Faces in the sub-image ``[y0:y0+H, x0:x0+W]`` letterboxed to 192×192, in frame pixels."""
        s = FACE_INPUT / max(W, H)
        ox, oy = (FACE_INPUT - W * s) / 2, (FACE_INPUT - H * s) / 2
        image_from_input = np.array([[1 / s, 0, (0.5 - ox) / s + x0 - 0.5], [0, 1 / s, (0.5 - oy) / s + y0 - 0.5]])
        crop = pyramid.warp(image_from_input, FACE_INPUT)
        self._interp.set_tensor(self._input, crop[None, ..., ::-1].astype(np.float32) / 127.5 - 1.0)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._boxes)[0].astype(np.float64)
        logits = np.clip(self._interp.get_tensor(self._scores)[0].reshape(-1), -100, 100)
        score = 1 / (1 + np.exp(-logits.astype(np.float64)))
        ok = score >= self.min_score
        raw, centre, score = raw[ok] / FACE_INPUT, self._anchors[ok], score[ok]
        xy, half = raw[:, :2] + centre, raw[:, 2:4] / 2
        boxes = np.concatenate([xy - half, xy + half], axis=1)
        kps = raw[:, 4:4 + 2 * FACE_KEYPOINTS].reshape(-1, FACE_KEYPOINTS, 2) + centre[:, None]
        boxes, kps, score = weighted_nms(boxes, kps, score, self.nms_iou)
        to_frame = lambda p: (p * FACE_INPUT - np.array([ox, oy])) / s + np.array([x0, y0]) - 0.5  # noqa: E731
        return to_frame(boxes.reshape(-1, 2, 2)).reshape(-1, 4), to_frame(kps), score
