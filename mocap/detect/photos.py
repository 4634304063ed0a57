"""Scoring a 2D detector on photos with keypoint ground truth (COCO's object keypoint similarity).

The shared photo sets (``images_2d/mmpose_testdata``: COCO, CrowdPose, OCHuman, PoseTrack18)
annotate different keypoints; the 12 limb keypoints (shoulders, elbows, wrists, hips, knees,
ankles) are common to all four, so a detection is scored on those only. OKS (Ronchi & Perona
2017, the COCO keypoint challenge's metric) over the labelled limb keypoints ``i`` of a person
of area ``s²``: ``mean_i exp(-d_i² / (2 s² k_i²))``, ``k_i = 2 σ_i`` with COCO's per-keypoint
``σ`` (shoulders .079, elbows .072, wrists .062, hips .107, knees .087, ankles .089). The area is
the annotation's ``area`` (COCO, OCHuman: the segmentation's), or its box ``w × h`` where it has
none (CrowdPose, PoseTrack), as those sets' own evaluations do.

People and detections are matched one to one (Hungarian assignment on OKS); a person is found
when their detection's OKS is at least ``min_oks``. A detection matched to nobody counts as
extra, unless it lies on an annotated person without keypoints (``num_keypoints == 0``: a
person the set marks as too small or too hidden to label; COCO's evaluation ignores those too)
or in one of PoseTrack's ignore regions (the crowds it leaves unannotated, which its own
evaluation ignores). People a set does not annotate at all (OCHuman labels only some of the
people in a photo) do count as extra.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from mocap.skeleton.joints import BLAZEPOSE_33

LIMBS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
         "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
#: COCO's per-keypoint OKS sigmas of the 12 limb keypoints, in ``LIMBS`` order.
LIMB_SIGMAS = np.array([0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089])
BLAZEPOSE_LIMBS = np.array([BLAZEPOSE_33.index(n) for n in LIMBS])


def limb_columns(joint_names, model: str = "the model") -> np.ndarray:
    """Indices of the 12 :data:`LIMBS` in a detector's ``joint_names`` (a photo is scored on those)."""
    missing = [n for n in LIMBS if n not in joint_names]
    if missing:
        raise ValueError(f"{model}: has no {', '.join(missing)} keypoints; the photo score needs the 12 limb "
                         "keypoints (shoulders to ankles; name them in the model's .toml [points] table)")
    return np.array([list(joint_names).index(n) for n in LIMBS])

#: The shared sets: annotation file(s) and the folder their ``file_name`` is relative to.
PHOTO_SETS = {
    "COCO": (("coco/test_coco.json",), "coco"),
    "CrowdPose": (("crowdpose/test_crowdpose.json",), "crowdpose"),
    "OCHuman": (("ochuman/test_ochuman.json",), "ochuman"),
    "PoseTrack": (("posetrack18/annotations/test_posetrack18_val.json",), "posetrack18"),
}


@dataclass(frozen=True)
class Photo:
    """One photo and its annotated people."""

    set_name: str
    path: Path
    keypoints: np.ndarray
    """``(P, 12, 3)`` limb keypoints x, y px and visibility flag (0: not labelled)."""
    area: np.ndarray
    """``(P,)`` px² (the OKS scale ``s²``)."""
    ignore_boxes: np.ndarray
    """``(Q, 4)`` x, y, w, h of annotated people without keypoints."""
    ignore_regions: tuple = ()
    """Polygons ``(V, 2)`` px the set leaves unannotated (PoseTrack's ``ignore_regions``: crowds)."""


