"""User-supplied top-down pose models (RTMPose, ViTPose and the like) run with onnxruntime.

People are found and followed by BlazePose (:class:`~mocap.detect.roi_tracking.PoseTracker`); each
person's box (the bounding box of their BlazePose landmarks, padded by ``box_padding`` and
widened to the model's aspect ratio) is cropped upright, resized to the model input and
normalised (RGB, ``(pixel - mean) / std``, NCHW), and the model's output is decoded:

- **SimCC** heads (two outputs ``(1, K, W·s)`` and ``(1, K, H·s)``): keypoint x, y = argmax / s,
  the split ratio ``s`` read from the output lengths; confidence = mean of the two maxima.
- **Heatmap** heads (one output ``(1, K, h, w)``): argmax cell with a quarter-cell shift towards
  the higher neighbour, scaled to the input; confidence = the maximum.

Confidences are clipped to [0, 1]; keypoints below ``min_confidence`` are NaN. Joint names come
from ``joint_names``, or a sidecar ``<model>.toml`` (``[points] name = index``, as caliscope
writes them, with ``[model] format``, ``input_size = [w, h]``, ``confidence_threshold``), or
COCO-17 when the model has 17 keypoints.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mocap.detect.blazepose import BlazePose, BlazePoseConfig, FramePyramid, FrameResult
from mocap.detect.models import sha256_file
from mocap.errors import ModelError
from mocap.skeleton.joints import COCO_17

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxConfig:
    """Settings of the ONNX top-down backend."""

    head: str = "auto"
    """``simcc``, ``heatmap`` or ``auto`` (two outputs: SimCC, one 4-D output: heatmap)."""
    joint_names: tuple[str, ...] | None = None
    """Names of the model's keypoints (default: sidecar TOML, else COCO-17 for 17 keypoints)."""
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    """RGB mean subtracted from 0-255 pixels (ImageNet, as RTMPose and ViTPose use)."""
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    """RGB standard deviation the pixels are divided by."""
    box_padding: float = 1.25
    """Person box scale around the landmarks' bounding box."""
    min_confidence: float | None = None
    """Keypoints below this are NaN (default: sidecar ``confidence_threshold``, else 0)."""
    num_threads: int = 1
    """onnxruntime intra-op threads."""
    keep_heatmaps: bool = False
    """Unused by this backend (kept for a uniform interface)."""

    def __post_init__(self):
        if self.head not in ("auto", "simcc", "heatmap"):
            raise ValueError(f"head: unknown value {self.head!r}; expected one of 'auto', 'simcc', 'heatmap'")


def _sidecar(path: Path) -> dict:
    toml = path.with_suffix(".toml")
    if not toml.is_file():
        return {}
    try:
        return tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model description {toml}: not valid TOML ({exc}); fix or remove it") from None


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """SimCC vectors ``(N, K, Lx)``, ``(N, K, Ly)`` -> ``(N, K, 3)`` x, y (input px), confidence."""
    sx = simcc_x.shape[-1] / input_size[0]
    sy = simcc_y.shape[-1] / input_size[1]
    x = np.argmax(simcc_x, axis=-1) / sx
    y = np.argmax(simcc_y, axis=-1) / sy
    conf = 0.5 * (simcc_x.max(axis=-1) + simcc_y.max(axis=-1))
    return np.stack([x, y, np.clip(conf, 0.0, 1.0)], axis=-1)


