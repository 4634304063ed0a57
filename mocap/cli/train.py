"""mocap train algebraic --out weights.pt: train the learned algebraic triangulation.

The training data are synthetic captures (real CMU motion seen by random ring rigs of 4-12
cameras through the simulated detector: noise, outliers, left/right swaps, occlusion); motions,
rigs and noise settings of the held-out table of `mocap bench triangulate` are left out. Seeded
and reproducible: the same settings on the same thread count give the same weights. Needs
torch. Use the weights with `mocap reconstruct|process --triangulation learned --set
triangulate.learned_weights=weights.pt`; without that setting the weights shipped in the package
are used (they were made by `mocap train algebraic --out mocap/triangulation/weights/algebraic.pt`
with the defaults).

examples:
  mocap train algebraic --out weights.pt
  mocap train algebraic --out small.pt --scenes 8 --steps 200
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from mocap.config import field_docs
from mocap.train.config import TrainConfig

log = logging.getLogger(__name__)


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
    a.set_defaults(func=_run)
    p.set_defaults(func=lambda args: p.error("choose what to train: algebraic"))


def _run(args) -> int:
    from pathlib import Path

    from mocap.io.files import check_output_file
    from mocap.triangulation.people import learned_module

    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"output {out}: is a folder; give a file path (e.g. {out / 'weights.pt'})")
    check_output_file(out)
    learned = learned_module()  # a one-line error without torch
    from mocap.train.algebraic import train_algebraic

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    model, meta = train_algebraic(cfg)
    learned.save_weights(model, out, meta)
    log.info("training: %.1f s (%.1f s building the data); training-set MPJPE %.2f mm (robust %.2f mm)",
             meta["seconds"], meta["data_seconds"], meta["train_mpjpe_mm"], meta["train_robust_mpjpe_mm"])
    print(out)
    return 0
