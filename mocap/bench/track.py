"""Tracking: the UKF on the 2D evidence vs the Kalman smoother vs per-frame triangulation.

Scenes: performers of the synthetic studio (real CMU motion, every detector error on) walking
straight lines through the middle of a ring of cameras and back, so that every pair of paths
crosses (:func:`crossing_scene`), 3 and 5 performers in front of 4 cameras, and 4 in front of 5
(the online mode's latency target: one frame at 30 fps). Per mode
(``--tracking off|kalman|ukf|online``): mean joint error on the joints the per-frame
triangulation has (MPJPE, mm) and on every joint reported, joint jitter (mean acceleration
error, m/s²), the fraction of ground-truth joints reported, identity switches, and the speed of
the tracking stage alone (person-frames per second) and, online, the time per frame, and the
scenes' own one-camera stretches (:func:`one_camera_stretches`; at most 3 frames in them). Then a
joint seen by one camera for 0.5 s (:func:`one_camera_runs`; ``--one-camera-seeds 9-16`` on
scenes no setting was chosen on, ``--one-camera-only`` for these runs alone, ``--explain`` for
why each run over 5 cm failed: :func:`explain_one_camera`).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from mocap.config import ProcessConfig, override
from mocap.io.keypoints import Keypoints2D
from mocap.pipeline import reconstruct
from mocap.skeleton.joints import CANONICAL_JOINTS, format_joint_names
from mocap.synthetic import (SyntheticConfig, SyntheticScene, make_scene, place_people, ring_rig,
                             simulate_detections)
from mocap.synthetic.motion import near_turns, random_placements
from mocap.track.filter_people import follow_people, forward_and_smoothed, gap_evidence, people_evidence, unswapped
from mocap.track.linking import body_centres
from mocap.track.one_view import find_gaps, gap_problem, gap_terms, gauss_newton, solve_gaps
from mocap.track.people import people_views
from mocap.track.ukf import constant_acceleration, constant_velocity
from mocap.triangulation.people import triangulate_people

MODES = ("off", "kalman", "ukf", "online")
#: ``--motion``: the one-camera runs' motion model (:func:`one_camera_runs`).
MOTIONS = ("compiled", "velocity", "acceleration")
SCENARIOS = ((3, 4), (5, 4), (4, 5))  # the last: the online latency target (4 people x 5 cameras)
#: The tracker's settings in the one-camera runs (:func:`one_camera_runs`).
ONE_CAMERA = {"track.mode": "ukf", "track.max_untriangulated_s": 0.5}


def add_arguments(parser) -> None:
    parser.add_argument("--frames", type=int, default=1000, help="frames per scene (30 fps)")
    parser.add_argument("--seeds", type=int, default=2, help="scenes per scenario")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated tracking modes")
    parser.add_argument("--one-camera-seeds", default="1-8", type=seed_list,
                        help="scenes of the one-camera runs: a range 'A-B' and/or comma-separated seeds (the "
                             "default 1-8; e.g. 9-16 for seeds no setting was chosen on)")
    parser.add_argument("--one-camera-only", action="store_true",
                        help="only the one-camera runs (no crossings, no streaming tracker)")
    parser.add_argument("--motion", choices=MOTIONS, default="compiled",
                        help="ukf/online tracking (crossings and one-camera runs): the tracker's compiled "
                             "constant-velocity UKF (default), the same model through the numpy reference filter "
                             "(velocity), or a constant-acceleration state through it (acceleration, white-noise "
                             "jerk --jerk-sigma)")
    parser.add_argument("--jerk-sigma", type=float, default=30.0,
                        help="--motion acceleration: white-noise jerk, m/s^3 (default 30)")
    parser.add_argument("--live", action="store_true",
                        help="one-camera runs through the live tracker (mocap.track.online.OnlineTracker, frames "
                             "pushed one at a time) instead of offline ukf")
    parser.add_argument("--fast-motion", action="store_true",
                        help="only the fast-motion runs: one performer playing each of FAST_CLIPS (motion/cmu_more) "
                             "at 30 and 60 fps, per-frame triangulation against each --modes (half a minute)")
    parser.add_argument("--forward-gate-only", action="store_true",
                        help="--fast-motion: the kalman smoother with the forward gate alone (smooth.gate_both_ways "
                             "false), to measure what the backward half changes")
    parser.add_argument("--explain", action="store_true",
                        help="one-camera runs (offline ukf): for each run over 5 cm, the one-view gap fit's cost "
                             "terms at its answer and at the truth, and where Gauss-Newton started at the truth "
                             "ends: whether the evidence could have told the truth from the answer (a few "
                             "seconds per run)")
    parser.add_argument("--no-one-view-fit", dest="one_view_fit", action="store_false",
                        help="ukf: without the one-view gap fit (track.one_view_fit, mocap.track.one_view), to "
                             "measure what it changes")


def seed_list(text: str) -> list[int]:
    """Seeds from ``'1-8'``, ``'9,11,13'`` or both (``'1-4,9'``); a clear error otherwise."""
    import argparse

    seeds = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds: expected 'A-B' or comma-separated integers, got {text!r}")
    if not seeds:
        raise argparse.ArgumentTypeError(f"seeds: expected at least one seed, got {text!r}")
    return seeds


def crossing_scene(num_people: int, num_cameras: int = 4, num_frames: int = 300, seed: int = 0,
                   speed: float = 1.2, half_length: float = 1.6, spacing: float = 0.0,
                   **errors) -> SyntheticScene:
    """Performers crossing paths: person ``p`` walks back and forth at ``speed`` m/s along a
    line ``2 * half_length`` metres long through the middle of the ring, at angle ``pi p / P``
    and ``spacing * (p - (P-1)/2)`` metres to its side, playing a CMU clip in place (its own
    travel removed), a ``p / P`` cycle (even ``P``: ``p / (P + 1)``) later than person 0: every
    pair of paths crosses, and pelvises pass at least 0.75 / 0.53 / 0.45 / 0.38 / 0.32 m apart
    for 2 / 3 / 4 / 5 / 6 people (``spacing = 0``; shoulders brush below ~0.45 m). ``errors``: :class:`SyntheticConfig` fields of the detector model."""
    cfg = SyntheticConfig(num_frames=num_frames, num_people=num_people, num_cameras=num_cameras, seed=seed,
                          **errors)
    rig_rng, place_rng, det_rng = np.random.default_rng(seed).spawn(3)
    rig = ring_rig(num_cameras, cfg.rig_radius, cfg.camera_height, focal_range=cfg.focal_range,
                   image_size=cfg.image_size, distortion=cfg.distortion, seed=int(rig_rng.integers(2**31)))
    placements = random_placements(num_people, cfg.clips, 0.0, place_rng)
    body = place_people(placements, num_frames, cfg.fps, CANONICAL_JOINTS)  # (T, P, J, 3)
    body[..., :2] -= body[:, :, [CANONICAL_JOINTS.index("pelvis")], :2]
    t = np.arange(num_frames) / cfg.fps
    # a p/P cycle apart (p/(P+1) for even P, where p/P puts opposite walkers together in the middle)
    phase = np.arange(num_people) / (num_people + 1 - num_people % 2) * 4 * half_length
    u = np.mod(speed * t[:, None] + phase[None], 4 * half_length)
    s = -half_length + np.where(u < 2 * half_length, u, 4 * half_length - u)  # (T, P) ping-pong
    angle = np.pi * np.arange(num_people) / num_people
    along = np.stack([np.cos(angle), np.sin(angle)], -1)  # (P, 2)
    side = np.stack([-along[:, 1], along[:, 0]], -1) * (spacing * (np.arange(num_people) - (num_people - 1) / 2))[:, None]
    body[..., :2] += (s[..., None] * along[None] + side[None])[:, :, None]
    names = CANONICAL_JOINTS if cfg.keypoint_format == "canonical" else format_joint_names(cfg.keypoint_format)
    data, gt_index, errs, gt_xy = simulate_detections(rig, body, CANONICAL_JOINTS, names, cfg, det_rng)
    gt = body[:, :, [CANONICAL_JOINTS.index(n) for n in names]]
    return SyntheticScene(rig, gt, tuple(names), Keypoints2D(data, names, tuple(rig.names), fps=cfg.fps), gt_index,
                          errs, gt_xy, tuple(placements), cfg.fps, cfg)


def owners(positions: np.ndarray, scene: SyntheticScene, max_m: float = 0.2) -> np.ndarray:
    """``(T, G)`` the output person matched to each ground-truth performer per frame: one
    optimal assignment of body centres per frame within ``max_m`` metres (performers pass
    0.45 m apart; a body centre errs by 1-3 cm), -1 where none."""
    J = len(scene.joint_names)
    gt = body_centres(scene.gt_positions, scene.joint_names)  # (T, G, 3)
    ours = body_centres(positions[..., :J, :], scene.joint_names)  # (T, P, 3)
    d = np.linalg.norm(gt[:, :, None] - ours[:, None], axis=-1)  # (T, G, P)
    d = np.where(np.isfinite(d) & (d <= max_m), d, 1e6)
    own = -np.ones(d.shape[:2], dtype=np.int64)
    for t in range(len(d)):  # a benchmark, not a hot path: one small assignment per frame
        rows, cols = linear_sum_assignment(d[t])
        ok = d[t, rows, cols] < 1e6
        own[t, rows[ok]] = cols[ok]
    return own


def identity_switches(own: np.ndarray) -> int:
    """Times a performer's nearest output person changes between frames where they have one."""
    switches = 0
    for g in range(own.shape[1]):
        ids = own[own[:, g] >= 0, g]
        switches += int(np.count_nonzero(ids[1:] != ids[:-1]))
    return switches