def decode_heatmaps(heatmaps: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Heatmaps ``(N, K, h, w)`` -> ``(N, K, 3)`` x, y (input px, centre convention), confidence."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, axis=-1)
    row, col = np.divmod(idx, w)
    nn, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    # quarter-cell shift towards the larger neighbour (the classic sub-cell refinement)
    right = heatmaps[nn, kk, row, np.minimum(col + 1, w - 1)]
    left = heatmaps[nn, kk, row, np.maximum(col - 1, 0)]
    down = heatmaps[nn, kk, np.minimum(row + 1, h - 1), col]
    up = heatmaps[nn, kk, np.maximum(row - 1, 0), col]
    fx = col + 0.25 * np.sign(right - left)
    fy = row + 0.25 * np.sign(down - up)
    x = (fx + 0.5) * input_size[0] / w - 0.5
    y = (fy + 0.5) * input_size[1] / h - 0.5
    return np.stack([x, y, np.clip(flat.max(axis=-1), 0.0, 1.0)], axis=-1)


class OnnxPose:
    """An ONNX top-down pose model plus BlazePose for finding people.

    Args:
        path: the ``.onnx`` file (a sidecar ``.toml`` beside it is read when present).
        config: :class:`OnnxConfig`.
        person: how people are found and tracked (:class:`~mocap.detect.blazepose.BlazePoseConfig`).
    """

    def __init__(self, path, config: OnnxConfig | None = None, person: BlazePoseConfig | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.config = config or OnnxConfig()
        if not self.path.is_file():
            raise ModelError(f"ONNX model {self.path}: file not found")
        meta = _sidecar(self.path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.config.num_threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"ONNX model {self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or not all(isinstance(d, int) for d in inp.shape[2:]):
            raise ModelError(f"ONNX model {self.path}: input {inp.name} has shape {inp.shape}; expected (N, 3, H, W) with fixed H, W")
        self._input = inp.name
        self.input_size = (int(inp.shape[3]), int(inp.shape[2]))  # (w, h)
        self.head = self._head(meta)
        self.joint_names = self._names(meta)
        threshold = meta.get("model", {}).get("confidence_threshold", 0.0)
        self.min_confidence = float(self.config.min_confidence if self.config.min_confidence is not None else threshold)
        self.model_sha256 = {"onnx": sha256_file(self.path)}
        self.people = BlazePose(person or BlazePoseConfig())
        self.model_sha256.update(self.people.model_sha256)
        self.left_right_perm = None

    def _head(self, meta: dict) -> str:
        head = self.config.head
        if head == "auto":
            head = meta.get("model", {}).get("format", "")
            if head not in ("simcc", "heatmap"):
                head = "simcc" if len(self.session.get_outputs()) >= 2 else "heatmap"
        outs = self.session.get_outputs()
        if head == "simcc" and len(outs) < 2:
            raise ModelError(f"ONNX model {self.path}: a SimCC head needs two outputs (x, y), found {len(outs)}")
        if head == "heatmap" and len(outs[0].shape) != 4:
            raise ModelError(f"ONNX model {self.path}: a heatmap head needs an (N, K, h, w) output, found {outs[0].shape}")
        return head

    def _names(self, meta: dict) -> tuple[str, ...]:
        k = self.session.get_outputs()[0].shape[1]
        if self.config.joint_names is not None:
            names = tuple(self.config.joint_names)
        elif "points" in meta:
            names = tuple(n for n, _ in sorted(meta["points"].items(), key=lambda kv: kv[1]))
        elif k == 17:
            names = COCO_17
        else:
            raise ModelError(f"ONNX model {self.path}: {k} keypoints and no names; pass joint_names or add "
                             f"a {self.path.with_suffix('.toml').name} with a [points] table")
        if isinstance(k, int) and len(names) != k:
            raise ModelError(f"ONNX model {self.path}: {len(names)} joint names for {k} keypoints")
        return names

    def new_tracker(self, fps: float | None = None) -> OnnxTracker:
        return OnnxTracker(self, self.people.new_tracker(fps))

    def person_boxes(self, keypoints: np.ndarray) -> np.ndarray:
        """Upright crop windows ``(N, 2, 3)`` (image from input, centre convention) around people ``(N, J, 3)``."""
        w_in, h_in = self.input_size
        lo, hi = np.nanmin(keypoints[..., :2], axis=1), np.nanmax(keypoints[..., :2], axis=1)
        centre = 0.5 * (lo + hi)
        size = (hi - lo) * self.config.box_padding
        aspect = w_in / h_in  # widen or heighten the box to the model's aspect ratio
        size = np.where((size[:, :1] / np.maximum(size[:, 1:], 1e-9)) > aspect,
                        np.column_stack([size[:, 0], size[:, 0] / aspect]),
                        np.column_stack([size[:, 1] * aspect, size[:, 1]]))
        k = size[:, 0] / w_in
        M = np.zeros((len(keypoints), 2, 3))
        M[:, 0, 0] = M[:, 1, 1] = k
        M[:, :, 2] = centre - k[:, None] * (np.array([w_in, h_in]) / 2.0 - 0.5)
        return M

    def estimate(self, frame: FramePyramid, image_from_input: np.ndarray) -> np.ndarray:
        """Keypoints ``(N, K, 3)`` in image pixels for the crop windows ``(N, 2, 3)``."""
        w_in, h_in = self.input_size
        mean = np.array(self.config.mean, np.float32)
        std = np.array(self.config.std, np.float32)
        out = np.full((len(image_from_input), len(self.joint_names), 3), np.nan)
        for i, M in enumerate(image_from_input):  # one person per run (fixed-batch models are common)
            crop = self._crop(frame, M, w_in, h_in)[..., ::-1].astype(np.float32)
            x = ((crop - mean) / std).transpose(2, 0, 1)[None]
            res = self.session.run(None, {self._input: np.ascontiguousarray(x)})
            kp = decode_simcc(res[0], res[1], self.input_size) if self.head == "simcc" else decode_heatmaps(res[0], self.input_size)
            out[i] = kp[0]
        xy = np.einsum("nij,nkj->nki", image_from_input[:, :, :2], out[..., :2]) + image_from_input[:, None, :, 2]
        out[..., :2] = xy
        out[out[..., 2] < self.min_confidence] = np.nan
        return out

    def detect_people(self, frame, **proposal_options) -> dict:
        """Every person in one image (no tracking): found by BlazePose's proposals
        (:func:`~mocap.detect.proposals.detect_people`, ``proposal_options`` passed on), their
        keypoints ``(N, K, 3)`` by this model; ``presence (N,)`` and ``rois (N, 4)`` BlazePose's."""
        from mocap.detect.blazepose import as_frame_pyramid
        from mocap.detect.proposals import detect_people

        pyramid = as_frame_pyramid(frame)
        people = detect_people(self.people, pyramid, **proposal_options)
        kp = np.full((len(people["presence"]), len(self.joint_names), 3), np.nan)
        if len(kp):
            kp = self.estimate(pyramid, self.person_boxes(people["keypoints"]))
        return dict(keypoints=kp, presence=people["presence"], rois=people["rois"])

    @staticmethod
    def _crop(frame: FramePyramid, M: np.ndarray, w: int, h: int) -> np.ndarray:
        side = max(w, h)
        return frame.warp(M, side)[:h, :w]


@dataclass
class OnnxTracker:
    """Per-video state: BlazePose finds and follows people, the ONNX model gives their keypoints."""

    model: OnnxPose
    people: object

    def step(self, frame_bgr: np.ndarray) -> FrameResult:
        frame = FramePyramid(frame_bgr)
        found = self.people.step(frame)
        present = np.isfinite(found.scores)
        kp = np.full((len(found.scores), len(self.model.joint_names), 3), np.nan)
        if present.any():
            kp[present] = self.model.estimate(frame, self.model.person_boxes(found.keypoints[present]))
        return FrameResult(kp, found.scores, found.rois, detector_ran=found.detector_ran)
