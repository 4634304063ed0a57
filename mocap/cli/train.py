"""mocap train algebraic --out weights.pt: train the learned algebraic triangulation.

The training data are synthetic captures (real CMU motion seen by random ring rigs of 4-12
cameras through the simulated detector: noise, outliers, left/right swaps, occlusion); motions,
rigs and noise settings of the held-out table of `mocap bench triangulate` are left out. Seeded
and reproducible: the same settings on the same thread count give the same weights. Needs
torch. Use the weights with `mocap reconstruct|process --triangulation learned --set
triangulate.learned_weights=weights.pt`; without that setting the weights shipped in the package
are used (they were made by `mocap train algebraic --out mocap/triangulation/weights/algebraic.pt`
with the defaults).

With --session DIR --calibration FILE the weights (--init, default the shipped ones) are adapted to
a studio's own take without 3D ground truth (mocap.train.adapt): each tracked person triangulated
from all cameras but one and reprojected into the left-out one, bone-length constancy as a
regulariser, trained on the first frames (adapt.train_fraction, default 0.6 of the take); the
held-out-view reprojection and bone-length CV on the remaining frames, before and after, are
printed and stored in the weights file. By default (adapt.trainable=camera_bias) the network stays
as shipped and one logit bias per camera is learned and stored by camera name (a camera it does not
name gets 0; adapt.groups=4: per camera and joint group); trainable=all|last fine-tune the network.

mocap train volumetric --out weights.pt trains the volumetric triangulation's per-joint 3D network
(fine cubes around the learned algebraic points, views weighted by the shipped algebraic weights;
mocap.train.volumetric: the same kind of scenes with a second performer and outlier rates up to
0.25); use it with --triangulation volumetric --set triangulate.volumetric_weights=weights.pt
(shipped: mocap train volumetric --out mocap/triangulation/weights/volumetric.pt, the defaults).

examples:
  mocap train algebraic --out weights.pt
  mocap train volumetric --out volumetric.pt
  mocap train algebraic --out small.pt --scenes 8 --steps 200
  mocap train algebraic --out studio.pt --session takes/T02 --calibration calib.toml --adapt steps=50
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from mocap.config import field_docs
from mocap.train.config import TrainConfig, VolumetricTrainConfig

log = logging.getLogger(__name__)

#: ``--session``: a held-out-view error that falls by less than this share gets a warning. On a
#: synthetic studio with nothing to fix (``mocap bench adaptation``, 0°) it moved -0.2..+3.3 %, with
#: a camera 0.5-1° off -0.8..-31 %; on the Pose2Sim balancing take -5.5 %.
ADAPT_GAIN = 0.02


def register(sub) -> None:
    p = sub.add_parser("train", help="train the learned triangulation on synthetic captures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="train_kind", metavar="KIND")
    a = kinds.add_parser("algebraic", help="per-view weights for a weighted DLT (learned algebraic triangulation)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--out", required=True, help="output weights file (.pt)")
    docs = field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):  # one flag per setting, defaults and help from TrainConfig
        a.add_argument(f"--{f.name}", type=type(f.default), default=f.default,
                       help=f"{docs[f.name].rstrip('.')} (default {f.default})")
    s = a.add_argument_group("session adaptation (no 3D ground truth; the synthetic-training flags above are then unused)")
    s.add_argument("--session", help="a take of the studio (folder with pose/: OpenPose JSON or mocap detect .npz): "
                                     "adapt the weights to it by multi-view consistency instead of training")
    s.add_argument("--calibration", help="the studio's calibration (with --session)")
    s.add_argument("--keypoint_format", default="body_25b", help="OpenPose format of the take (default body_25b)")
    s.add_argument("--init", default="", help="weights to start from (default: the shipped ones)")
    s.add_argument("--adapt", action="append", metavar="KEY=VALUE", help="a setting of mocap.train.adapt.AdaptConfig "
                   "(steps, lr, anchor, bone_weight, train_fraction, frames, seed, trainable=camera_bias|all|last, "
                   "groups=1|4, validation_fraction (early stopping), ...); repeatable")
    a.set_defaults(func=_run)
    v = kinds.add_parser("volumetric", help="per-joint heatmap cubes, 3D network, soft-argmax (volumetric triangulation)",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("--out", required=True, help="output weights file (.pt)")
    vdocs = field_docs(VolumetricTrainConfig)
    for f in dataclasses.fields(VolumetricTrainConfig):
        v.add_argument(f"--{f.name}", type=type(f.default), default=f.default,
                       help=f"{vdocs[f.name].rstrip('.')} (default {f.default})")
    v.set_defaults(func=run_volumetric)
    p.set_defaults(func=lambda args: p.error("choose what to train: algebraic or volumetric"))


def _run(args) -> int:
    from pathlib import Path

    from mocap.io.files import check_output_file
    from mocap.triangulation.people import learned_module

    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"output {out}: is a folder; give a file path (e.g. {out / 'weights.pt'})")
    check_output_file(out)
    learned = learned_module()  # a one-line error without torch
    if args.session or args.calibration:
        return run_adapt(args, out, learned)
    from mocap.train.algebraic import train_algebraic

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    model, meta = train_algebraic(cfg)
    learned.save_weights(model, out, meta)
    log.info("training: %.1f s (%.1f s building the data); training-set MPJPE %.2f mm (robust %.2f mm)",
             meta["seconds"], meta["data_seconds"], meta["train_mpjpe_mm"], meta["train_robust_mpjpe_mm"])
    print(out)
    return 0


def run_adapt(args, out, learned) -> int:
    """``mocap train algebraic --session DIR --calibration FILE``: adapt the weights to a take and write them."""
    import copy
    import json

    if not (args.session and args.calibration):
        raise ValueError("session adaptation: give both --session DIR and --calibration FILE")
    from mocap.train.adapt import adapt_to_session, parse_adapt, session_people

    cfg = parse_adapt(args.adapt)
    rig, people, names = session_people(args.session, args.calibration, args.keypoint_format)
    model = copy.deepcopy(learned.load_weights(args.init))
    meta = adapt_to_session(model, rig, people, names, cfg)
    meta.update(session=str(args.session), calibration=str(args.calibration), init=args.init or "shipped")
    learned.save_weights(model, out, meta)
    print(json.dumps({k: meta[k] for k in ("held_out_before", "held_out_after")}, default=float))
    before, after = (meta[k]["held_out_view_px"] for k in ("held_out_before", "held_out_after"))
    if not after <= (1.0 - ADAPT_GAIN) * before:  # NaN too
        log.warning("session adaptation: the held-out-view error of the take's held-out frames did not go down "
                    "by %.0f %% (%.2f -> %.2f px); the adapted weights may serve this studio no better than the ones they "
                    "started from (%s): compare both on another take before using %s", 100 * ADAPT_GAIN, before, after,
                    args.init or "the shipped weights", out)
    print(out)
    return 0


def run_volumetric(args) -> int:
    """``mocap train volumetric``: train and write the weights."""
    from pathlib import Path

    from mocap.io.files import check_output_file
    from mocap.triangulation.people import learned_module

    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"output {out}: is a folder; give a file path (e.g. {out / 'volumetric.pt'})")
    check_output_file(out)
    learned_module()  # a one-line error without torch
    from mocap.train.volumetric import train_volumetric
    from mocap.triangulation.volumetric import save_weights

    cfg = VolumetricTrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(VolumetricTrainConfig)})
    model, meta = train_volumetric(cfg)
    save_weights(model, out, meta)
    log.info("training: %.1f s (%.1f s building the data); training-set MPJPE %.2f mm (robust %.2f mm)",
             meta["seconds"], meta["data_seconds"], meta["train_mpjpe_mm"], meta["train_robust_mpjpe_mm"])
    print(out)
    return 0