def score(positions: np.ndarray, reference: np.ndarray, scene: SyntheticScene) -> dict:
    """Accuracy of ``positions (T, P, J', 3)`` against the ground truth, each output person
    taken as the performer it is nearest to most often; ``reference``: per-frame triangulation
    (same layout), whose joints define the MPJPE set."""
    own = owners(positions, scene)
    est, ref = performers(positions, scene, own), performers(reference, scene)
    gt = scene.gt_positions
    err = np.linalg.norm(est - gt, axis=-1)
    base = np.isfinite(ref).all(-1) & np.isfinite(err)
    acc = lambda x: (x[2:] - 2 * x[1:-1] + x[:-2]) * scene.fps ** 2  # noqa: E731
    acc_err = np.linalg.norm(acc(est) - acc(gt), axis=-1)
    both = base[2:] & base[1:-1] & base[:-2]
    return {"mpjpe_mm": 1000 * float(np.mean(err[base])), "all_mm": 1000 * float(np.nanmean(err)),
            "p99_all_mm": 1000 * float(np.nanpercentile(err, 99)), "jitter": float(np.mean(acc_err[both])),
            "reported": float(np.isfinite(err).mean()), "switches": identity_switches(own),
            **one_camera_stretches(err, scene)}


def performers(positions: np.ndarray, scene: SyntheticScene, own: np.ndarray | None = None) -> np.ndarray:
    """``(T, G, J, 3)`` per ground-truth performer the output person of ``positions (T, P, J', 3)``
    nearest to them most often (:func:`owners`, or ``own``), NaN where none."""
    J = len(scene.joint_names)
    own = owners(positions, scene) if own is None else own
    est = np.full_like(scene.gt_positions, np.nan)
    for g in range(own.shape[1]):
        ids = own[own[:, g] >= 0, g]
        if len(ids):
            est[:, g] = positions[:, np.bincount(ids).argmax(), :J]
    return est


