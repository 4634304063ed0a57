"""What the export stage writes: formats, joint names, units (the ``export`` section of the config tree)."""

from __future__ import annotations

from dataclasses import dataclass

from mocap._checks import check_choice
from mocap.export.axes import UNIT_SCALE
from mocap.export.bvh import ROTATION_ORDERS

#: Former ``--preset`` names that are not rig names.
_PRESET_ALIASES = {"unreal": "ue5"}


def rig_from_preset(preset: str) -> str:
    """The rig a former ``--preset`` name means (``unreal`` -> ``ue5``; the others are rig names)."""
    return _PRESET_ALIASES.get(preset, preset)


#: Every format :func:`mocap.export.export_tracks` writes.
FORMATS = ("bvh", "fbx", "trc", "csv", "c3d")


def parse_formats(formats, name: str = "format") -> tuple[str, ...]:
    """``"bvh,fbx"`` or ``["bvh", "fbx"]`` (items may hold commas) -> ``("bvh", "fbx")``, without
    repeats; an unknown name is a ``ValueError`` naming ``name`` and listing the allowed."""
    items = (formats,) if isinstance(formats, str) else tuple(formats)
    out = tuple(dict.fromkeys(f.strip().lower() for part in items for f in part.split(",") if f.strip()))
    if not out:
        raise ValueError(f"{name}: no format given; expected one or more of {', '.join(FORMATS)}")
    for f in out:
        check_choice(f, FORMATS, name)
    return out


@dataclass(frozen=True)
class ExportConfig:
    """Settings of the export stage."""

    formats: tuple[str, ...] = ("bvh", "fbx")
    """Files to write: any of bvh, fbx (solved skeletons), trc, csv, c3d (3D joints)."""
    rig: str = "canonical"
    """Target rig of BVH/FBX: canonical (our solved skeleton), mixamo, ue5, unity (the target's own
    hierarchy and bone names, retargeted: mocap.export.rigs)."""
    units: str | None = None
    """Length unit for every format: m, cm or mm (None: cm for BVH/FBX, m for TRC/CSV, mm for C3D)."""
    rotation_order: str = "auto"
    """BVH rotation order: auto (each joint the order its motion stays farthest from gimbal lock in,
    as FBX does) or one of ZXY, ZYX, XYZ, XZY, YXZ, YZX for every joint."""

    def __post_init__(self):
        from mocap.export.rigs import RIGS

        formats = parse_formats(self.formats, "formats")
        object.__setattr__(self, "formats", formats)
        check_choice(self.rig, RIGS, "rig")
        if self.units is not None:
            check_choice(self.units, UNIT_SCALE, "units")
        check_choice(self.rotation_order, ROTATION_ORDERS, "rotation_order")
