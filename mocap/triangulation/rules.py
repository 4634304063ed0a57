"""The decision rules and numerical thresholds of triangulation, named once for both backends.

The numpy path reads these constants; the compiled kernels (``backend="numba"``) receive them as
one argument, :data:`KERNEL_RULES` (not as frozen globals: numba's on-disk cache is keyed on the
kernel's source file only and would keep stale values after an edit here).
"""

from __future__ import annotations

from typing import NamedTuple

from mocap.geometry.lens import UNDISTORT_MAX_ITERATIONS, UNDISTORT_TOLERANCE

#: A 3D point needs at least this many (weighted) views; a RANSAC hypothesis or an inlier refit
#: supported by fewer is no hypothesis.
MIN_VIEWS = 2

# -- the closed-form DLT solve (dlt.solve_normal) ---------------------------------------------------
#: Inverse-iteration steps every point takes (each shrinks the error by lambda_min / lambda_2).
DLT_ITERATIONS = 2
#: Steps at most for points still moving; the rest go to ``eigh``.
DLT_MAX_ITERATIONS = 12
#: A step moving the point by less than this (relative to 1 + |X|, normalised world) ends it.
DLT_TOLERANCE = 1e-13
#: The 3x3 block ``B`` of the normal matrix counts as invertible when ``|det B| > this * (tr B / 3)^3``
#: (its eigenvalues within ~1e10 of each other); else ``eigh`` (rays nearly parallel, point near infinity).
CONDITION_DET_RATIO = 1e-10
#: Robust step 1 (all views): steps at most and tolerance before the views are read; a point
#: still moving then is finished exactly only if its views all agree (else RANSAC replaces it).
STEP1_MAX_ITERATIONS = 3
STEP1_TOLERANCE = 1e-10

# -- RANSAC over view pairs (robust step 2) --------------------------------------------------------
#: Two rays within ~1e-5 rad of parallel (``a c - b^2 <= this * a c``) give no depth.
PARALLEL_RAYS = 1e-10
#: A hypothesis backed by a strict majority of the views, and at least this many, is final: no
#: other consensus set can outvote it (also the rule that accepts a relabelled joint's old estimate).
MAJORITY_MIN_INLIERS = 4
#: View pairs scored per batch while many (point, pair) hypotheses remain.
RANSAC_BATCH = 4
#: Adaptive exit (Fischler & Bolles): stop once the chance that no tried pair was outlier-free is
#: below ``1 - RANSAC_CONFIDENCE``.
RANSAC_CONFIDENCE = 0.99
#: When at most this many (point, pair) hypotheses are left, they are scored in one batch: for a
#: few hard points the fixed cost of each batch (some 40 numpy calls) dominates.
TAIL_HYPOTHESES = 16384

# -- projection ------------------------------------------------------------------------------------
#: Points at most this far in front of a camera (metres) do not project (NaN reprojection error).
MIN_DEPTH = 1e-9

# -- left/right check (robust steps 4-5) -----------------------------------------------------------
#: A view's limb is relabelled when exchanged it costs less than this fraction of its labelled cost ...
SWAP_GAIN = 0.5
#: ... and one of its labelled joints fails (truncated cost at least this fraction of the threshold).
SWAP_FAILS = 0.999
#: Step 7: a view's limb (after the left/right checks) with at least this share of its joints ...
LIMB_MISFIT = 0.75
#: ... over this many thresholds from the final 3D limb still misses it and is left out of the
#: limb's joints. A few random outliers are not a made-up limb: the first rule tried (half the
#: joints over one threshold, as labelled and exchanged) lost up to 2.6 mm at 20 % outliers in
#: ``mocap bench triangulate`` (4 cameras: 21.9 -> 23.7 and 43.7 -> 46.3 mm); this one loses none ...
LIMB_MISFIT_TAU = 2.0
#: ... provided at least this many other views fit the limb (so a wrong estimate does not throw
#: out the views that disagree with it).
LIMB_FITTING_VIEWS = 2
#: Frames whose estimates predict a frame in the temporal check (median over the finite ones).
TEMPORAL_OFFSETS = (-2, -1, 1, 2)


class KernelRules(NamedTuple):
    """The constants above as one argument of the compiled kernels (see the module docstring)."""

    min_views: int
    dlt_iterations: int
    dlt_max_iterations: int
    dlt_tolerance: float
    condition_det_ratio: float
    step1_max_iterations: int
    step1_tolerance: float
    parallel_rays: float
    majority_min_inliers: int
    min_depth: float
    swap_gain: float
    swap_fails: float
    limb_misfit: float
    limb_misfit_tau: float
    limb_fitting_views: int
    undistort_max_iterations: int
    undistort_tolerance: float


KERNEL_RULES = KernelRules(
    min_views=MIN_VIEWS, dlt_iterations=DLT_ITERATIONS, dlt_max_iterations=DLT_MAX_ITERATIONS,
    dlt_tolerance=DLT_TOLERANCE, condition_det_ratio=CONDITION_DET_RATIO, step1_max_iterations=STEP1_MAX_ITERATIONS,
    step1_tolerance=STEP1_TOLERANCE, parallel_rays=PARALLEL_RAYS, majority_min_inliers=MAJORITY_MIN_INLIERS,
    min_depth=MIN_DEPTH, swap_gain=SWAP_GAIN, swap_fails=SWAP_FAILS, limb_misfit=LIMB_MISFIT,
    limb_misfit_tau=LIMB_MISFIT_TAU, limb_fitting_views=LIMB_FITTING_VIEWS,
    undistort_max_iterations=UNDISTORT_MAX_ITERATIONS, undistort_tolerance=UNDISTORT_TOLERANCE,
)