def cameras_seeing(scene: SyntheticScene) -> np.ndarray:
    """``(T, G, J)`` how many cameras' detections of each performer (by the scene's ground-truth
    assignment) have each joint, with a positive confidence."""
    data, who = scene.keypoints.data, scene.gt_person_index  # (T, C, D, J, 3), (T, C, D)
    with np.errstate(invalid="ignore"):
        has = np.isfinite(data[..., :2]).all(-1) & (data[..., 2] > 0)  # (T, C, D, J)
    mine = who[..., None] == np.arange(scene.gt_positions.shape[1])  # (T, C, D, G)
    return (mine[..., None] & has[..., None, :]).any(2).sum(1)  # a camera's detections of one performer


def one_camera_stretches(err: np.ndarray, scene: SyntheticScene) -> dict:
    """The scene's own one-camera stretches: each run of frames in which exactly one camera's
    detection of a performer has a joint (:func:`cameras_seeing`), between frames two or more
    do (occlusion by other performers, misses, out of frame). ``err (T, G, J)``: the joint error
    per performer, m (NaN: not reported). Returns their count (``one_camera_runs``), how many
    have every frame reported and how many of those stay within 5 cm, and the longest, frames."""
    seen = cameras_seeing(scene)
    T = len(seen)
    runs, reported, within, longest = 0, 0, 0, 0
    for g, j in np.ndindex(seen.shape[1:]):  # a benchmark: one pass per joint of each performer
        one = np.concatenate([[False], seen[:, g, j] == 1, [False]])
        starts, ends = np.flatnonzero(~one[:-1] & one[1:]), np.flatnonzero(one[:-1] & ~one[1:])
        for a, b in zip(starts, ends):
            if a == 0 or b == T or seen[a - 1, g, j] < 2 or seen[b, g, j] < 2:
                continue
            e = err[a:b, g, j]
            runs, longest = runs + 1, max(longest, int(b - a))
            if np.isfinite(e).all():
                reported += 1
                within += bool(e.max() < 0.05)
    return {"one_camera_runs": runs, "one_camera_reported": reported, "one_camera_within_5cm": within,
            "one_camera_longest": longest}


def follow(scene: SyntheticScene, modes, config: ProcessConfig | None = None, motion: str = "compiled",
           jerk_sigma: float = 30.0) -> dict:
    """Match, triangulate and link ``scene`` once, then follow its people with each mode:
    ``{mode: (positions (T, P, J, 3), wall seconds, CPU seconds of the tracking stage alone)}``
    (each mode run once on the first 10 frames before: the compiled kernels load from numba's
    cache, or compile on the very first run, outside the timing); ``ukf`` and ``online`` with
    the ``motion`` model (:func:`motion_model`)."""
    config = config or ProcessConfig()
    kp, fps = scene.keypoints, scene.fps
    person, tri = matched_people(kp, scene.rig, fps, config)
    model = motion_model(motion, fps, config.track.acceleration_sigma, jerk_sigma)
    out = {}
    for mode in modes:
        track = dataclasses.replace(config.track, mode=mode)
        follow_people(scene.rig, first_frames(tri, 10), person[:10], fps, track, config.smooth,
                      config.triangulate.min_confidence, kp.joint_names, model)
        t0, c0 = time.perf_counter(), time.process_time()
        points = follow_people(scene.rig, tri, person, fps, track, config.smooth, config.triangulate.min_confidence,
                               kp.joint_names, model)
        out[mode] = (points, time.perf_counter() - t0, time.process_time() - c0)
    return out


