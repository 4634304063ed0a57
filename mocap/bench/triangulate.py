"""Triangulation accuracy and speed: plain DLT, ours (weighted + robust), aniposelib 0.8.0.

Synthetic studio (``mocap.synthetic``: real CMU motion, ring rig with lens distortion, detector
noise that scales with the person's size, gross outliers, whole-detection left/right swaps,
missed detections), one person. **Association is given** (the ground-truth detection of the
person in each view); only triangulation is measured. Every method gets the same 2D points in
the same run. aniposelib's ``triangulate_ransac`` loops over points and camera subsets in Python,
so it runs on a seeded random subset of the points within a time budget; the accuracy ratio
against it is taken on that same subset. MPJPE is over the joints every method triangulated;
PCK@50 mm counts a joint a method left out as a miss.

``learned`` (when torch is installed): robust first, then the learned algebraic triangulation with
the shipped weights (:mod:`mocap.triangulation.learned`); the table is held out from its training
(:mod:`mocap.train.data`: other CMU clips, rigs, noise levels and outlier rates; seeds below
``TRAIN_SEED_BASE``), and gives its MPJPE against ours (robust) and the time per person-frame.

``volumetric`` (when torch is installed, unless ``--no-volumetric``): robust, then learned
algebraic, then the volumetric per-joint refinement with the shipped weights
(:mod:`mocap.triangulation.volumetric`), on its own held-out table under heavy occlusion and
outliers (:data:`HEAVY`: three performers, person 0 measured), 4 and 8 cameras: MPJPE of learned
and volumetric against ours and ms per person-frame.

Also the real 4-camera Pose2Sim balancing trial with its Qualisys calibration: median
reprojection error per camera and the coefficient of variation of bone lengths, ours against
Pose2Sim's own TRC; with torch, robust, learned and volumetric (:data:`REAL_METHODS`) each with
every camera left out in turn (held-out-view reprojection) and their bone-length CV, on the
balancing trial and on both performers of the two-person take, with a verdict per camera whether
learned and volumetric are no worse than robust (:data:`NO_WORSE_RULE`: a block-bootstrap interval
against a tolerance fixed beforehand, :func:`no_worse_than_robust`); then the session adaptation
(``mocap train algebraic --session``, its defaults or ``--adapt KEY=VALUE``) on the balancing trial,
scored per person and camera on its held-out frames and on the two-person take, with block-bootstrap
intervals of each change (:func:`pose2sim_adaptation_transfer`; ``--only-adaptation`` for these alone).
Learned and volumetric run as shipped, with their inference-time guard (``triangulate.learned_guard``,
:func:`mocap.triangulation.learned.robust_guard`); the session-adapted rows are not guarded.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict

import numpy as np

from mocap.evaluate import bone_length_cv
from mocap.io.keypoints import Keypoints2D
from mocap.paths import shared_data_dir
from mocap.triangulation.people import TriangulateConfig, triangulate_frames, triangulate_single_person
from mocap.triangulation import triangulate_dlt

log = logging.getLogger(__name__)

#: Bones whose length should not change over a capture (canonical joint names).

POSE2SIM_TRIAL = "sessions/pose2sim_demo/S00_P00_SingleParticipant/S00_P00_T01_BalancingTrial"

#: Triangulation methods of the real-take tables (robust first: the others are measured against it).
REAL_METHODS = ("robust", "learned", "volumetric")


def add_arguments(parser) -> None:
    parser.add_argument("--cameras", type=int, nargs="+", default=[4, 8], help="camera counts (default 4 8)")
    parser.add_argument("--noise", type=float, nargs="+", default=[2.0, 5.0],
                        help="2D noise sigma, px for a 500 px tall person (default 2 5)")
    parser.add_argument("--outliers", type=float, nargs="+", default=[0.0, 0.1, 0.2], help="outlier rates")
    parser.add_argument("--swap-rate", type=float, default=0.1, help="left/right swap rate when swaps are on")
    parser.add_argument("--frames", type=int, default=300, help="frames per scenario (x 25 joints)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--ransac-seconds", type=float, default=6.0,
                        help="time budget per scenario for aniposelib's triangulate_ransac (Python loop)")
    parser.add_argument("--no-anipose", action="store_true", help="skip aniposelib")
    parser.add_argument("--no-temporal-swap-check", action="store_true",
                        help="ours without the temporal left/right check (triangulate.temporal_swap_check)")
    parser.add_argument("--no-real", action="store_true", help="skip the Pose2Sim real-data figures")
    parser.add_argument("--per-frame", action="store_true",
                        help="every frame alone: ours without the temporal left/right check, learned without "
                             "the neighbouring frames' evidence (as when matching candidates are triangulated)")
    parser.add_argument("--no-volumetric", action="store_true",
                        help="skip the volumetric triangulation table (heavy occlusion and outliers; run when torch is installed)")
    parser.add_argument("--no-learned", action="store_true",
                        help="skip the learned algebraic triangulation (run when torch is installed)")
    parser.add_argument("--adapt", action="append", metavar="KEY=VALUE",
                        help="a setting of the session adaptation in the real part (mocap.train.adapt.AdaptConfig, "
                             "e.g. trainable=all); repeatable")
    parser.add_argument("--only-adaptation", action="store_true",
                        help="only the session-adaptation figures of the real part (needs torch)")
    parser.add_argument("--adaptation-detections", choices=("openpose", "blazepose"), default="openpose",
                        help="the session adaptation's 2D input: the takes' OpenPose JSON (default) or our BlazePose "
                             "detections of their videos (detected once into the cache, ~30 s)")
    parser.add_argument("--adaptation-selection", action="store_true",
                        help="also the cross-validation inside the balancing trial's training frames that chose "
                             "the adaptation's defaults (mocap.train.adapt.cross_validate; a few minutes)")


# -- metrics ----------------------------------------------------------------------------------

def median_reprojection_per_camera(rig, points: np.ndarray, person: np.ndarray, min_confidence: float) -> list[float]:
    """Median over frames and joints of the pixel distance between ``points (T, J, 3)``
    reprojected and the detections ``person (T, C, J, 3)`` with confidence >= ``min_confidence``."""
    from mocap.geometry import project_rig

    proj = np.moveaxis(project_rig(rig, points), 2, 1)  # (T, C, J, 2)
    err = np.linalg.norm(proj - person[..., :2], axis=-1)
    err = np.where(person[..., 2] >= min_confidence, err, np.nan)
    return [float(np.nanmedian(err[:, c])) for c in range(len(rig))]


def _pck_mpjpe(pred, gt, common):
    err = np.linalg.norm(pred - gt, axis=-1)
    has_gt = np.isfinite(gt).all(-1)
    pck = float(np.mean(np.nan_to_num(err[has_gt], nan=np.inf) < 0.05))
    return float(np.mean(err[common]) * 1000), pck, float(np.isfinite(err[has_gt]).mean())


# -- synthetic --------------------------------------------------------------------------------

def _scenario(C, noise, outliers, swap_rate, frames, seed):
    from mocap.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=seed, num_frames=frames, num_people=1, num_cameras=C,
                                       noise_px=noise, outlier_rate=outliers, swap_rate=swap_rate))
    is_p0 = scene.gt_person_index == 0  # (T, C, P')
    pick = np.argmax(is_p0, axis=-1)
    data = np.take_along_axis(scene.keypoints.data, pick[..., None, None, None], axis=2)  # (T, C, 1, J, 3)
    data[~is_p0.any(-1)] = np.nan
    kp = Keypoints2D(data, scene.keypoints.joint_names, scene.keypoints.camera_names, scene.fps)
    return scene, kp


def _anipose_group(rig):
    import cv2
    from aniposelib.cameras import Camera as ACamera, CameraGroup

    return CameraGroup([ACamera(matrix=c.K, dist=c.dist, size=c.size, rvec=cv2.Rodrigues(c.R)[0].ravel(),
                                tvec=c.t, name=c.name) for c in rig])


def _timed(fn, repeat: int = 1):
    """``(result, best wall time of repeat calls)``: the best of a few resists a loaded machine."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _timed_interleaved(fns: dict, rounds: int = 7) -> tuple[dict, dict]:
    """Call every function of ``fns`` once per round, in turn, and keep each one's best wall
    time: methods compared in the same run see the same machine load (it is shared), which
    back-to-back blocks of repeats do not guarantee. Returns ``(results, best seconds)``."""
    out, best = {}, {k: np.inf for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return out, best


def _ours_inputs(kp, config):
    """What :func:`triangulate_single_person` passes to ``triangulate_frames`` (association excluded
    from the timing, as it is for the other methods)."""
    from mocap.triangulation.people import most_confident_person, view_thresholds
    from mocap.triangulation import left_right_limbs

    person = most_confident_person(kp.data)
    xy, conf = np.moveaxis(person[..., :2], 1, 2), np.moveaxis(person[..., 2], 1, 2)
    tau = view_thresholds(person, config.min_confidence, config.threshold_px, config.threshold_fraction)
    return dict(xy_px=xy, weight=np.where(conf >= config.min_confidence, conf, 0.0),
                threshold_px=np.broadcast_to(tau[:, None], xy.shape[:-1]),
                limbs=left_right_limbs(kp.joint_names) if config.swap_check else None, config=config)


def _learned_fn(rig, kp, config: TriangulateConfig, temporal: bool = True):
    """The learned mode as the pipeline runs it on one performer (robust, then learned weights)."""
    from dataclasses import replace

    from mocap.triangulation.people import most_confident_person, triangulate_people

    person, learned = most_confident_person(kp.data), replace(config, method="learned")
    # its fallback counts (once per call, 7 calls per scenario) are not part of the table
    logging.getLogger("mocap.triangulation.learned").setLevel(logging.WARNING)
    return lambda: triangulate_people(rig, person, kp.joint_names, learned, temporal=temporal).points


def run_scenario(C, noise, outliers, swap_rate, frames, seed, anipose=True, ransac_seconds=6.0,
                 config: TriangulateConfig | None = None, learned: bool | str = False) -> dict:
    """One scenario's row; ``learned``: also the learned mode (``"per-frame"``: without the
    neighbouring frames' evidence)."""
    scene, kp = _scenario(C, noise, outliers, swap_rate, frames, seed)
    rig, gt = scene.rig, scene.gt_positions[:, 0]  # (T, J, 3)
    xy = np.moveaxis(kp.data[:, :, 0, :, :2], 1, 2)  # (T, J, C, 2)
    N = xy.shape[0] * xy.shape[1]
    preds, speed = {}, {}
    config = config or TriangulateConfig()
    inputs = _ours_inputs(kp, config)
    fns = {"dlt": lambda: triangulate_dlt(rig, xy).points, "ours": lambda: triangulate_frames(rig, **inputs).points}
    if learned:
        fns["learned"] = _learned_fn(rig, kp, config, temporal=learned != "per-frame")
    if anipose:
        group = _anipose_group(rig)
        pts = np.moveaxis(xy.reshape(N, C, 2), 1, 0)  # (C, N, 2)
        # jax compiles once per input shape (about a second): the first call is timed apart
        # (points_per_s_first_call); the rounds time warm calls, the fair figure for a pipeline
        # that keeps its batch size. Timed: aniposelib's whole ``triangulate`` (OpenCV
        # undistortion + jax SVD), as ours includes undistortion, views used and reprojection errors.
        _, cold = _timed(lambda: group.triangulate(pts))
        speed["anipose_dlt_cold"] = N / cold
        fns["anipose_dlt"] = lambda: group.triangulate(pts).reshape(gt.shape)
    out, best = _timed_interleaved(fns)
    for name in fns:
        preds[name], speed[name] = out[name], N / best[name]
    assert np.array_equal(preds["ours"], triangulate_single_person(kp.data, kp.joint_names, rig, config).points, equal_nan=True)
    subset = None
    if anipose:
        order = np.random.default_rng(seed).permutation(N)
        group.triangulate_ransac(pts[:, order[:5]])  # warm-up
        done, t0, out_r = 0, time.perf_counter(), []
        while done < N and (time.perf_counter() - t0 < ransac_seconds or done < 30):
            out_r.append(group.triangulate_ransac(pts[:, order[done : done + 10]])[0])
            done += len(out_r[-1])
        dt = time.perf_counter() - t0
        subset = order[:done]
        full = np.full((N, 3), np.nan)
        full[subset] = np.concatenate(out_r)
        preds["anipose_ransac"], speed["anipose_ransac"] = full.reshape(gt.shape), done / dt
    has_gt = np.isfinite(gt).all(-1)
    common = has_gt & np.all([np.isfinite(p).all(-1) for k, p in preds.items() if k != "anipose_ransac"], axis=0)
    row = {"cameras": C, "noise_px": noise, "outlier_rate": outliers, "swap_rate": swap_rate, "points": N}
    for name, pred in preds.items():
        if name == "anipose_ransac":
            continue
        mpjpe, pck, cov = _pck_mpjpe(pred, gt, common)
        row[name] = {"mpjpe_mm": mpjpe, "pck50": pck, "triangulated": cov, "points_per_s": speed[name],
                     "ms_per_person_frame": 1000 * gt.shape[1] / speed[name]}
    if learned:
        row["learned_vs_ours"] = row["learned"]["mpjpe_mm"] / row["ours"]["mpjpe_mm"]
    if "anipose_dlt" in row:
        row["anipose_dlt"]["points_per_s_first_call"] = speed["anipose_dlt_cold"]
    if subset is not None:
        sub = np.zeros(N, bool)
        sub[subset] = True
        sub = sub.reshape(gt.shape[:2])
        common_r = sub & has_gt & np.isfinite(preds["anipose_ransac"]).all(-1) & np.isfinite(preds["ours"]).all(-1)
        err_r = np.linalg.norm(preds["anipose_ransac"] - gt, axis=-1)
        err_o = np.linalg.norm(preds["ours"] - gt, axis=-1)
        on_sub = sub & has_gt
        row["anipose_ransac"] = {
            "mpjpe_mm": float(err_r[common_r].mean() * 1000),
            "pck50": float(np.mean(np.nan_to_num(err_r[on_sub], nan=np.inf) < 0.05)),
            "triangulated": float(np.isfinite(err_r[on_sub]).mean()),
            "points_per_s": speed["anipose_ransac"], "subset_points": int(len(subset)),
            "ours_mpjpe_mm_same_points": float(err_o[common_r].mean() * 1000),
        }
        # Ratio of our MPJPE to aniposelib's better method, each on the points both evaluated.
        r_dlt = row["ours"]["mpjpe_mm"] / row["anipose_dlt"]["mpjpe_mm"]
        r_ransac = row["anipose_ransac"]["ours_mpjpe_mm_same_points"] / row["anipose_ransac"]["mpjpe_mm"]
        best = "anipose_dlt" if row["anipose_dlt"]["mpjpe_mm"] <= row["anipose_ransac"]["mpjpe_mm"] else "anipose_ransac"
        row["vs_anipose"] = {"best": best, "mpjpe_ratio": r_dlt if best == "anipose_dlt" else r_ransac,
                             "speed_ratio_vs_anipose_dlt": speed["ours"] / speed["anipose_dlt"],
                             "speed_ratio_vs_anipose_ransac": speed["ours"] / speed["anipose_ransac"]}
    return row


# -- volumetric, heavy occlusion and outliers ---------------------------------------------------

#: The volumetric table's scenes: three performers (person 0, clip 131_01, is measured; the others
#: occlude it), 20 % outliers, 10 % left/right swaps, noise 5 px; seeds below TRAIN_SEED_BASE.
HEAVY = dict(num_people=3, noise_px=5.0, outlier_rate=0.2, swap_rate=0.1)


def heavy_scenario(C: int, frames: int, seed: int):
    """``(scene, person (T, C, J, 3), gt (T, J, 3))``: person 0 of a heavily occluded capture, association given."""
    from mocap.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=seed, num_frames=frames, num_cameras=C, **HEAVY))
    is_p0 = scene.gt_person_index == 0
    data = np.take_along_axis(scene.keypoints.data, np.argmax(is_p0, -1)[..., None, None, None], axis=2)[:, :, 0]
    data[~is_p0.any(-1)] = np.nan
    return scene, data, scene.gt_positions[:, 0]


