"""What every stage command shares: ``--config FILE``, ``--set KEY=VALUE`` and flags that are
shortcuts for fields of the config tree (:mod:`mocap.config`).

Precedence, lowest first: the defaults, the ``--config`` file, the shortcut flags, ``--set``.
A shortcut flag left out changes nothing, so a value from the file stands.
"""

from __future__ import annotations

import argparse

#: Prefix of the argparse ``dest`` of a flag that sets config fields.
_PREFIX = "config:"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--set KEY=VALUE`` (repeatable)."""
    g = parser.add_argument_group("settings (every field of `mocap config print`)")
    g.add_argument("--config", metavar="FILE",
                   help="YAML with any part of the config tree, or a config.yaml an earlier run wrote")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_values",
                   help="set one field, e.g. --set triangulate.threshold_px=20 (repeatable; wins over the rest)")


def config_flag(parser, flag: str, paths: str | tuple[str, ...], help: str, value=None, **kwargs) -> None:
    """A flag that sets config field(s) ``paths`` (``"section.field"``).

    ``value`` given: a switch that stores that value (``--no-smooth`` -> ``smooth.enabled = False``);
    otherwise the flag takes an argument (``type``/``choices`` in ``kwargs``).
    """
    paths = (paths,) if isinstance(paths, str) else tuple(paths)
    dest = _PREFIX + "|".join(paths)
    where = f"sets {', '.join(paths)}"
    if value is not None:
        parser.add_argument(flag, dest=dest, action="store_const", const=value, default=None, help=f"{help} ({where})")
    else:
        if "choices" not in kwargs:
            kwargs.setdefault("metavar", paths[0].rsplit(".", 1)[-1].upper())
        default = default_of(paths[0])
        shown = f"default {default}; {where}" if default is not None else where
        parser.add_argument(flag, dest=dest, default=None, help=f"{help} ({shown})", **kwargs)


def resolve_config(args):
    """The :class:`~mocap.config.ProcessConfig` the command line asks for."""
    from mocap.config import load_config, parse_assignment

    overrides = {}
    for dest, value in vars(args).items():
        if dest.startswith(_PREFIX) and value is not None:
            for path in dest[len(_PREFIX):].split("|"):
                overrides[path] = list(value) if isinstance(value, tuple) else value
    for text in getattr(args, "set_values", []) or []:
        key, value = parse_assignment(text)
        overrides[key] = value
    return load_config(getattr(args, "config", None), overrides)


def comma_list(text: str) -> list[str]:
    """``"bvh, fbx"`` -> ``["bvh", "fbx"]`` (an argparse ``type``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def default_of(path: str):
    """The default value of config field ``"section.field"`` (for help texts)."""
    from mocap.config import ProcessConfig

    node = ProcessConfig()
    for part in path.split("."):
        node = getattr(node, part)
    return ",".join(node) if isinstance(node, tuple) else node


def add_detect_chunk_flags(p, prefix: str = "") -> None:
    """``--<prefix>chunk-frames`` and ``--<prefix>chunk-mode``: detection in chunks of frames."""
    p.add_argument(f"--{prefix}chunk-frames", type=int, default=None,
                   help="detect videos longer than this in chunks of this many frames, each written as it is done "
                        "(resumable per chunk; default 1800; 0: one pass per camera)")
    p.add_argument(f"--{prefix}chunk-mode", default="exact", choices=["exact", "warmup"],
                   help="exact (default): one task per camera carries its tracker across chunks, the same "
                        "detections as one pass; warmup: one task per camera x chunk (more tasks for an executor "
                        "with more workers than cameras), each tracker warmed up on the 30 frames before its "
                        "chunk: differs from one pass at chunk borders")


def add_detect_flags(p) -> None:
    """Shortcuts into ``detect``."""
    config_flag(p, "--detector", "detect.detector", "blazepose (default) or onnx:PATH (a top-down ONNX pose model)")
    config_flag(p, "--workers", "detect.workers", "cameras detected in parallel processes (0: one per CPU core)",
                type=int)
    config_flag(p, "--threads", ("detect.blazepose.num_threads", "detect.onnx.num_threads"),
                "inference threads per camera", type=int)
    config_flag(p, "--no-tracking", "detect.blazepose.tracking", "run the person detector on every frame", value=False)
    config_flag(p, "--detect-every", "detect.blazepose.detect_every", "tracking mode: person detector every N frames",
                type=int)
    config_flag(p, "--heatmaps", "detect.blazepose.keep_heatmaps", "also store the 64x64 heatmaps (large)", value=True)
    config_flag(p, "--no-cross-view", "detect.cross_view",
                "do not look again for people a camera missed where the other cameras place them", value=False)
    config_flag(p, "--allow-short", "detect.allow_short",
                "a truncated video: carry on with the frames that exist instead of stopping", value=True)


def add_reconstruct_flags(p) -> None:
    """Shortcuts into ``triangulate``, ``match``, ``link``, ``smooth``, ``track``."""
    from mocap.track.filter_people import MODES as TRACK_MODES
    from mocap.triangulation.people import METHODS

    config_flag(p, "--triangulation", "triangulate.method",
                "robust (default), dlt, learned (robust + learned view weights; needs torch) or volumetric "
                "(robust + heatmap cube, 3D network, soft-argmax; needs torch)", choices=list(METHODS))
    config_flag(p, "--min-confidence", "triangulate.min_confidence", "ignore weaker 2D keypoints", type=float)
    config_flag(p, "--threshold-px", "triangulate.threshold_px", "robust: outlier reprojection threshold, px",
                type=float)
    config_flag(p, "--refine", "triangulate.refine", "robust: Gauss-Newton refinement of the reprojection error",
                value=True)
    config_flag(p, "--no-swap-check", "triangulate.swap_check",
                "robust: no left/right check (nor leaving out a made-up limb)", value=False)
    config_flag(p, "--no-temporal-swap-check", "triangulate.temporal_swap_check",
                "robust: no left/right check against the neighbouring frames", value=False)
    config_flag(p, "--single-person", "match.multi_person",
                "one performer: the most confident person of every view (default: match and track everyone)",
                value=False)
    config_flag(p, "--max-people", "link.max_people", "keep at most N people, those triangulated most (0: everyone)",
                type=int)
    config_flag(p, "--no-smooth", "smooth.enabled", "keep the per-frame triangulation (no Kalman/RTS smoothing)",
                value=False)
    config_flag(p, "--tracking", "track.mode",
                "ukf: unscented Kalman filter on every camera's 2D keypoints + RTS smoother; online: the same, "
                "each frame final lag_frames later; kalman: Kalman/RTS smoother of the 3D; off: per-frame 3D",
                choices=list(TRACK_MODES))
    config_flag(p, "--acceleration-sigma", "smooth.acceleration_sigma",
                "smoothing: joint acceleration noise, m/s^2 (smaller smooths more)", type=float)


def add_export_flags(p) -> None:
    """Shortcuts into ``export``."""
    from mocap.export.bvh import ROTATION_ORDERS
    from mocap.export.options import FORMATS
    from mocap.export.options import rig_from_preset
    from mocap.export.rigs import RIGS

    config_flag(p, "--format", "export.formats", f"comma-separated, any of {','.join(FORMATS)}", type=comma_list)
    config_flag(p, "--rig", "export.rig", "target rig of BVH/FBX: its own bones, names and rest pose", choices=list(RIGS))
    config_flag(p, "--preset", "export.rig", "former name of --rig (unreal = ue5)", type=rig_from_preset,
                choices=list(RIGS))
    config_flag(p, "--units", "export.units", "length unit (default: cm for BVH/FBX, m for TRC/CSV, mm for C3D)",
                choices=["m", "cm", "mm"])
    config_flag(p, "--rotation-order", "export.rotation_order", "BVH rotation order", choices=list(ROTATION_ORDERS))