def motion_model(motion: str, fps: float, acceleration_sigma: float, jerk_sigma: float) -> tuple | None:
    """``--motion`` (:data:`MOTIONS`) as the ``(F, Q)`` the numpy reference filter runs, or None: the
    tracker's compiled constant-velocity filter."""
    if motion == "compiled":
        return None
    return (constant_velocity(1.0 / fps, acceleration_sigma) if motion == "velocity"
            else constant_acceleration(1.0 / fps, jerk_sigma))


def first_frames(tri, n: int):
    """The :class:`~mocap.triangulation.Triangulation` of the first ``n`` frames."""
    return dataclasses.replace(tri, **{f.name: getattr(tri, f.name)[:n] for f in dataclasses.fields(tri)
                                       if getattr(tri, f.name) is not None})


def one_camera_runs(seeds=range(1, 9), frames: int = 150, first: int = 60, length: int = 15,
                    motion: str = "compiled", jerk_sigma: float = 30.0, one_view_fit: bool = True,
                    live: bool = False) -> list[dict]:
    """A joint hidden from every camera but one for ``length`` frames (0.5 s), each of four
    limb joints with each camera in turn, one performer in front of 4 cameras (every detector
    error on), each seed a scene: the worst error over those frames and how many of them are
    reported, ``ukf`` with ``max_untriangulated_s = 0.5`` (the per-frame triangulation and
    ``kalman`` report none). ``motion`` (:data:`MOTIONS`): the tracker as ``mocap reconstruct``
    runs it, or its numpy reference (:func:`mocap.track.filter_people.reference_points`) with the
    constant-velocity or a constant-acceleration model (white-noise jerk ``jerk_sigma`` m/s³);
    ``one_view_fit``: ``track.one_view_fit``; ``live``: the live tracker
    (:class:`mocap.track.online.OnlineTracker`, frames pushed one at a time, its 5-frame lag)
    instead, the track nearest the performer scored."""
    config = override(ProcessConfig(), {**ONE_CAMERA, "track.one_view_fit": one_view_fit})
    rows = []
    for seed in seeds:
        scene = make_scene(SyntheticConfig(num_frames=frames, num_people=1, num_cameras=4, seed=seed))
        for joint in ("left_wrist", "right_elbow", "right_knee", "left_ankle"):
            j = scene.joint_names.index(joint)
            for camera in range(4):
                kp = seen_by_one(scene.keypoints, joint, camera, first, length)
                if live:
                    positions = live_performer(kp, scene, config)
                elif motion == "compiled":
                    positions = reconstruct(kp, scene.rig, config).positions
                else:  # matched and triangulated as reconstruct does, then the numpy reference filter
                    positions = follow(dataclasses.replace(scene, keypoints=kp), ["ukf"], config, motion,
                                       jerk_sigma)["ukf"][0]
                err = np.linalg.norm(positions[first:first + length, 0, j]
                                     - scene.gt_positions[first:first + length, 0, j], axis=-1)
                rows.append({"seed": seed, "joint": joint, "camera": camera, "frames": frames, "first": first,
                             "length": length, "reported": int(np.isfinite(err).sum()),
                             "max_mm": 1000 * float(np.nanmax(err)) if np.isfinite(err).any() else float("nan")})
    return rows


def matched_people(kp: Keypoints2D, rig, fps: float, config: ProcessConfig) -> tuple:
    """``(person (T, P, C, J, 3), per-frame Triangulation)``: ``kp``'s people matched across the
    views, linked over time and triangulated, as ``mocap reconstruct`` does before tracking."""
    person = people_views(kp, rig, fps, config.match, config.triangulate, config.link)
    return person, triangulate_people(rig, person, kp.joint_names, config.triangulate, temporal=True)


def gap_inputs(kp: Keypoints2D, rig, fps: float, config: ProcessConfig) -> tuple:
    """What the one-view gap fit reads in ``mocap reconstruct --tracking ukf`` of one take whose
    performers the matching finds in order (:func:`mocap.track.filter_people.filter_points` up to
    the fit): ``(GapEvidence, smoothed positions (T, N, 3), their largest standard deviation (T,
    N))`` over the performers' points (person-major)."""
    person, tri = matched_people(kp, rig, fps, config)
    person = unswapped(rig, person, tri.points, kp.joint_names)
    ev = people_evidence(person, tri.points, config.track, config.triangulate.min_confidence, tri.inliers,
                         kp.joint_names)
    fwd, positions, sd = forward_and_smoothed(rig, ev, len(kp.joint_names), fps, config.track)
    return gap_evidence(ev, fwd), positions, sd


