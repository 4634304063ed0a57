"""The one configuration tree: every setting of every stage, read from YAML, written beside every output.

:class:`ProcessConfig` nests the frozen settings dataclass of each stage::

    fps            frame rate assumed when the input carries none (OpenPose JSON)
    detect         detector, workers, BlazePose, ONNX, the cross-view look-again pass
    match          cross-view matching (epipolar)
    link           identities over time
    triangulate    method and thresholds
    smooth         Kalman/RTS smoothing of the triangulated 3D
    track          which filter follows each person's joints over time (UKF on the 2D, Kalman, off)
    skeleton       the skeleton solve
    export         formats, joint names, units
    record         capture queue, disk reserve, codec, software trigger (``mocap record``)
    sync           offsets of footage recorded without sync (``mocap sync``)

A YAML file holds any subset of the tree (``--config FILE``); unknown keys are rejected with
their path and the allowed names, values are checked by each section's own ``__post_init__``.
``mocap config print`` shows the defaults; every stage writes the resolved tree to
``config.yaml`` next to its output (:func:`write_resolved`), and that file can be given back to
``--config`` to repeat a run.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mocap.errors import MocapError
from mocap.text import plain_text
from mocap.detect.pipeline import DetectConfig
from mocap.export.options import ExportConfig
from mocap.io.keypoints import DEFAULT_FPS
from mocap.match.epipolar import AssociationConfig
from mocap.record.options import RecordConfig, SyncConfig
from mocap.skeleton.solve import SolveConfig
from mocap.track.filter_people import TrackConfig
from mocap.track.linking import LinkConfig
from mocap.track.smoothing import SmoothConfig
from mocap.triangulation.people import TriangulateConfig



@dataclass(frozen=True)
class ProcessConfig:
    """Every setting of ``mocap process`` and of each stage command."""

    fps: float = DEFAULT_FPS
    """Frame rate used when the input carries none (videos and ``mocap detect`` output carry theirs)."""
    detect: DetectConfig = field(default_factory=DetectConfig)
    """2D detection."""
    match: AssociationConfig = field(default_factory=AssociationConfig)
    """Which 2D person in which view is the same human."""
    link: LinkConfig = field(default_factory=LinkConfig)
    """Identities over time."""
    triangulate: TriangulateConfig = field(default_factory=TriangulateConfig)
    """3D joints per person."""
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    """Kalman/RTS smoothing of the 3D joints."""
    track: TrackConfig = field(default_factory=TrackConfig)
    """Which filter follows each person's joints: UKF on the 2D keypoints, the Kalman smoother, off."""
    skeleton: SolveConfig = field(default_factory=SolveConfig)
    """Fixed bone lengths and joint rotations for BVH/FBX."""
    export: ExportConfig = field(default_factory=ExportConfig)
    """Animation and point files."""
    record: RecordConfig = field(default_factory=RecordConfig)
    """Capturing a take from several cameras."""
    sync: SyncConfig = field(default_factory=SyncConfig)
    """Time offsets of cameras recorded without sync, from the performers' motion."""

    def __post_init__(self):
        if not self.fps > 0:
            raise ValueError(f"fps: must be > 0, got {self.fps}")


class ConfigError(MocapError):
    """A configuration file or override that does not fit the tree."""


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _is_config(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value, tp, path: str):
    """``value`` (from YAML) as type ``tp``; :class:`ConfigError` naming ``path`` otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config {path}: got {value!r}")
    if _is_config(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config {path}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config {path}: expected a list, got {value!r}")
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is None and len(args) != len(value):
            raise ConfigError(f"config {path}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, item or args[i], f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config {path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config {path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config {path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config {path}: expected a string, got {value!r}")
    return value


def from_dict(cls, data: dict, path: str = ""):
    """Build the dataclass ``cls`` from a (partial) mapping; missing keys keep their defaults.

    Raises :class:`ConfigError` for an unknown key (naming its path and the allowed names), a
    value of the wrong type, or a value the section's own checks reject.
    """
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"config: unknown key {where!r}; allowed{' in ' + path if path else ''}: "
                          f"{', '.join(names)}")
    hints = _hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    default = cls()
    try:
        return dataclasses.replace(default, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"config {path or 'root'}: {exc}") from None


def to_dict(config) -> dict:
    """The tree as plain YAML-safe values (tuples as lists)."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return v

    return plain(config)


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> ProcessConfig:
    """Defaults, updated by a YAML file (the tree itself, or a ``config.yaml`` a stage wrote,
    whose ``config:`` section is used), then by ``overrides`` ``{"triangulate.threshold_px": 20}``."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path}: no such file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: expected a mapping of sections, got {type(data).__name__}")
        if "config" in data and "mocap_version" in data:  # a resolved config.yaml written by a stage
            data = data["config"] or {}
    for key, value in (overrides or {}).items():
        _set(data, key, value)
    try:
        return from_dict(ProcessConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({path})" if path is not None else str(exc)) from None


def _set(data: dict, key: str, value) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config: {key!r}: {part!r} is a value, not a section")
    node[parts[-1]] = value


def parse_assignment(text: str) -> tuple[str, object]:
    """``"triangulate.threshold_px=20"`` -> ``("triangulate.threshold_px", 20)`` (value read as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. triangulate.threshold_px=20")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def override(config: ProcessConfig, values: dict) -> ProcessConfig:
    """A copy of ``config`` with ``{"section.field": value}`` changed (checked like a file)."""
    data = to_dict(config)
    for key, value in values.items():
        _set(data, key, value)
    return from_dict(ProcessConfig, data)


class _Dumper(yaml.SafeDumper):
    """Sections as indented blocks, lists of values on one line."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def _yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def field_docs(cls) -> dict[str, str]:
    """``{field: the docstring under it}`` of a settings dataclass, as plain text (read from its
    source: a field's docstring is not kept at run time)."""
    import ast
    import inspect

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = plain_text(" ".join(after.value.value.split()))
    return docs


def _commented(node, indent: int = 0) -> list[str]:
    docs = field_docs(type(node))
    lines = []
    for f in dataclasses.fields(node):
        if not f.init:
            continue
        value, pad = getattr(node, f.name), "  " * indent
        if f.name in docs:
            lines += [f"{pad}# {line}" for line in textwrap.wrap(docs[f.name], 96 - len(pad))]
        if dataclasses.is_dataclass(value):
            lines += [f"{pad}{f.name}:"] + _commented(value, indent + 1)
        else:
            lines.append(pad + _yaml({f.name: to_dict(value) if dataclasses.is_dataclass(value) else
                                      list(value) if isinstance(value, tuple) else value}).rstrip("\n"))
    return lines


def dump(config, comments: bool = False) -> str:
    """The tree as YAML text; with ``comments``, each field's documentation above it."""
    if comments:
        return "\n".join(_commented(config)) + "\n"
    return _yaml(to_dict(config))


def write_resolved(out_dir: str | os.PathLike, config: ProcessConfig, stage: str, inputs: dict,
                   extra: dict | None = None) -> Path:
    """Write ``out_dir/config.yaml``: version, stage, inputs, the resolved tree (and ``extra``,
    e.g. time per stage). The same shape for every stage; ``--config`` reads it back."""
    from mocap import __version__
    from mocap.io.files import atomic_write

    record = {"mocap_version": __version__, "stage": stage,
              "inputs": {k: str(v) if isinstance(v, os.PathLike) else v for k, v in inputs.items()},
              "config": to_dict(config), **(extra or {})}
    text = _yaml(record)
    return atomic_write(Path(out_dir) / "config.yaml", lambda tmp: Path(tmp).write_text(text))
