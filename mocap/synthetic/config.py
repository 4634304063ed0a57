"""Configuration of a synthetic scene: motion, rig and the 2D detector's error model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mocap._checks import check_choice
from mocap.skeleton.joints import KEYPOINT_FORMATS
from mocap.synthetic.motion import Placement

_RATES = ("occlusion_drop_rate", "outlier_rate", "swap_rate", "miss_rate", "spurious_rate")


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic scene; the same config always gives the same scene."""

    seed: int = 0
    """Seed of every random draw (``numpy.random.default_rng``)."""
    num_frames: int = 300
    """Number of frames ``T``."""
    fps: float = 30.0
    """Scene frame rate; the CMU clips (120 Hz) are resampled to it."""
    num_people: int = 2
    """Number of people ``P``."""
    clips: tuple[str, ...] = ("131_01", "131_03", "01_01")
    """CMU clips (``motion/cmu/<clip>.bvh`` in the shared data, or ``<folder>/<name>`` for
    ``motion/<folder>/<name>.bvh``, e.g. ``cmu_more/05_06``); person p plays ``clips[p % len]``."""
    placements: tuple[Placement, ...] | None = None
    """Explicit placement per person (overrides ``clips`` and the random placement) or None."""
    placement_radius: float = 0.8
    """Random placements put each person's mean position uniformly in a disc of this radius (m)."""
    keypoint_format: str = "body_25b"
    """Joints the detector reports: ``body_25``, ``body_25b``, ``coco_17``, ``blazepose_33`` or
    ``canonical`` (all canonical joints)."""

    num_cameras: int = 4
    """Cameras in the default ring rig (ignored when a rig is passed to ``make_scene``)."""
    rig_radius: float = 4.5
    """Ring radius, metres."""
    camera_height: float = 2.2
    """Mean camera height, metres."""
    focal_range: tuple[float, float] = (900.0, 1800.0)
    """Focal lengths are drawn uniformly from this range, pixels."""
    image_size: tuple[int, int] = (1920, 1080)
    """Image ``(width, height)``, pixels."""
    distortion: bool = True
    """Give the ring cameras realistic lens distortion."""

    noise_px: float = 3.0
    """Standard deviation (px, per axis) of keypoint noise for a person ``reference_height_px``
    tall in the image; it scales with the person's apparent height. 0 turns noise off."""
    reference_height_px: float = 500.0
    """Apparent person height (bounding-box height, px) at which the noise is ``noise_px``."""
    per_joint_noise: bool = True
    """Scale the noise per joint like COCO's keypoint sigmas (eyes ≈ 0.35×, hips ≈ 1.5× the mean)."""
    noise_correlation: float = 0.0
    """Frame-to-frame AR(1) correlation of the noise, in [0, 1) (0 = independent per frame)."""
    confidence_max: float = 0.95
    """Confidence of an exact detection."""
    confidence_scale: float = 0.02
    """Error, as a fraction of the person's apparent height, at which confidence falls to
    ``exp(-1/2)·confidence_max`` (an OKS-like similarity, so bigger errors mean lower confidence)."""
    confidence_jitter: float = 0.05
    """Relative random jitter of every confidence (0 = none)."""

    occlusion: bool = True
    """Hide or degrade joints behind another person's body (depth-ordered capsule test)."""
    occlusion_drop_rate: float = 0.5
    """Fraction of occluded joints reported missing (NaN); the others are degraded."""
    occluded_noise_px: float = 15.0
    """Extra noise σ (px at ``reference_height_px``) of degraded occluded joints."""
    occluded_confidence_scale: float = 0.4
    """Degraded occluded joints have their confidence multiplied by this."""
    out_of_frame: bool = True
    """Report joints whose projection falls outside the image (or behind the camera) as NaN."""
    outlier_rate: float = 0.01
    """Probability that a reported joint is thrown to a random place within 1.5× its person's box."""
    outlier_confidence: tuple[float, float] = (0.3, 0.9)
    """Outliers' confidence is uniform in this range (detectors are often sure of wrong answers)."""
    swap_rate: float = 0.01
    """Probability that a detection has all its left/right labels swapped."""
    miss_rate: float = 0.02
    """Probability that a visible person is not detected in a view at a frame."""
    spurious_rate: float = 0.02
    """Probability that a view at a frame gets one extra, fake person (a pose pasted elsewhere)."""
    spurious_confidence_scale: float = 0.6
    """Fake people's confidences are multiplied by this."""
    shuffle: bool = True
    """Shuffle the detection order per view and frame (detectors follow no person order)."""

    def __post_init__(self):
        if self.num_frames < 1 or self.num_people < 1 or self.fps <= 0:
            raise ValueError(f"num_frames, num_people: expected >= 1 and fps > 0, got "
                             f"{self.num_frames}, {self.num_people}, {self.fps}")
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value}")
        if not 0.0 <= self.noise_correlation < 1.0:
            raise ValueError(f"noise_correlation: expected [0, 1), got {self.noise_correlation}")
        if self.noise_px < 0 or self.occluded_noise_px < 0 or self.reference_height_px <= 0:
            raise ValueError("noise_px, occluded_noise_px: expected >= 0; reference_height_px > 0")
        if self.confidence_scale <= 0:
            raise ValueError(f"confidence_scale: expected > 0, got {self.confidence_scale}")
        check_choice(self.keypoint_format, (*KEYPOINT_FORMATS, "canonical"), "keypoint_format")
        if self.placements is not None and len(self.placements) != self.num_people:
            raise ValueError(f"placements: expected {self.num_people} (num_people), got {len(self.placements)}")
        if not self.clips:
            raise ValueError("clips: expected at least one CMU clip name")
        object.__setattr__(self, "clips", tuple(self.clips))

    def without_errors(self) -> "SyntheticConfig":
        """This config with every detector error source off (exact projections, fixed order)."""
        return dataclasses.replace(
            self, noise_px=0.0, confidence_jitter=0.0, occlusion=False, out_of_frame=False,
            outlier_rate=0.0, swap_rate=0.0, miss_rate=0.0, spurious_rate=0.0, shuffle=False)

    def replace(self, **changes) -> "SyntheticConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict) -> "SyntheticConfig":
        """Build from a plain dict (e.g. YAML); unknown keys are rejected."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"synthetic config: unknown keys {unknown}; allowed: {', '.join(sorted(fields))}")
        values = dict(values)
        for key in ("clips", "focal_range", "image_size", "outlier_confidence"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("placements") is not None:
            values["placements"] = tuple(Placement(**p) if isinstance(p, dict) else p for p in values["placements"])
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain-data form (lists and dicts), the inverse of :meth:`from_dict`."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out