def explain_one_camera(rows: list[dict], over_mm: float = 50.0) -> list[dict]:
    """Why each run of :func:`one_camera_runs` (offline ``ukf``; its rows name the scene) over
    5 cm failed, from the gap fit's own cost
    (:func:`mocap.track.one_view.gap_terms`): its terms at the fit's answer and at the true path,
    and where Gauss-Newton started at the truth ends. Where the truth costs more than the
    answer, no search under that cost finds it (``search``: Gauss-Newton from the truth found a
    cheaper path than the fit's); where the answer's ray term is also within the χ² 99 % bound of
    the camera's keypoint noise (``limit``), the answer explains the one camera's keypoints: the
    depth the camera leaves open was settled by the motion prior (and the bones, whose term is
    printed), and the truth moved less smoothly. ``over_mm``: the runs explained (the line's
    5 cm). Returns one row per run."""
    config = override(ProcessConfig(), ONE_CAMERA)
    out = []
    for r in (r for r in rows if not r["max_mm"] < over_mm):
        first, length = r["first"], r["length"]
        scene = make_scene(SyntheticConfig(num_frames=r["frames"], num_people=1, num_cameras=4, seed=r["seed"]))
        kp = seen_by_one(scene.keypoints, r["joint"], r["camera"], first, length)
        gev, positions, _ = gap_inputs(kp, scene.rig, scene.fps, config)
        j = list(kp.joint_names).index(r["joint"])
        gaps = find_gaps(gev, positions, int(np.floor(config.track.max_untriangulated_s * scene.fps)), None,
                         (True, True))
        gaps = gaps[(gaps[:, 0] == j) & (gaps[:, 1] < first + length) & (gaps[:, 2] > first)]
        row = dict(r, gap=None)
        if len(gaps):
            n, a, b = gaps[np.argmax(np.minimum(gaps[:, 2], first + length) - np.maximum(gaps[:, 1], first))]
            args = (scene.rig, gev, positions, n[None], a[None], int(b - a), 1.0 / scene.fps)
            problem, _ = gap_problem(*args)
            truth = scene.gt_positions[a:b, 0, j][None]
            paths = {"fit": solve_gaps(*args)[0], "truth": truth, "from_truth": gauss_newton(truth.copy(), *problem)[0]}
            row.update(gap=(int(a), int(b)), ray_bound=float(chi2.ppf(0.99, 2 * (b - a))))
            for name, X in paths.items():
                row[name] = [float(t[0]) for t in gap_terms(X, *problem)]
                row[name + "_mm"] = 1000 * float(np.max(np.linalg.norm(X[0] - truth[0], axis=-1)))
            row["limit"] = sum(row["truth"]) > sum(row["fit"]) and row["fit"][1] <= row["ray_bound"]
            row["search"] = sum(row["from_truth"]) < sum(row["fit"]) - 1e-6
        out.append(row)
    return out


def report_explained(rows: list[dict]) -> list[dict]:
    """Prints :func:`explain_one_camera`'s rows; returns them."""
    print("\nruns over 5 cm, the gap fit's cost (motion / ray / bone, in sigma^2) at its answer, at the true path "
          "and where Gauss-Newton started at the truth ends; worst error mm:")
    terms = lambda t: " / ".join(f"{x:6.1f}" for x in t) + f" = {sum(t):6.1f}"  # noqa: E731
    for r in rows:
        head = f"seed {r['seed']:3d} {r['joint']:>12} cam{r['camera'] + 1}"
        if r["gap"] is None:
            print(f"{head}: no one-view gap (the triangulation or the filter's start decided it)")
            continue
        print(f"{head} frames {r['gap'][0]}-{r['gap'][1] - 1}: fit {r['fit_mm']:4.0f} mm  {terms(r['fit'])} | truth "
              f"{terms(r['truth'])} | from truth {r['from_truth_mm']:4.0f} mm  {terms(r['from_truth'])}"
              f"{'  (ray bound %.0f)' % r['ray_bound']}"
              f"{'  -> evidence limit' if r['limit'] else ''}{'  -> search' if r['search'] else ''}")
    fitted = [r for r in rows if r["gap"] is not None]
    print(f"{sum(r['limit'] for r in fitted)} of {len(rows)} runs over 5 cm: the truth costs more than the fit's "
          "answer, which explains the camera's keypoints within the chi^2 99 % bound (the motion prior chose the "
          f"depth); {sum(r['search'] for r in fitted)}: Gauss-Newton from the truth finds a cheaper path (a search "
          "failure)")
    return rows