def run_volumetric(C: int, frames: int, seed: int, rounds: int = 3) -> dict:
    """Volumetric and learned algebraic against ours (robust) on :func:`heavy_scenario`: MPJPE on
    the joints all triangulated, and ms per person-frame (best of ``rounds``, interleaved)."""
    from mocap.triangulation.people import triangulate_people

    scene, person, gt = heavy_scenario(C, frames, seed)
    logging.getLogger("mocap.triangulation.volumetric").setLevel(logging.WARNING)
    logging.getLogger("mocap.triangulation.learned").setLevel(logging.WARNING)
    cfgs = {"ours": TriangulateConfig(), "learned": TriangulateConfig(method="learned"),
            "volumetric": TriangulateConfig(method="volumetric")}
    fns = {k: (lambda c=c: triangulate_people(scene.rig, person, scene.joint_names, c).points) for k, c in cfgs.items()}
    out, best = _timed_interleaved(fns, rounds)
    common = np.isfinite(gt).all(-1) & np.all([np.isfinite(p).all(-1) for p in out.values()], axis=0)
    row = {"cameras": C, **HEAVY, "frames": frames}
    for k in fns:
        row[k] = {"mpjpe_mm": float(1000 * np.linalg.norm(out[k] - gt, axis=-1)[common].mean()),
                  "ms_per_person_frame": 1000 * best[k] / frames}
    row["volumetric_vs_ours"] = row["volumetric"]["mpjpe_mm"] / row["ours"]["mpjpe_mm"]
    row["learned_vs_ours"] = row["learned"]["mpjpe_mm"] / row["ours"]["mpjpe_mm"]
    return row