def load_photos(root: str | Path) -> list[Photo]:
    """Every photo of the four shared sets under ``root`` (``images_2d/mmpose_testdata``), with the
    people that have at least one labelled limb keypoint (35 in the shared data)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"photo sets {root}: not a folder (expected ../shared/data/images_2d/mmpose_testdata)")
    photos = []
    for set_name, (files, folder) in PHOTO_SETS.items():
        for name in files:
            doc = json.loads((root / name).read_text())
            names = doc["categories"][0]["keypoints"]
            cols = [names.index(n) for n in LIMBS]
            for image in sorted(doc["images"], key=lambda i: i["file_name"]):
                anns = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
                kp = np.array([np.reshape(a["keypoints"], (-1, 3))[cols] for a in anns], float).reshape(-1, 12, 3)
                has = (kp[..., 2] > 0).any(-1)
                area = np.array([a.get("area") or a["bbox"][2] * a["bbox"][3] for a in anns], float)
                ignore = np.array([a["bbox"] for a in anns if not a.get("num_keypoints")], float).reshape(-1, 4)
                regions = _ignore_regions(root / folder, image["file_name"])
                photos.append(Photo(set_name, root / folder / image["file_name"], kp[has], area[has], ignore, regions))
    return photos


def _ignore_regions(folder: Path, file_name: str) -> tuple:
    """PoseTrack's per-video files (``annotations/val/<video>.json``) give each frame's regions
    left unannotated (``ignore_regions_x``, ``ignore_regions_y``); other sets have none."""
    video = folder / "annotations" / "val" / f"{Path(file_name).parent.name}.json"
    if not video.is_file():
        return ()
    for image in json.loads(video.read_text())["images"]:
        if image["file_name"] == file_name:
            return tuple(np.column_stack([x, y]).astype(np.float32)
                         for x, y in zip(image.get("ignore_regions_x", []), image.get("ignore_regions_y", [])) if len(x) >= 3)
    return ()


def oks(detected_xy: np.ndarray, truth: np.ndarray, area: np.ndarray) -> np.ndarray:
    """``(D, P)`` OKS of detections ``(D, 12, 2)`` px (NaN: not given) against people
    ``truth (P, 12, 3)`` with areas ``(P,)`` (module docstring); a keypoint the detector did not
    give scores 0."""
    d2 = np.sum((detected_xy[:, None] - truth[None, :, :, :2]) ** 2, axis=-1)  # (D, P, 12)
    k2 = (2 * LIMB_SIGMAS) ** 2
    e = np.exp(-d2 / (2 * np.maximum(area, 1.0)[None, :, None] * k2))
    e = np.where(np.isfinite(e), e, 0.0)
    labelled = truth[None, :, :, 2] > 0
    return (e * labelled).sum(-1) / np.maximum(labelled.sum(-1), 1)


@dataclass(frozen=True)
class PhotoScore:
    """How a detector did on one photo."""

    people: int
    found: int
    """People matched with OKS >= ``min_oks``."""
    found_oks: np.ndarray
    """``(found,)`` OKS of the people found."""
    extra: int
    """Detections matched to nobody (those on a person annotated without keypoints excepted)."""


def score_photo(photo: Photo, detected_xy: np.ndarray, min_oks: float = 0.5) -> PhotoScore:
    """Match detections ``(D, 12, 2)`` (limb keypoints, px) to ``photo``'s people one to one."""
    P, D = len(photo.keypoints), len(detected_xy)
    sim = oks(detected_xy, photo.keypoints, photo.area) if D and P else np.zeros((D, P))
    rows, cols = linear_sum_assignment(-sim) if D and P else (np.zeros(0, int), np.zeros(0, int))
    good = sim[rows, cols] >= min_oks
    matched = set(rows[good].tolist())
    extra = 0
    for d in range(D):
        if d in matched:
            continue
        if not (_on_ignored_person(detected_xy[d], photo.ignore_boxes)
                or _in_ignored_region(detected_xy[d], photo.ignore_regions)):
            extra += 1
    return PhotoScore(P, int(good.sum()), sim[rows, cols][good], extra)


def _in_ignored_region(xy: np.ndarray, regions: tuple) -> bool:
    """Whether most of a detection's keypoints ``(12, 2)`` lie inside one of the polygons."""
    import cv2

    p = xy[np.isfinite(xy).all(-1)]
    for poly in regions:
        if len(p) and np.mean([cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in p]) > 0.5:
            return True
    return False


def _on_ignored_person(xy: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether most of a detection's keypoints ``(12, 2)`` lie in one of ``boxes (Q, 4)`` x, y, w, h."""
    ok = np.isfinite(xy).all(-1)
    if not len(boxes) or not ok.any():
        return False
    p = xy[ok]
    inside = ((p[:, None, 0] >= boxes[:, 0]) & (p[:, None, 0] <= boxes[:, 0] + boxes[:, 2])
              & (p[:, None, 1] >= boxes[:, 1]) & (p[:, None, 1] <= boxes[:, 1] + boxes[:, 3]))
    return bool((inside.mean(0) > 0.5).any())