def seen_by_one(keypoints: Keypoints2D, joint: str, camera: int, first: int, length: int) -> Keypoints2D:
    """``keypoints`` with ``joint`` hidden from every camera but ``camera`` in ``length`` frames
    from ``first`` (the one-camera runs)."""
    data = keypoints.data.copy()
    others = [c for c in range(data.shape[1]) if c != camera]
    data[first:first + length, others, :, keypoints.joint_names.index(joint)] = np.nan
    return dataclasses.replace(keypoints, data=data)


def live_performer(kp: Keypoints2D, scene: SyntheticScene, config) -> np.ndarray:
    """``(T, 1, J, 3)`` the live tracker's track nearest the scene's one performer (median distance
    of the joints over the take; NaN if it emitted none)."""
    from mocap.track.online import OnlineTracker, track_online

    positions, _ = track_online(OnlineTracker(scene.rig, kp.joint_names, scene.fps, config), kp.data)
    if not positions.shape[1]:
        return np.full(scene.gt_positions.shape, np.nan)
    with np.errstate(invalid="ignore"):
        far = np.nanmedian(np.linalg.norm(positions - scene.gt_positions[:, :1], axis=-1), axis=(0, 2))
    return positions[:, [int(np.nanargmin(np.where(np.isfinite(far), far, np.inf)))]]


def streaming(people: int = 4, cameras: int = 5, frames: int = 1000, seed: int = 100) -> dict:
    """The live tracker (:class:`mocap.track.online.OnlineTracker`) fed one frame at a time:
    wall milliseconds per pushed frame (everything a live run does per frame: matching to the
    tracks, epipolar grouping of the rest, triangulation, one UKF step, the fixed-lag smoother),
    and CPU milliseconds (steadier on a shared machine), its accuracy against the per-frame
    triangulation and identity switches (after 10 frames
    pushed through a first tracker: numba's cache loads outside the timing)."""
    from mocap.track.online import OnlineTracker, track_online

    scene = crossing_scene(people, cameras, frames, seed=seed)
    kp = scene.keypoints
    track_online(OnlineTracker(scene.rig, kp.joint_names, scene.fps), kp.data[:10])
    seconds: list = []
    positions, _ = track_online(OnlineTracker(scene.rig, kp.joint_names, scene.fps), kp.data, seconds)
    raw = reconstruct(kp, scene.rig, override(ProcessConfig(), {"track.mode": "off"})).positions
    ms, cpu = (1000 * np.asarray(seconds)).T
    return dict(people=people, cameras=cameras, frames=frames, p50_ms=float(np.median(ms)),
                cpu_p50_ms=float(np.median(cpu)), cpu_p95_ms=float(np.percentile(cpu, 95)),
                p95_ms=float(np.percentile(ms, 95)), max_ms=float(ms.max()), budget_ms=1000 / scene.fps,
                within_budget=float(np.mean(ms <= 1000 / scene.fps)), **score(positions, raw, scene))


#: ``motion/cmu_more`` clips with fast moves for :func:`fast_motion_runs`: runs, a jump, dance
#: (turns, leaps, arms overhead, Indian dance in deep stances), basketball, marching. No setting of
#: the ``kalman`` smoother was chosen on them; the UKF's gap-motion table was fitted on that folder.
FAST_CLIPS = ("02_03", "09_01", "02_04", "05_02", "05_08", "05_11", "05_12", "06_06", "94_01", "138_01")


def fast_motion_runs(modes, fps_list=(30.0, 60.0), seeds=(1, 2), frames: int = 300,
                     forward_gate_only: bool = False) -> list[dict]:
    """One performer playing each of :data:`FAST_CLIPS` in front of 4 cameras (every detector
    error on), ``mocap reconstruct`` with each tracking mode: per run the mean and 99th percentile
    error (every joint reported), the joint-frames over 10 cm where the per-frame triangulation
    has the joint (``over_10cm``) apart from those within 0.1 s of a turn of the clip's
    ping-pong playback (``turn_over_10cm``: every joint's velocity reverses in one frame there,
    which no body does; :func:`mocap.synthetic.motion.near_turns`), and where the mode filled a
    joint the triangulation lacks (``filled_over_10cm``: the triangulation reports nothing there,
    so counting those against a smoother alone would compare different joint-frames), and the
    jitter (mean acceleration error). ``forward_gate_only``: ``smooth.gate_both_ways`` off."""
    config = override(ProcessConfig(), {"smooth.gate_both_ways": not forward_gate_only})
    rows = []
    for fps in fps_list:
        for clip in FAST_CLIPS:
            for seed in seeds:
                scene = make_scene(SyntheticConfig(num_frames=frames, num_people=1, num_cameras=4, seed=seed, fps=fps,
                                                   clips=(f"cmu_more/{clip}",)))
                truth = scene.gt_positions[:, 0]
                turn = near_turns(scene.placements[0], frames, fps)[:, None]
                for mode in ["off"] + [m for m in modes if m != "off"]:  # "off" first: its joints
                    tracks = reconstruct(scene.keypoints, scene.rig, override(config, {"track.mode": mode}))
                    names = list(tracks.joint_names)
                    got = tracks.positions[:, 0][:, [names.index(n) for n in scene.joint_names]]
                    if mode == "off":
                        per_frame = np.isfinite(got).all(-1)  # where the per-frame triangulation has the joint
                    if mode not in modes:
                        continue
                    err = np.linalg.norm(got - truth, axis=-1)
                    acc = np.diff(got, 2, axis=0) - np.diff(truth, 2, axis=0)
                    rows.append({"fps": fps, "clip": clip, "seed": seed, "mode": mode,
                                 "mean_mm": 1000 * float(np.nanmean(err)),
                                 "p99_mm": 1000 * float(np.nanpercentile(err, 99)),
                                 "over_10cm": int((per_frame & ~turn & (err > 0.1)).sum()),
                                 "turn_over_10cm": int((per_frame & turn & (err > 0.1)).sum()),
                                 "filled_over_10cm": int((~per_frame & (err > 0.1)).sum()),
                                 "jitter": float(np.nanmean(np.linalg.norm(acc, axis=-1))) * fps * fps})
    return rows


