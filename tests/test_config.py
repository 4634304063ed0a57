"""The one config tree (mocap.config): every field round-trips through YAML, unknown keys and bad
values fail with their path, precedence defaults < file < flags < --set, config.yaml reloads."""

import dataclasses
import typing

import pytest
import yaml

from mocap.cli import main
from mocap.config import ConfigError, ProcessConfig, dump, load_config, override, to_dict

#: A valid non-default value for every string field (strings are checked against their choices).
STRING_VALUES = {"method": "dlt", "detector": "onnx:model.onnx", "head": "simcc", "rig": "mixamo",
                 "rotation_order": "XYZ", "units": "mm",
                 "fourcc": "MJPG", "reference": "cam02", "mode": "ukf",
                 "identities": "images", "learned_weights": "weights.pt",
                 "volumetric_weights": "weights.pt"}


def _leaves(node, prefix=""):
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, path + ".")
        else:
            yield path, value, typing.get_type_hints(type(node))[f.name]


def _changed(name: str, value, tp):
    """A different valid value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return 0.1 if value == 0 else value * 0.9 if 0 < value <= 1 else value * 1.5
    if isinstance(value, str):
        return STRING_VALUES[name]
    if isinstance(value, tuple):
        if name == "formats":
            return ["trc", "c3d"]
        return [v * 0.9 for v in value]
    if value is None:
        return {"units": "cm", "min_confidence": 0.3, "joint_names": ["nose", "left_eye"]}[name]
    raise AssertionError(f"no test value for {name}: {tp}")


def test_config_print_shows_the_defaults(capsys):
    assert main(["config", "print"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == to_dict(ProcessConfig())
    assert {"fps", "detect", "match", "link", "triangulate", "smooth", "skeleton", "export"} <= set(printed)


def test_every_field_round_trips_through_yaml(tmp_path):
    leaves = list(_leaves(ProcessConfig()))
    assert len(leaves) > 60  # every section's every field
    values = {path: _changed(path.rsplit(".", 1)[-1], value, tp) for path, value, tp in leaves}
    changed = override(ProcessConfig(), values)
    for path, value, _ in _leaves(changed):  # each field really took its new value
        assert value != dict((p, v) for p, v, _ in leaves)[path], path
    file = tmp_path / "settings.yaml"
    file.write_text(dump(changed))
    assert load_config(file) == changed


@pytest.mark.parametrize("text, where", [
    ("triangulate: {threshold_pxx: 3}", "'triangulate.threshold_pxx'"),
    ("detect: {blazepose: {detect_evry: 3}}", "'detect.blazepose.detect_evry'"),
    ("tracking: {}", "'tracking'"),
])
def test_unknown_key_fails_with_its_path_and_the_allowed_names(tmp_path, text, where):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=f"unknown key {where}.*allowed.*: ") as info:
        load_config(file)
    assert str(file) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("triangulate: {threshold_px: fast}", "triangulate.threshold_px: expected a number, got 'fast'"),
    ("smooth: {enabled: 3}", "smooth.enabled: expected true or false"),
    ("link: {max_people: -1}", "link: max_people: expected >= 0"),
    ("export: {formats: [bvh, obj]}", "export: formats: unknown value 'obj'"),
    ("triangulate: 3", "triangulate: expected a section"),
])
def test_bad_values_name_their_field(tmp_path, text, message):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(file)


def test_precedence_defaults_file_flags_set(tmp_path, capsys):
    file = tmp_path / "settings.yaml"
    file.write_text("triangulate: {threshold_px: 20, min_views: 3}\nsmooth: {acceleration_sigma: 10}\n")

    def resolved(*extra):
        assert main(["config", "print", "--config", str(file), *extra]) == 0
        return yaml.safe_load(capsys.readouterr().out)

    cfg = resolved()
    assert cfg["triangulate"]["threshold_px"] == 20 and cfg["triangulate"]["min_views"] == 3
    assert cfg["triangulate"]["min_confidence"] == ProcessConfig().triangulate.min_confidence  # untouched default
    cfg = resolved("--set", "triangulate.threshold_px=30", "--set", "export.formats=[trc]")
    assert cfg["triangulate"]["threshold_px"] == 30 and cfg["export"]["formats"] == ["trc"]
    assert cfg["smooth"]["acceleration_sigma"] == 10


def test_a_flag_overrides_the_file_and_set_overrides_the_flag():
    from mocap.cli import build_parser
    from mocap.cli.common import resolve_config

    args = build_parser().parse_args(["export", "t.npz", "--out", "o", "--format", "trc,csv", "--rig", "unity"])
    assert resolve_config(args).export.formats == ("trc", "csv") and resolve_config(args).export.rig == "unity"
    args = build_parser().parse_args(["process", "s", "--calibration", "c", "--out", "o", "--threshold-px", "25",
                                      "--no-smooth", "--set", "triangulate.threshold_px=40"])
    cfg = resolve_config(args)
    assert cfg.triangulate.threshold_px == 40 and cfg.smooth.enabled is False
    assert cfg.detect == ProcessConfig().detect  # flags not given change nothing


def test_a_written_config_yaml_is_read_back(tmp_path):
    from mocap.config import write_resolved

    cfg = override(ProcessConfig(), {"link.max_people": 3, "triangulate.method": "dlt"})
    path = write_resolved(tmp_path, cfg, "reconstruct", {"keypoints": "kp"}, {"timings_s": {"x": 1.0}})
    record = yaml.safe_load(path.read_text())
    assert record["stage"] == "reconstruct" and record["inputs"] == {"keypoints": "kp"}
    assert load_config(path) == cfg


def _sections(node, path="root"):
    yield path, node
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from _sections(value, f.name if path == "root" else f"{path}.{f.name}")


def test_every_field_is_documented_and_printed_with_its_comment(capsys):
    from mocap.config import field_docs

    for path, node in _sections(ProcessConfig()):
        docs = field_docs(type(node))
        missing = [f.name for f in dataclasses.fields(node) if f.init and not docs.get(f.name)]
        assert not missing, f"{path}: fields without a docstring under them: {missing}"
    assert main(["config", "print"]) == 0
    text = capsys.readouterr().out
    assert "# Robust mode: a view reprojecting farther than this many pixels is an outlier" in text
    assert "``" not in text and ":func:" not in text
    assert yaml.safe_load(text) == to_dict(ProcessConfig())  # the comments keep it valid YAML