def _print_volumetric(rows) -> None:
    print(f"\nvolumetric and learned vs ours (robust), heavy occlusion and outliers ({HEAVY}), held out from "
          "their training; ms per person-frame (earlier stages included; best of 3)")
    print(f"{'C':>2} | {'ours mm':>8} {'learned mm':>10} {'ratio':>6} {'volumetric mm':>13} {'ratio':>6} | "
          f"{'ours ms':>8} {'learned ms':>10} {'volumetric ms':>13}")
    for r in rows:
        print(f"{r['cameras']:>2} | {r['ours']['mpjpe_mm']:8.2f} {r['learned']['mpjpe_mm']:10.2f} "
              f"{r['learned_vs_ours']:6.3f} {r['volumetric']['mpjpe_mm']:13.2f} {r['volumetric_vs_ours']:6.3f} | "
              f"{r['ours']['ms_per_person_frame']:8.3f} {r['learned']['ms_per_person_frame']:10.3f} "
              f"{r['volumetric']['ms_per_person_frame']:13.3f}")


# -- real data --------------------------------------------------------------------------------

def pose2sim_real_data(method: str = "robust") -> dict:
    """Reconstruct the Pose2Sim balancing trial (OpenPose BODY_25B, Qualisys calibration) and
    compare with Pose2Sim's own TRC: median reprojection error per camera, bone-length CV."""
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.io.trc import POSE2SIM_MARKER_TO_JOINT, read_trc, trc_to_world
    from mocap.config import ProcessConfig, override
    from mocap.pipeline import reconstruct
    from mocap.triangulation.people import most_confident_person

    root = shared_data_dir()
    trial = root / POSE2SIM_TRIAL
    rig = load_calibration(root / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt")
    kp = align_to_rig(load_openpose(trial / "pose", "body_25b"), rig)
    # the triangulation alone, one performer
    config = override(ProcessConfig(), {"match.multi_person": False, "smooth.enabled": False, "triangulate.method": method})
    (tracks, dt) = _timed(lambda: reconstruct(kp, rig, config, fps=60.0))
    trc = read_trc(next((trial / "pose-3d").glob("*_0-100.trc")))
    trc_names = [POSE2SIM_MARKER_TO_JOINT[n] for n in trc.marker_names]
    theirs = trc_to_world(trc.positions, trc.units)
    ours = tracks.positions[:, 0][:, [tracks.joint_names.index(n) for n in trc_names]]
    person = most_confident_person(kp.data)[:, :, [kp.joint_names.index(n) for n in trc_names]]
    threshold = 0.3  # Pose2Sim's likelihood threshold for this trial (Config.toml)
    cv_ours, cv_theirs = bone_length_cv(tracks.positions[:, 0], tracks.joint_names), bone_length_cv(theirs, trc_names)
    return {
        "cameras": list(rig.names), "frames": tracks.num_frames, "method": method, "seconds": dt,
        "median_reproj_px": {"ours": median_reprojection_per_camera(rig, ours, person, threshold),
                             "pose2sim_trc": median_reprojection_per_camera(rig, theirs, person, threshold)},
        "bone_cv": {"ours": float(np.mean(list(cv_ours.values()))),
                    "pose2sim_trc": float(np.mean(list(cv_theirs.values()))),
                    "per_bone_ours": cv_ours, "per_bone_pose2sim_trc": cv_theirs},
        "triangulated": float(np.isfinite(ours).all(-1).mean()),
    }


#: "No worse than robust" on a real take, per left-out camera (fixed before new weights were scored on a
#: real take, issue 16): the upper end of the paired 95 % block-bootstrap interval of (method - robust)
#: median held-out-view px (:func:`no_worse_than_robust`) at most the larger of these two.
NO_WORSE_TOLERANCE_PX = 0.5
NO_WORSE_TOLERANCE_SHARE = 0.02
NO_WORSE_RULE = (f"no worse than robust in a camera: the 95 % interval of (method - robust) median held-out-view px "
                 f"(paired, 5-frame blocks and joints resampled, 1000 draws) ends at most max({NO_WORSE_TOLERANCE_PX} px, "
                 f"{100 * NO_WORSE_TOLERANCE_SHARE:.0f} % of robust's median) above 0; in a person's bone-length CV: its "
                 f"interval ends at most {100 * NO_WORSE_TOLERANCE_SHARE:.0f} % of robust's CV above 0; tolerances fixed beforehand")


def no_worse_than_robust(frames: dict, joint_names, draws: int = 1000) -> dict:
    """Per method of ``frames`` (name -> :func:`~mocap.train.session_scores.held_out_view_frames` result,
    ``robust`` among them) other than robust, per left-out camera, everyone of the take pooled: the change
    of the median px against robust, its 95 % block-bootstrap interval, the tolerance and whether the
    method is no worse (:data:`NO_WORSE_RULE`); per person the same for the mean bone-length CV of the
    all-camera points."""
    from mocap.train.session_scores import block_bootstrap_change, person_bone_cv

    def pooled(f):  # (C, T, P, J) -> everyone's joints in one person
        return f[0].reshape(f[0].shape[:2] + (1, -1)), f[1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a camera without a detection
        robust = np.nanmedian(frames["robust"][0].reshape(len(frames["robust"][0]), -1), axis=-1)
    tol = np.maximum(NO_WORSE_TOLERANCE_PX, NO_WORSE_TOLERANCE_SHARE * robust)
    robust_cv = person_bone_cv(frames["robust"][1], joint_names)
    out = {}
    for name in (m for m in frames if m != "robust"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            px = np.nanmedian(frames[name][0].reshape(len(robust), -1), axis=-1)
        change = block_bootstrap_change(pooled(frames["robust"]), pooled(frames[name]), joint_names, draws=draws)
        ci, cv_ci = change["px"][0], change["bone_cv"]
        out[name] = {"change_px": (px - robust).tolist(), "interval_95": ci.tolist(), "tolerance_px": tol.tolist(),
                     "no_worse": [bool(hi <= t) for (_, hi), t in zip(ci, tol)],
                     "bone_cv_change": (person_bone_cv(frames[name][1], joint_names) - robust_cv).tolist(),
                     "bone_cv_interval_95": cv_ci.tolist(),
                     "bone_cv_no_worse": [bool(hi <= NO_WORSE_TOLERANCE_SHARE * r) for (_, hi), r in zip(cv_ci, robust_cv)]}
    return out


def held_out_view_table(rig, people: np.ndarray, names, methods) -> dict:
    """``people (T, P, C, J, 3)`` each camera left out in turn, per method: median px into it (everyone
    pooled, detections with confidence >= 0.3), bone-length CV per person of the all-camera points, and
    :func:`no_worse_than_robust` of each method against robust."""
    from dataclasses import replace

    from mocap.train.session_scores import held_out_view_frames, person_bone_cv

    frames = {m: held_out_view_frames(rig, people, names, replace(TriangulateConfig(), method=m)) for m in methods}
    out = {}
    for method, (err, pts) in frames.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            px = np.nanmedian(err.reshape(len(err), -1), axis=-1)
        out[method] = {"held_out_view_px": px.tolist(), "bone_cv": person_bone_cv(pts, names).tolist()}
    if "robust" in frames:
        out["no_worse"] = no_worse_than_robust(frames, names)
    return out


def pose2sim_held_out_views(methods=("robust", "learned")) -> dict:
    """Each camera of the Pose2Sim balancing trial left out in turn: the performer triangulated
    from the other three (per frame, ``triangulate_people``) and reprojected into the left-out
    camera; the median distance (px) to its detections with confidence >= 0.3, and the mean
    bone-length CV of the all-camera triangulation, per method; :func:`no_worse_than_robust`."""
    from mocap.calibration.io import load_calibration
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.triangulation.people import most_confident_person

    root = shared_data_dir()
    rig = load_calibration(root / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt")
    kp = align_to_rig(load_openpose(root / POSE2SIM_TRIAL / "pose", "body_25b"), rig)
    person = most_confident_person(kp.data)  # (T, C, J, 3)
    out = {"cameras": list(rig.names)}
    out.update(held_out_view_table(rig, person[:, None], kp.joint_names, methods))
    for method in methods:
        out[method]["bone_cv"] = out[method]["bone_cv"][0]
    return out


POSE2SIM_TWO_PERSON = "sessions/pose2sim_demo/S00_P01_MultiParticipants/S00_P01_T02_Participants1-2"


def pose2sim_people(methods=("robust", "learned")) -> dict:
    """Both Pose2Sim takes through ``reconstruct`` (every performer: matching, linking; no
    smoothing, so the triangulation is what is compared): per person the mean bone-length CV and
    the share of joints triangulated, per method."""
    from dataclasses import replace

    from mocap.calibration.io import load_calibration
    from mocap.config import ProcessConfig, override
    from mocap.io.openpose import align_to_rig, load_openpose
    from mocap.pipeline import reconstruct

    root = shared_data_dir()
    rig = load_calibration(root / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt")
    out = {}
    for take in (POSE2SIM_TRIAL, POSE2SIM_TWO_PERSON):
        kp = align_to_rig(load_openpose(root / take / "pose", "body_25b"), rig)
        base = override(ProcessConfig(), {"smooth.enabled": False})
        for method in methods:
            tracks = reconstruct(kp, rig, replace(base, triangulate=replace(base.triangulate, method=method)), fps=60.0)
            pos = tracks.positions
            out.setdefault(take.rsplit("/", 1)[-1], {})[method] = {
                "bone_cv": [float(np.nanmean(list(bone_length_cv(pos[:, p], tracks.joint_names).values())))
                            for p in range(pos.shape[1])],
                "triangulated": [float(np.isfinite(pos[:, p]).all(-1).mean()) for p in range(pos.shape[1])]}
    return out


def pose2sim_two_person_held_out_views(methods=REAL_METHODS) -> dict:
    """The two-person Pose2Sim take, both performers from our own matching and linking
    (:func:`mocap.train.adapt.session_people`), each camera left out in turn: median reprojection
    px into it (detections with confidence >= 0.3, both people) and the bone-length CV of each
    person's all-camera triangulation, per method; :func:`no_worse_than_robust`."""
    from mocap.train.adapt import session_people

    root = shared_data_dir()
    rig, people, names = session_people(root / POSE2SIM_TWO_PERSON,
                                        root / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt")
    out = {"cameras": list(rig.names), "frames": int(people.shape[0]), "people": int(people.shape[1])}
    out.update(held_out_view_table(rig, people, names, methods))
    return out


#: Pairs of real-take methods whose change the adaptation figures give with a block-bootstrap interval.
ADAPTED_PAIRS = (("learned", "adapted"), ("volumetric", "volumetric_adapted"))


def transfer_table(rig, people: np.ndarray, names, configs: dict) -> dict:
    """Per method of ``configs`` (name -> TriangulateConfig), each camera left out in turn: median px
    ``(P, C)`` into it and bone-length CV ``(P,)``; per pair of :data:`ADAPTED_PAIRS` the 95 %
    block-bootstrap interval (5-frame blocks, paired) of each change."""
    from mocap.train.session_scores import (block_bootstrap_change, held_out_view_frames, median_per_person,
                                            person_bone_cv)

    frames = {name: held_out_view_frames(rig, people, names, config) for name, config in configs.items()}
    out = {name: {"held_out_view_px": median_per_person(err).tolist(), "bone_cv": person_bone_cv(pts, names).tolist()}
           for name, (err, pts) in frames.items()}
    out["change_95"] = {}
    for a, b in ADAPTED_PAIRS:
        if a in frames and b in frames:
            change = block_bootstrap_change(frames[a], frames[b], names)
            out["change_95"][f"{b}-{a}"] = {k: v.tolist() for k, v in change.items()}
    return out


def adaptation_takes(detections: str, calibration):
    """``(rig, single, two, names)``: both takes' people as the adaptation reads them, from the
    OpenPose JSON shipped with the takes (``openpose``) or from our own BlazePose detections of
    their videos (``blazepose``: ``mocap detect`` into ``<cache>/bench/adaptation/<take>``, reused
    while the videos, settings and code are the same; some 30 s the first time)."""
    from mocap.train.adapt import session_people

    root = shared_data_dir()
    takes = [root / POSE2SIM_TRIAL, root / POSE2SIM_TWO_PERSON]
    if detections == "openpose":
        (rig, single, names), (_, two, _) = (session_people(t, calibration) for t in takes)
        return rig, single, two, names
    if detections != "blazepose":
        raise ValueError(f"--adaptation-detections: expected openpose or blazepose, got {detections!r}")
    from mocap.detect import detect_session
    from mocap.paths import cache_dir

    folders = []
    for take in takes:
        out = cache_dir() / "bench" / "adaptation" / take.name
        out.mkdir(parents=True, exist_ok=True)
        detect_session(take, out_dir=out, calibration=calibration, stack=False)
        folders.append(out)
    (rig, single, names), (_, two, _) = (session_people(f, calibration, "blazepose_33") for f in folders)
    return rig, single, two, names


def pose2sim_adaptation_transfer(spec=(), detections: str = "openpose") -> dict:
    """``mocap train algebraic --session`` on the balancing trial (the shipped weights adapted on its
    first 60 % of frames with :class:`mocap.train.adapt.AdaptConfig`'s defaults, overridden by the
    ``KEY=VALUE`` items of ``spec``), then scored with :func:`transfer_table` for robust, learned and
    volumetric with the shipped weights and with the adapted ones (the volumetric stage weighs the
    views by the algebraic net's softmax, so it takes the adaptation too): on the balancing trial's
    held-out frames, on the two-person take's last 40 % of frames (used by nothing) and on all its
    frames. ``detections``: the takes' OpenPose JSON or our BlazePose detections of their videos
    (:func:`adaptation_takes`).

    The two-person take is the balancing trial's video with a rendered person composited in. In its
    OpenPose JSON person 0 has the balancing trial's very detections (its first 60 % of frames are
    the adaptation's training frames) and person 1, the rendered one, keypoints that are not a
    detector's: confidence 1.0 everywhere, no face, and, against the all-view triangulation, an
    offset per camera that is nearly constant (6-22 px, standard deviation 0.4-2.5 px over the take;
    the real performer's scatter is 9-22 px), i.e. the rendering's projection through a
    calibration a little different from this one. With BlazePose, both people are detected in the
    video (person 0 partly hidden behind the rendered one in some views)."""
    import copy
    import hashlib
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from mocap.train.adapt import adapt_to_session, parse_adapt
    from mocap.triangulation import learned

    calibration = shared_data_dir() / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt"
    rig, single, two, names = adaptation_takes(detections, calibration)
    cfg = parse_adapt(list(spec))
    model = copy.deepcopy(learned.load_weights())
    meta = adapt_to_session(model, rig, single, names, cfg)
    out = {"cameras": list(rig.names), "adapt": meta["adapt"], "steps_kept": meta["steps_kept"],
           "camera_bias": meta["camera_bias"], "people": int(two.shape[1]), "detections": detections,
           "shipped_md5": hashlib.md5(learned.SHIPPED_WEIGHTS.read_bytes()).hexdigest()}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "adapted.pt")
        learned.save_weights(model, path, meta)
        configs = {m: replace(TriangulateConfig(), method=m) for m in REAL_METHODS}
        configs["adapted"] = replace(configs["learned"], learned_weights=path)
        configs["volumetric_adapted"] = replace(configs["volumetric"], learned_weights=path)
        for key, take in (("single_take_held_out", single), ("two_person_test", two), ("two_person_all", two)):
            first = 0 if key == "two_person_all" else int(round(cfg.train_fraction * take.shape[0]))
            out[key] = transfer_table(rig, take[first:], names, configs)
            out[key]["frames"] = [first, int(take.shape[0])]
    return out


def _print_transfer(real: dict) -> None:
    print("\nrows '<method> 95%': 95 % interval of its change from the unadapted method (5-frame blocks and joints "
          "resampled, paired); * outside 0")
    print(f"Session adaptation on the balancing trial ({real.get('detections', 'openpose')} keypoints; "
          f"{real['adapt']['trainable']}, kept step {real['steps_kept']} of "
          f"{real['adapt']['steps']}; shipped algebraic.pt md5 {real['shipped_md5']}), camera logit bias: "
          + (", ".join(f"{c} {v:+.2f}" if not isinstance(v, dict) else f"{c} (per joint)"
                       for c, v in real["camera_bias"].items()) or "none"))
    for key, title in (("single_take_held_out", "balancing trial, its held-out frames"),
                       ("two_person_test", "two-person take, frames used by nothing"),
                       ("two_person_all", "two-person take, all frames (person 0's first 60 % = the training frames)")):
        t = real[key]
        a, b = t["frames"]
        people = len(t["robust"]["held_out_view_px"])
        print(f"  {title} {a}-{b - 1}: held-out-view median px per person and camera; bone-length CV per person")
        print(f"  {'':22s}" + "".join(f"{f'p{p} ' + n:>14s}" for p in range(people) for n in real["cameras"])
              + "   bone-length CV")
        for name in (m for m in t if m not in ("change_95", "frames")):
            r = t[name]
            print(f"  {name:22s}" + "".join(f"{v:14.2f}" for row in r["held_out_view_px"] for v in row)
                  + "   " + "  ".join(f"{v:.4f}" for v in r["bone_cv"]))
        for pair, ci in t["change_95"].items():  # * : the 95 % interval excludes 0
            cells = [f"{lo:+.1f}..{hi:+.1f}{'*' if lo > 0 or hi < 0 else ' '}" for row in ci["px"] for lo, hi in row]
            print(f"  {pair.split('-')[0] + ' 95%':22s}" + "".join(f" {c:>13s}" for c in cells) + "   "
                  + "  ".join(f"{lo:+.4f}..{hi:+.4f}" for lo, hi in ci["bone_cv"]))


def _print_two_person(real: dict) -> None:
    print(f"\nPose2Sim two-person take ({real['people']} tracked people, {real['frames']} frames), each camera left "
          "out in turn: median reprojection px into it (both people); bone-length CV per person, all cameras")
    print(f"  {'':10s}" + "".join(f"{n:>9s}" for n in real["cameras"]) + "   bone-length CV per person")
    for method in (m for m in real if m not in ("cameras", "frames", "people", "no_worse")):
        r = real[method]
        print(f"  {method:10s}" + "".join(f"{v:9.2f}" for v in r["held_out_view_px"])
              + "   " + "  ".join(f"{v:.4f}" for v in r["bone_cv"]))
    _print_no_worse(real)


def _print_no_worse(real: dict) -> None:
    """The :data:`NO_WORSE_RULE` verdicts of a held-out-view table, per method and camera."""
    if "no_worse" not in real:
        return
    print(f"  {NO_WORSE_RULE}; per camera: change [95 % interval] / tolerance")
    for method, r in real["no_worse"].items():
        cells = [f"{d:+.2f} [{lo:+.2f},{hi:+.2f}]/{t:.2f}{'' if ok else ' WORSE'}"
                 for d, (lo, hi), t, ok in zip(r["change_px"], r["interval_95"], r["tolerance_px"], r["no_worse"])]
        cv = [f"{d:+.4f} [{lo:+.4f},{hi:+.4f}]{'' if ok else ' WORSE'}" for d, (lo, hi), ok
              in zip(r["bone_cv_change"], r["bone_cv_interval_95"], r["bone_cv_no_worse"])]
        print(f"  {method:10s} " + "  ".join(cells)
              + f"  -> no worse on {sum(r['no_worse'])} of {len(r['no_worse'])} cameras; bone-length CV per person "
              + "  ".join(cv))


def _print_people(real: dict) -> None:
    print("\nPose2Sim takes, every performer (reconstruct without smoothing): mean bone-length CV per person "
          "(share of joints triangulated)")
    for take, by_method in real.items():
        for method, r in by_method.items():
            cells = "  ".join(f"{cv:.4f} ({100 * tri:.0f}%)" for cv, tri in zip(r["bone_cv"], r["triangulated"]))
            print(f"  {take:32s} {method:10s} {cells}")


def _print_held_out_views(real: dict) -> None:
    print("\nPose2Sim balancing trial, each camera left out in turn: median reprojection px into it "
          "(triangulated from the other three, per frame, no smoothing); bone-length CV with all cameras")
    print(f"  {'':10s}" + "".join(f"{n:>9s}" for n in real["cameras"]) + "   bone-length CV")
    for method in (m for m in real if m not in ("cameras", "no_worse")):
        r = real[method]
        print(f"  {method:10s}" + "".join(f"{v:9.2f}" for v in r["held_out_view_px"]) + f"   {r['bone_cv']:.4f}")
    _print_no_worse(real)


# -- driver -----------------------------------------------------------------------------------

TIMING_NOTE = ("points per s = points / best wall time of 7 rounds, each round calling dlt, ours and "
               "anipose_dlt once in turn on the same 2D points; each call timed whole: ours = "
               "triangulate_frames (undistortion, robust triangulation, left/right checks, views used, "
               "reprojection errors), anipose_dlt = CameraGroup.triangulate (OpenCV undistortion + jax "
               "SVD), warm (its first call, with the jax compile, is reported apart as "
               "points_per_s_first_call); anipose_ransac: its Python loop over a random subset in a time budget")


def _print_learned(rows) -> None:
    """The learned mode against ours (robust): MPJPE ratio and time per person-frame."""
    print("\nlearned algebraic vs ours (robust), held out from its training; ms per person-frame (best of 7)")
    print(f"{'C':>2} {'sigma':>5} {'outl':>5} {'swap':>5} | {'ours mm':>8} {'learned mm':>10} {'ratio':>6} | "
          f"{'ours ms':>8} {'learned ms':>10}")
    for r in rows:
        print(f"{r['cameras']:>2} {r['noise_px']:5.1f} {r['outlier_rate']:5.2f} {r['swap_rate']:5.2f} | "
              f"{r['ours']['mpjpe_mm']:8.2f} {r['learned']['mpjpe_mm']:10.2f} {r['learned_vs_ours']:6.3f} | "
              f"{r['ours']['ms_per_person_frame']:8.3f} {r['learned']['ms_per_person_frame']:10.3f}")
    for C in sorted({r["cameras"] for r in rows}):
        ratios = [r["learned_vs_ours"] for r in rows if r["cameras"] == C]
        print(f"{C} cameras: learned/ours MPJPE mean {np.mean(ratios):.3f}, worst {max(ratios):.3f}")


def _print_table(rows, config: TriangulateConfig) -> None:
    methods = [m for m in ("dlt", "ours", "anipose_dlt", "anipose_ransac") if m in rows[0]]
    print(f"ours = robust: RANSAC over view pairs, per-limb left/right check {'on' if config.swap_check else 'off'}, "
          f"temporal left/right check {'on' if config.temporal_swap_check else 'off'}")
    print(TIMING_NOTE)
    head = f"{'C':>2} {'sigma':>5} {'outl':>5} {'swap':>5} | " + " | ".join(f"{m:^26}" for m in methods)
    print("association given (ground-truth detection per view); triangulation measured")
    print("per method: MPJPE mm / PCK@50mm % / points per s   (anipose_ransac on a random subset)")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = [f"{r[m]['mpjpe_mm']:7.1f} {100 * r[m]['pck50']:5.1f} {r[m]['points_per_s']:10.0f}" for m in methods]
        line = f"{r['cameras']:>2} {r['noise_px']:5.1f} {r['outlier_rate']:5.2f} {r['swap_rate']:5.2f} | "
        line += " | ".join(f"{c:^26}" for c in cells)
        if "vs_anipose" in r:
            v = r["vs_anipose"]
            line += f" | ours/best MPJPE {v['mpjpe_ratio']:.2f} ({v['best']}), speed x{v['speed_ratio_vs_anipose_dlt']:.1f}"
        print(line)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        log.warning("torch is not installed: the learned triangulation is left out (pip install torch==2.13.0)")
        return False
    return True


def pose2sim_adaptation_selection() -> dict:
    """:func:`mocap.train.adapt.cross_validate` of the shipped weights on the balancing trial's training frames."""
    from mocap.train.adapt import cross_validate, session_people
    from mocap.triangulation import learned

    root = shared_data_dir()
    calibration = root / "sessions/pose2sim_demo/S00_Calibration/Calib.qca.txt"
    rig, single, names = session_people(root / POSE2SIM_TRIAL, calibration)
    with learned.one_torch_thread():
        table = cross_validate(learned.load_weights(), rig, single, names)
    print("\nSession-adaptation settings, 3-fold block cross-validation inside the balancing trial's training frames "
          "(each block held out in turn): held-out-view px (mean over cameras) per fold and mean; the worst camera "
          "(per fold, mean over folds); bone-length CV mean")
    for setting, r in table.items():
        print(f"  {setting:58s}" + "".join(f"{v:7.2f}" for v in r["held_out_view_px"])
              + f"   mean {np.mean(r['held_out_view_px']):6.2f}   worst camera "
              f"{np.mean(np.max(r['per_camera_px'], axis=1)):6.2f}   CV {np.mean(r['bone_cv']):.4f}")
    return table


def run(args) -> dict:
    if args.only_adaptation:
        result = {"pose2sim_adaptation_selection": pose2sim_adaptation_selection()} if args.adaptation_selection else {}
        result["pose2sim_adaptation_transfer"] = transfer = pose2sim_adaptation_transfer(args.adapt or (),
                                                                                         args.adaptation_detections)
        _print_transfer(transfer)
        return result
    anipose = not args.no_anipose
    config = TriangulateConfig(temporal_swap_check=not (args.no_temporal_swap_check or args.per_frame))
    learned = not args.no_learned and _torch_available() and ("per-frame" if args.per_frame else True)
    if anipose:
        try:
            import aniposelib  # noqa: F401
        except ImportError:
            log.warning("aniposelib is not installed (pip install aniposelib==0.8.0); running without it")
            anipose = False
    rows = []
    for C in args.cameras:
        for noise in args.noise:
            for outliers in args.outliers:
                for swap in (0.0, args.swap_rate):
                    log.info("scenario: %d cameras, sigma %.1f px, outliers %.0f%%, swaps %.0f%%", C, noise, 100 * outliers, 100 * swap)
                    rows.append(run_scenario(C, noise, outliers, swap, args.frames, args.seed, anipose,
                                             args.ransac_seconds, config, learned))
    _print_table(rows, config)
    if learned:
        _print_learned(rows)
    volumetric = []
    if not args.no_volumetric and _torch_available():
        volumetric = [run_volumetric(C, args.frames, args.seed) for C in args.cameras]
        _print_volumetric(volumetric)
    result = {"synthetic": rows, "association": "given (ground truth)", "ours_config": asdict(config),
              "timing": TIMING_NOTE, "volumetric_heavy": volumetric}
    if not args.no_real:
        real = pose2sim_real_data()
        result["pose2sim_balancing"] = real
        print("\nPose2Sim balancing trial (Qualisys calibration, OpenPose BODY_25B), median reprojection px per camera:")
        print(f"  {'':14s}" + "".join(f"{n:>9s}" for n in real["cameras"]) + "   bone-length CV")
        for who in ("ours", "pose2sim_trc"):
            print(f"  {who:14s}" + "".join(f"{v:9.2f}" for v in real["median_reproj_px"][who])
                  + f"   {real['bone_cv'][who]:.4f}")
        if learned:
            result["pose2sim_held_out_views"] = held = pose2sim_held_out_views(REAL_METHODS)
            _print_held_out_views(held)
            result["pose2sim_two_person_held_out_views"] = two = pose2sim_two_person_held_out_views(REAL_METHODS)
            _print_two_person(two)
            result["pose2sim_people"] = people = pose2sim_people(REAL_METHODS)
            _print_people(people)
            if args.adaptation_selection:
                result["pose2sim_adaptation_selection"] = pose2sim_adaptation_selection()
            result["pose2sim_adaptation_transfer"] = transfer = pose2sim_adaptation_transfer(
                args.adapt or (), args.adaptation_detections)
            _print_transfer(transfer)
    return result