def report_fast_motion(rows: list[dict]) -> list[dict]:
    """Prints :func:`fast_motion_runs`' totals per frame rate and mode; returns ``rows``."""
    seeds = len({r['seed'] for r in rows})
    print(f"fast motion: {len(FAST_CLIPS)} motion/cmu_more clips x {seeds} seeds, 1 performer, "
          "4 cameras, 300 frames; mean over runs of the mean and p99 error, joint-frames over 10 cm (sum) where the "
          "per-frame triangulation has the joint, those within 0.1 s of a turn of the clip's ping-pong playback "
          "(every joint's velocity reversing in one frame) apart, and where the mode filled it, jitter")
    for fps in sorted({r["fps"] for r in rows}):
        for mode in dict.fromkeys(r["mode"] for r in rows):
            sel = [r for r in rows if r["fps"] == fps and r["mode"] == mode]
            print(f"  {fps:4.0f} fps {mode:>7}: mean {np.mean([r['mean_mm'] for r in sel]):6.2f} mm  p99 "
                  f"{np.mean([r['p99_mm'] for r in sel]):6.1f} mm  over 10 cm {sum(r['over_10cm'] for r in sel):5d} "
                  f"+ at turns {sum(r['turn_over_10cm'] for r in sel):4d} "
                  f"+ filled {sum(r['filled_over_10cm'] for r in sel):4d}  "
                  f"jitter {np.mean([r['jitter'] for r in sel]):6.2f} m/s^2")
    return rows


