"""Calibration files: YAML/TOML round trips, Qualisys and caliscope reading, bad input, CLI convert."""

import numpy as np
import pytest

from conftest import POSE2SIM, SHARED, require_module
from mocap.calibration.io import convert_calibration, load_calibration, save_calibration
from mocap.cli import main
from mocap.errors import CalibrationError
from mocap.geometry import Camera, Rig, rotvec_to_rotmat

CALIB = POSE2SIM / "S00_Calibration"
QCA = CALIB / "Calib.qca.txt"
QUALISYS_TOML = CALIB / "Calib_qualisys.toml"
CALISCOPE = SHARED / "calibration" / "caliscope_charuco_4cam" / "post_optimization" / "camera_array.toml"


def random_rig(rng, n=3) -> Rig:
    cams = []
    for i in range(n):
        K = np.array([[rng.uniform(500, 2000), rng.normal(0, 1e-7), rng.uniform(300, 700)],
                      [0.0, rng.uniform(500, 2000), rng.uniform(200, 1000)], [0.0, 0.0, 1.0]])
        # tiny and huge magnitudes exercise the float formatting (1e-05 is a string in YAML 1.1)
        dist = rng.normal(0, 0.1, 5) * np.array([1, 1, 1e-4, 1e-6, 1e3 ** (i - 1)])
        dist[3] = 1e-05 if i == 0 else dist[3]
        cams.append(Camera(f"cam_{i + 1:02d}", (1920 + i, 1080), K, dist, rotvec_to_rotmat(rng.normal(0, 1.5, 3)),
                           rng.normal(0, 3, 3), rms_px=float(rng.uniform(0.1, 1)) if i else None))
    return Rig(tuple(cams))


def assert_rigs_close(a: Rig, b: Rig, atol: float):
    assert a.names == b.names
    for ca, cb in zip(a, b):
        assert ca.size == cb.size
        for field in ("K", "dist", "R", "t"):
            np.testing.assert_allclose(getattr(ca, field), getattr(cb, field), rtol=0, atol=atol, err_msg=field)
        assert (ca.rms_px is None) == (cb.rms_px is None)
        if ca.rms_px is not None:
            assert ca.rms_px == pytest.approx(cb.rms_px, abs=atol)


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------

def test_yaml_round_trip_is_exact(rng, tmp_path):
    rig = random_rig(rng)
    out = save_calibration(rig, tmp_path / "calibration.yaml")
    back = load_calibration(out)
    assert_rigs_close(rig, back, atol=0.0)  # bit for bit, well inside the 1e-12 asked for
    text = out.read_text()
    assert text.count("\n  cam_") == 3 and "world: {up: z, units: m}" in text
    assert "1.0e-05" in text  # a float to every YAML 1.1 reader, not the string '1e-05'


def test_toml_round_trip(rng, tmp_path):
    rig = random_rig(rng)
    back = load_calibration(save_calibration(rig, tmp_path / "calib.toml"))
    assert_rigs_close(rig, back, atol=1e-9)


def test_toml_to_yaml_to_toml_keeps_pose2sim_numbers(tmp_path):
    a = load_calibration(QUALISYS_TOML)
    yaml_path = convert_calibration(QUALISYS_TOML, tmp_path / "c.yaml")
    toml_path = convert_calibration(yaml_path, tmp_path / "c.toml")
    assert_rigs_close(a, load_calibration(toml_path), atol=1e-9)


def test_qca_to_yaml_gives_an_equal_rig(tmp_path):
    rig = load_calibration(QCA)
    back = load_calibration(convert_calibration(QCA, tmp_path / "calibration.yaml"))
    assert_rigs_close(rig, back, atol=0.0)


