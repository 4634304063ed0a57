"""Model files: where they live, how they are fetched, and their checksums.

BlazePose's two model files (and the optional full-range face detector; Apache-2.0) ship inside the ``mediapipe==0.10.21`` wheel on PyPI
(newer releases ship none). :func:`fetch_models` downloads that one wheel with pip (any platform
tag works: the model files are identical in every wheel), extracts the files into
``cache_dir()/models`` and checks their sha256. Offline, copy the two files there by hand (from
the wheel, which is a zip archive) or pass ``wheel=`` a wheel you downloaded elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mocap.errors import ModelError
from mocap.paths import cache_dir

log = logging.getLogger(__name__)

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"


@dataclass(frozen=True)
class ModelSpec:
    """One model file that can be fetched and verified."""

    name: str
    """File name in the model cache."""
    sha256: str
    """Expected sha256 of the file."""
    wheel_member: str
    """Path of the file inside the mediapipe wheel."""
    size: int
    """Size in bytes (a first, cheap check)."""


MODELS: dict[str, ModelSpec] = {
    "pose_detection": ModelSpec(
        "pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        2959046,
    ),
    "pose_landmark_full": ModelSpec(
        "pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        6440512,
    ),
}

#: Models fetched only when asked for (``fetch_models(optional=True)``, ``mocap bench detect --photos
#: --faces``): the default detection does not use them, so they are not part of its fingerprint.
OPTIONAL_MODELS: dict[str, ModelSpec] = {
    # Faces at up to about 5 m (192×192 input); person proposals in wide shots (detect/proposals.py).
    "face_detection_full_range": ModelSpec(
        "face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        676746,
    ),
}


def models_dir() -> Path:
    """``cache_dir()/models`` (``$MOCAP_HOME/models`` or ``~/.cache/mocap/models``)."""
    return cache_dir() / "models"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline_hint() -> str:
    return (f"run `mocap models fetch`, or offline copy pose_detection.tflite and pose_landmark_full.tflite "
            f"from the {MEDIAPIPE_REQUIREMENT} wheel (a zip, mediapipe/modules/...) into {models_dir()}")


def model_status() -> list[dict]:
    """One row per known model: ``name``, ``path``, ``state`` (``ok``, ``missing``, ``bad checksum``)."""
    rows = []
    for key, spec in MODELS.items():
        path = models_dir() / spec.name
        if not path.is_file():
            state = "missing"
        elif sha256_file(path) != spec.sha256:
            state = "bad checksum"
        else:
            state = "ok"
        rows.append(dict(name=key, file=spec.name, path=str(path), state=state, sha256=spec.sha256))
    return rows


def verify_model(path: str | os.PathLike, key: str) -> Path:
    """Check that ``path`` is the model ``key`` byte for byte; raise :class:`ModelError` otherwise."""
    spec = {**MODELS, **OPTIONAL_MODELS}[key]
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {spec.name} not found at {path}; {_offline_hint()}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ModelError(f"model {path}: sha256 {digest[:12]}... does not match the expected {spec.sha256[:12]}... "
                         f"(corrupted or a different version); delete it and {_offline_hint()}")
    return path


def model_path(key: str) -> Path:
    """Path of a verified cached model; :class:`ModelError` saying what to do when it is missing."""
    known = {**MODELS, **OPTIONAL_MODELS}
    if key not in known:
        raise ValueError(f"model: unknown name {key!r}; expected one of {', '.join(known)}")
    return verify_model(models_dir() / known[key].name, key)


def pip_download_wheel(requirement: str, dest: Path, platform: str | None = None, hint: str = "") -> Path:
    """Download one wheel (no dependencies) with ``python -m pip download`` into ``dest``.

    ``platform`` (e.g. ``manylinux_2_28_x86_64``) fetches a binary wheel of that platform for
    Python 3.11 from any machine. Raises :class:`ModelError` with ``hint`` when pip fails.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
           "-d", str(dest), "--quiet"]
    if platform:
        cmd[6:6] = ["--platform", platform, "--python-version", "3.11"]
    name = requirement.split("=")[0].strip().lower().replace("-", "_")
    log.info("downloading %s from PyPI", requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not run pip to download {requirement} ({exc}); {hint}") from None
    wheels = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(name))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
        raise ModelError(f"pip could not download {requirement} ({last[0]}); {hint}")
    return wheels[0]


def open_wheel(wheel: Path) -> zipfile.ZipFile:
    """Open a downloaded wheel; a corrupt one is a :class:`ModelError` saying to download it again."""
    try:
        return zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"wheel {wheel}: not a readable zip archive ({exc}); download it again") from None


def _extract(wheel: Path, keys) -> None:
    with open_wheel(wheel) as zf:
        names = set(zf.namelist())
        for key in keys:
            spec = {**MODELS, **OPTIONAL_MODELS}[key]
            if spec.wheel_member not in names:
                raise ModelError(f"wheel {wheel} has no {spec.wheel_member}; use {MEDIAPIPE_REQUIREMENT} "
                                 f"(newer mediapipe wheels ship no model files)")
            target = models_dir() / spec.name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with zf.open(spec.wheel_member) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            digest = sha256_file(tmp)
            if digest != spec.sha256:
                tmp.unlink(missing_ok=True)
                raise ModelError(f"{spec.wheel_member} in {wheel}: sha256 {digest[:12]}... does not match "
                                 f"{spec.sha256[:12]}...; the wheel is not {MEDIAPIPE_REQUIREMENT} or is corrupted")
            os.replace(tmp, target)
            log.info("installed %s", target)


def fetch_models(wheel: str | os.PathLike | None = None, force: bool = False, optional: bool = False) -> dict[str, Path]:
    """Make every model in :data:`MODELS` present and verified in :func:`models_dir`.

    Args:
        wheel: a local mediapipe wheel to extract from; default: download it with pip.
        force: re-extract even files that already verify.
        optional: also :data:`OPTIONAL_MODELS`.

    Returns:
        ``{key: path}`` of the verified files. Raises :class:`ModelError` saying what to do offline.
    """
    missing = [k for k, row in zip(MODELS, model_status()) if force or row["state"] != "ok"]
    if optional:
        missing += [k for k, spec in OPTIONAL_MODELS.items()
                    if force or not (models_dir() / spec.name).is_file() or sha256_file(models_dir() / spec.name) != spec.sha256]
    if missing:
        if wheel is not None:
            _extract(Path(wheel), missing)
        else:
            with tempfile.TemporaryDirectory(prefix="mocap-wheel-") as tmp:
                wheel_path = pip_download_wheel(MEDIAPIPE_REQUIREMENT, Path(tmp), "manylinux_2_28_x86_64", _offline_hint())
                _extract(wheel_path, missing)
    return {key: model_path(key) for key in (list(MODELS) + (list(OPTIONAL_MODELS) if optional else []))}


def ensure_models() -> dict[str, Path]:
    """Verified model paths, fetching them first when any is missing (but never replacing a bad one).

    A file that exists with the wrong checksum raises :class:`ModelError` rather than being
    overwritten silently: the user may have put it there.
    """
    rows = model_status()
    bad = [r for r in rows if r["state"] == "bad checksum"]
    if bad:
        verify_model(bad[0]["path"], bad[0]["name"])  # raises with the full message
    if any(r["state"] == "missing" for r in rows):
        return fetch_models()
    return {key: Path(r["path"]) for key, r in zip(MODELS, rows)}