def run(args) -> dict:
    if args.explain and (args.live or args.motion != "compiled" or not args.one_view_fit or args.fast_motion):
        raise ValueError("--explain: the offline ukf's one-view gap fit only (no --live, --motion, --no-one-view-fit "
                         "or --fast-motion)")
    if args.fast_motion:
        modes = ["off"] + [m.strip() for m in args.modes.split(",") if m.strip() and m.strip() != "off"]
        return {"fast_motion": report_fast_motion(fast_motion_runs(modes, forward_gate_only=args.forward_gate_only))}
    if args.one_camera_only:
        one = report_one_camera(one_camera_runs(args.one_camera_seeds, motion=args.motion, jerk_sigma=args.jerk_sigma,
                                                one_view_fit=args.one_view_fit, live=args.live),
                                args.motion, args.one_view_fit, args.live)
        return {"one_camera": one, **explained(args, one)}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    fitted = override(ProcessConfig(), {"track.one_view_fit": args.one_view_fit})
    rows = []
    print(f"{'people':>6} {'cams':>4} {'seed':>4} {'mode':>7} | {'MPJPE':>6} {'all':>6} {'p99':>6} {'jitter':>6} "
          f"{'seen':>5} {'IDsw':>4} | {'pf/s':>7} {'pf/cpu':>7} {'ms/frame':>8} {'cpu ms':>8}")
    for people, cams in SCENARIOS:
        for seed in range(args.seeds):
            scene = crossing_scene(people, cams, args.frames, seed=100 + seed)
            results = follow(scene, ["off"] + modes, fitted, motion=args.motion, jerk_sigma=args.jerk_sigma)
            for mode in modes:
                positions, seconds, cpu = results[mode]
                s = score(positions, results["off"][0], scene)
                T, P = positions.shape[:2]
                row = dict(people=people, cameras=cams, seed=seed, mode=mode, track_s=seconds, cpu_s=cpu,
                           person_frames_per_s=T * P / max(seconds, 1e-9), ms_per_frame=1000 * seconds / T,
                           person_frames_per_cpu_s=T * P / max(cpu, 1e-9), cpu_ms_per_frame=1000 * cpu / T, **s)
                rows.append(row)
                speed = (f"{row['person_frames_per_s']:>7.0f} {row['person_frames_per_cpu_s']:>7.0f} "
                         f"{row['ms_per_frame']:>8.2f} {row['cpu_ms_per_frame']:>8.2f}" if mode != "off"
                         else f"{'-':>7} {'-':>7} {'-':>8} {'-':>8}")
                print(f"{people:>6} {cams:>4} {seed:>4} {mode:>7} | {s['mpjpe_mm']:>6.2f} {s['all_mm']:>6.2f} "
                      f"{s['p99_all_mm']:>6.1f} {s['jitter']:>6.2f} {s['reported']:>5.3f} {s['switches']:>4d} | {speed}")
    print("MPJPE: mm on the joints the per-frame triangulation has; all/p99: mm on every joint reported; jitter: mean "
          "acceleration error, m/s^2; seen: fraction of true joints reported; IDsw: identity switches; pf/s: "
          "person-frames per second of the tracking stage alone (match and triangulation excluded), wall clock; "
          "pf/cpu: the same per CPU-second (all threads; steadier on a shared machine); ms/frame, cpu ms: its time "
          "per frame (online: the work a live run does per frame: one filter step and a lag-long backward pass)")
    print("\njoints the crossings themselves leave to one camera (occlusion by other performers, misses, out of frame: "
          "runs of frames one camera's detection has the joint, between frames two or more have it): runs within "
          "5 cm / runs reported at every frame (all runs, longest in frames)")
    for r in rows:
        if r["mode"] != "off":
            print(f"{r['people']} people x {r['cameras']} cams seed {r['seed']} {r['mode']:>7}: "
                  f"{r['one_camera_within_5cm']:4d} / {r['one_camera_reported']:4d} ({r['one_camera_runs']} runs, "
                  f"longest {r['one_camera_longest']} frame{'' if r['one_camera_longest'] == 1 else 's'})")
    live = [streaming(people, cams, args.frames, seed=100 + seed) for people, cams in ((3, 4), (4, 5))
            for seed in range(args.seeds)]
    print("\nstreaming tracker (one frame pushed at a time, lag "
          f"{ProcessConfig().track.lag_frames} frames): wall ms per frame vs the {live[0]['budget_ms']:.1f} ms budget")
    for r in live:
        print(f"{r['people']} people x {r['cameras']} cams: p50 {r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}  max "
              f"{r['max_ms']:6.1f} ms, {100 * r['within_budget']:5.1f} % within (CPU p50 {r['cpu_p50_ms']:5.1f}, p95 "
              f"{r['cpu_p95_ms']:5.1f} ms); MPJPE {r['mpjpe_mm']:.2f} mm, "
              f"jitter {r['jitter']:.2f}, seen {r['reported']:.3f}, IDsw {r['switches']}")
    one = report_one_camera(one_camera_runs(args.one_camera_seeds, motion=args.motion, jerk_sigma=args.jerk_sigma,
                                            one_view_fit=args.one_view_fit, live=args.live), args.motion,
                            args.one_view_fit, args.live)
    return {"frames": args.frames, "rows": rows, "one_camera": one, "streaming": live, **explained(args, one)}


def explained(args, one: list[dict]) -> dict:
    """``--explain``: ``{"explained": rows}`` of :func:`explain_one_camera`, else nothing."""
    return {"explained": report_explained(explain_one_camera(one))} if args.explain else {}


def report_one_camera(one: list[dict], motion: str = "compiled", fit: bool = True, live: bool = False) -> list[dict]:
    """Prints :func:`one_camera_runs`' rows, the runs within 5 cm per joint and why the others
    fail (10 or more frames reported but one over 5 cm, or fewer than 10 of the 15 reported);
    returns ``one``."""
    print(f"\none camera for 0.5 s ({'live tracker' if live else 'ukf'}, max_untriangulated_s 0.5, motion {motion}, one-view fit "
          f"{'on' if fit else 'off'}): worst error mm "
          "(frames reported of 15)")
    for seed, joint in dict.fromkeys((r["seed"], r["joint"]) for r in one):
        print(f"seed {seed} {joint:>12}: " + "  ".join(f"cam{r['camera'] + 1} {r['max_mm']:5.0f} ({r['reported']:2d})"
                                                     for r in one if (r["seed"], r["joint"]) == (seed, joint)))
    passed = [r["max_mm"] < 50 and r["reported"] >= 10 for r in one]
    far = sum(r["reported"] >= 10 and not r["max_mm"] < 50 for r in one)
    print(f"{sum(passed)} of {len(one)} runs within 5 cm at every reported frame, 10 or more of 15 frames reported "
          f"(seeds {min(r['seed'] for r in one)}-{max(r['seed'] for r in one)}): "
          + ", ".join(f"{joint} {sum(p for p, r in zip(passed, one) if r['joint'] == joint)}/"
                      f"{sum(r['joint'] == joint for r in one)}" for joint in dict.fromkeys(r["joint"] for r in one))
          + f"; failed: {far} over 5 cm, {len(one) - sum(passed) - far} under 10 frames reported")
    return one