def test_save_is_atomic_and_leaves_no_temporary(rng, tmp_path):
    save_calibration(random_rig(rng), tmp_path / "c.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_yaml_in_millimetres_is_scaled_to_metres(tmp_path):
    path = tmp_path / "mm.yaml"
    path.write_text("world: {up: z, units: mm}\ncameras:\n  c1: {size: [640, 480], K: [[500, 0, 320], [0, 500, 240], "
                    "[0, 0, 1]], dist: [0, 0, 0, 0], R: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], t: [100, 200, 3000]}\n")
    np.testing.assert_allclose(load_calibration(path)["c1"].t, [0.1, 0.2, 3.0])


# ---------------------------------------------------------------------------------------------
# Real files of other tools
# ---------------------------------------------------------------------------------------------

def test_qca_reads_four_portrait_cameras_in_pixels():
    rig = load_calibration(QCA)
    assert rig.names == ["cam_01", "cam_02", "cam_03", "cam_04"]
    assert all(c.size == (1088, 1920) for c in rig)
    # focalLengthU / 64 sub-pixels, camera centres are the file's x, y, z in mm
    assert rig["cam_01"].K[0, 0] == pytest.approx(107599.671875 / 64)
    np.testing.assert_allclose(rig["cam_01"].center, [1.4602323709212087, -1.9091590482454608, 1.8965058524092062])
    assert np.all(rig.centers[:, 2] > 1.5)  # cameras mounted above the floor of a Z-up world
    assert rig.metadata["qualisys_avg_residual_mm"]["cam_04"] == pytest.approx(0.504772)


def test_caliscope_camera_array_is_read():
    rig = load_calibration(CALISCOPE)
    assert rig.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert rig["cam_2"].size == (1280, 720)
    assert rig["cam_0"].R[0, 0] == pytest.approx(-0.7070716153979968)  # 3x3 rotation taken as written
    assert rig["cam_3"].rms_px == pytest.approx(0.329)
    assert rig["cam_1"].dist[4] == pytest.approx(0.08066364623684687)


def test_pose2sim_checkerboard_toml_is_read():
    rig = load_calibration(CALIB / "Calib_scene_computed_from_checkerboard.toml")
    assert len(rig) == 4 and rig.names[0] == "int_cam01_img"
    assert 1660 < rig[0].K[0, 0] < 1700
    assert rig[0].dist[4] == 0.0  # 4 distortions zero-padded


def test_anipose_style_toml(tmp_path):
    path = tmp_path / "calibration.toml"
    path.write_text('[cam_0]\nname = "A"\nsize = [ 1920, 1080,]\n'
                    'matrix = [ [ 1000.0, 0.0, 960.0,], [ 0.0, 1000.0, 540.0,], [ 0.0, 0.0, 1.0,],]\n'
                    'distortions = [ -0.1, 0.01, 0.0, 0.0, 0.0,]\nrotation = [ 0.0, 0.0, 1.5707963267948966,]\n'
                    'translation = [ 0.1, 0.2, 0.3,]\n\n[metadata]\nadjusted = true\nerror = 0.4\n')
    rig = load_calibration(path)
    assert rig.names == ["A"]
    np.testing.assert_allclose(rig["A"].R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input: one CalibrationError naming file, camera and field
# ---------------------------------------------------------------------------------------------

GOOD_YAML = """world: {up: z, units: m}
cameras:
  cam01:
    size: [640, 480]
    K: [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]
    dist: [0.0, 0.0, 0.0, 0.0, 0.0]
    R: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    t: [0.0, 0.0, 2.0]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_yaml_fixture_loads(tmp_path):
    assert load_calibration(write(tmp_path, "ok.yaml", GOOD_YAML)).names == ["cam01"]


def test_missing_field_names_file_camera_and_field(tmp_path):
    path = write(tmp_path, "bad.yaml", GOOD_YAML.replace("    t: [0.0, 0.0, 2.0]\n", ""))
    with pytest.raises(CalibrationError, match=r"bad\.yaml: camera cam01: missing field 't'"):
        load_calibration(path)


def test_missing_toml_field(tmp_path):
    text = QUALISYS_TOML.read_text().replace("matrix = [ [ 1673.729614265625", "matrx = [ [ 1673.729614265625")
    with pytest.raises(CalibrationError, match=r"camera cam_02: missing field 'matrix'"):
        load_calibration(write(tmp_path, "c.toml", text))


def test_missing_qca_transform(tmp_path):
    lines = [ln for ln in QCA.read_text().splitlines() if not ("<transform" in ln and "x=\"-3216" in ln)]
    with pytest.raises(CalibrationError, match=r"c\.qca\.txt: camera cam_03: missing field <transform>"):
        load_calibration(write(tmp_path, "c.qca.txt", "\n".join(lines)))


def test_non_rotation_matrix_is_rejected(tmp_path):
    path = write(tmp_path, "bad.yaml", GOOD_YAML.replace("R: [[1.0, 0.0, 0.0]", "R: [[1.1, 0.0, 0.0]"))
    with pytest.raises(CalibrationError, match=r"bad\.yaml: camera cam01: field 'R': not a rotation matrix"):
        load_calibration(path)


def test_reflection_in_qca_is_rejected(tmp_path):
    text = QCA.read_text().replace('r11="0.5536380477336265"', 'r11="-0.5536380477336265"')
    with pytest.raises(CalibrationError, match=r"camera cam_01: field 'transform.r11..r33': not a rotation"):
        load_calibration(write(tmp_path, "c.qca.txt", text))


def test_wrong_length_vectors_are_rejected(tmp_path):
    path = write(tmp_path, "bad.yaml", GOOD_YAML.replace("t: [0.0, 0.0, 2.0]", "t: [0.0, 2.0]"))
    with pytest.raises(CalibrationError, match=r"camera cam01: field 't': expected 3 values"):
        load_calibration(path)
    text = QUALISYS_TOML.read_text().replace("distortions = [ -0.000721609375, 0.002187234375, 9.5e-06, 1.078125e-05]",
                                             "distortions = [ -0.000721609375, 0.002187234375, 9.5e-06]")
    with pytest.raises(CalibrationError, match=r"camera cam_01: field 'dist': expected 4 or 5 values .* got 3"):
        load_calibration(write(tmp_path, "c.toml", text))


def test_empty_file(tmp_path):
    with pytest.raises(CalibrationError, match=r"empty\.yaml: empty file"):
        load_calibration(write(tmp_path, "empty.yaml", "  \n"))


def test_unknown_format(tmp_path):
    with pytest.raises(CalibrationError, match=r"notes\.txt: unknown calibration format"):
        load_calibration(write(tmp_path, "notes.txt", "focal length about 1000\n"))
    with pytest.raises(CalibrationError, match=r"cannot write this format"):
        save_calibration(load_calibration(QCA), tmp_path / "out.json")


def test_fisheye_is_rejected(tmp_path):
    text = QUALISYS_TOML.read_text().replace("fisheye = false", "fisheye = true", 1)
    with pytest.raises(CalibrationError, match=r"camera cam_01: field 'fisheye' is true"):
        load_calibration(write(tmp_path, "c.toml", text))


def test_content_sniffing_without_extension(tmp_path):
    assert len(load_calibration(write(tmp_path, "calib", QCA.read_text()))) == 4
    assert len(load_calibration(write(tmp_path, "calib2", QUALISYS_TOML.read_text()))) == 4


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def test_cli_convert_qca_to_yaml(tmp_path, capsys):
    out = tmp_path / "calibration.yaml"
    assert main(["calibrate", "convert", str(QCA), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_rigs_close(load_calibration(QCA), load_calibration(out), atol=0.0)


def test_cli_convert_toml_yaml_toml(tmp_path):
    y, t = tmp_path / "c.yaml", tmp_path / "c.toml"
    assert main(["calibrate", "convert", str(QUALISYS_TOML), "--out", str(y)]) == 0
    assert main(["calibrate", "convert", str(y), "--out", str(t)]) == 0
    assert_rigs_close(load_calibration(QUALISYS_TOML), load_calibration(t), atol=1e-9)


def test_cli_convert_bad_input_exits_2(tmp_path, capsys):
    bad = write(tmp_path, "bad.yaml", GOOD_YAML.replace("R: [[1.0", "R: [[3.0"))
    assert main(["calibrate", "convert", str(bad), "--out", str(tmp_path / "o.toml")]) == 2
    assert "field 'R': not a rotation matrix" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# A peer reads what we write, and we read what it writes (aniposelib, the bench extra)
# ---------------------------------------------------------------------------------------------

def test_aniposelib_projects_our_toml_identically(rng, tmp_path):
    cameras = require_module("aniposelib.cameras")
    from mocap.geometry import project_rig

    rig = load_calibration(QCA)
    group = cameras.CameraGroup.load(str(save_calibration(rig, tmp_path / "c.toml")))
    points = rng.normal([0, 0, 1], 0.5, (50, 3))
    assert group.get_names() == rig.names
    np.testing.assert_allclose(group.project(points), np.moveaxis(project_rig(rig, points), -2, 0), atol=1e-6)
    group.dump(str(tmp_path / "anipose.toml"))
    assert_rigs_close(rig, load_calibration(tmp_path / "anipose.toml"), atol=1e-9)
