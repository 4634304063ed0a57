"""The demo sessions: Pose2Sim's single- and two-person captures, fetched from PyPI and cached.

The ``pose2sim`` wheel (BSD-3-Clause) carries ``Demo_SinglePerson/`` and ``Demo_MultiPerson/``:
four synchronized 60 fps portrait videos each (``videos/cam01..04.mp4``, 100 frames) and the
rig's Qualisys calibration (``calibration/Calib.qca.txt``). :func:`fetch_demo_sessions` downloads
that one wheel with pip, extracts those files into ``cache_dir()/demo/pose2sim_<trial>/`` as
session folders (``videos/<cam>.mp4``, ``calibration/Calib.qca.txt``, ``LICENSE``) and checks
every file's sha256. Offline, pass a wheel downloaded elsewhere (``wheel=``), or copy the session
folders there by hand.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from mocap._checks import check_choice
from mocap.detect.models import open_wheel, pip_download_wheel, sha256_file
from mocap.errors import ModelError
from mocap.paths import cache_dir

log = logging.getLogger(__name__)

POSE2SIM_REQUIREMENT = "pose2sim==0.10.49"
_PREFIX = "Pose2Sim/Demo_SinglePerson/"

#: Session-relative path -> (member in the wheel, sha256).
DEMO_FILES: dict[str, tuple[str, str]] = {
    "videos/cam01.mp4": (_PREFIX + "videos/cam01.mp4", "cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a"),
    "videos/cam02.mp4": (_PREFIX + "videos/cam02.mp4", "94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442"),
    "videos/cam03.mp4": (_PREFIX + "videos/cam03.mp4", "b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca"),
    "videos/cam04.mp4": (_PREFIX + "videos/cam04.mp4", "b5c0e7863fd70d008e7178d3c556b045b0ea5f78fcd61ca548a0b2e807e641f7"),
    "calibration/Calib.qca.txt": (_PREFIX + "calibration/Calib.qca.txt",
                                  "fd90e4bbae3278ef1dc0cdd42a34ee06bf88286f628a02c00a29407aa39e34c5"),
}


_MULTI = "Pose2Sim/Demo_MultiPerson/"

#: The two-person take (the same as ``../shared/data``'s ``S00_P01_T02_Participants1-2``).
DEMO_MULTI_FILES: dict[str, tuple[str, str]] = {
    "videos/cam01.mp4": (_MULTI + "videos/cam01.mp4", "543cee6a4c2c2b52dc9eac9137ee63d14f1f84e706a9a7264769edcb11e5ea53"),
    "videos/cam02.mp4": (_MULTI + "videos/cam02.mp4", "8895092a7cf26359205a427b7ac2f4a935c2e0bd36d9b7a5140cb33faa468a6b"),
    "videos/cam03.mp4": (_MULTI + "videos/cam03.mp4", "d3daf48cdf9f5603868ddb99166ddaf9b12279e7ce968922926560d5fd3f0c99"),
    "videos/cam04.mp4": (_MULTI + "videos/cam04.mp4", "1490149dc40e7301fa5ceae23862b044ba5c398a8b2a40df21ed894702728c09"),
    "calibration/Calib.qca.txt": (_MULTI + "calibration/Calib.qca.txt",
                                  "fd90e4bbae3278ef1dc0cdd42a34ee06bf88286f628a02c00a29407aa39e34c5"),
}

TRIALS = ("single", "multi")


def _files(trial: str) -> dict[str, tuple[str, str]]:
    check_choice(trial, TRIALS, "trial")
    return DEMO_FILES if trial == "single" else DEMO_MULTI_FILES


def demo_dir(trial: str = "single") -> Path:
    """Where a demo session is cached: ``cache_dir()/demo/pose2sim_<trial>``."""
    check_choice(trial, TRIALS, "trial")
    return cache_dir() / "demo" / f"pose2sim_{trial}"


def _hint(trial: str = "single") -> str:
    folder = "Demo_SinglePerson" if trial == "single" else "Demo_MultiPerson"
    return (f"offline: `pip download --no-deps {POSE2SIM_REQUIREMENT}` elsewhere and pass the wheel, "
            f"or copy {folder}'s videos/ and calibration/Calib.qca.txt into {demo_dir(trial)}")


def demo_session_ok(session: str | os.PathLike | None = None, trial: str = "single") -> bool:
    """True when every file of the demo ``trial`` is present with its expected sha256."""
    root = Path(session) if session is not None else demo_dir(trial)
    return all((root / rel).is_file() and sha256_file(root / rel) == digest
               for rel, (_, digest) in _files(trial).items())


def _extract(wheel: Path, root: Path, trial: str = "single") -> None:
    with open_wheel(wheel) as zf:
        names = set(zf.namelist())
        licence = next((n for n in names if n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")), None)
        for rel, (member, digest) in _files(trial).items():
            if member not in names:
                raise ModelError(f"wheel {wheel} has no {member}; use {POSE2SIM_REQUIREMENT}")
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            got = sha256_file(tmp)
            if got != digest:
                tmp.unlink(missing_ok=True)
                raise ModelError(f"{member} in {wheel}: sha256 {got[:12]}... does not match {digest[:12]}...; "
                                 f"the wheel is not {POSE2SIM_REQUIREMENT} or is corrupted")
            os.replace(tmp, target)
        if licence:
            (root / "LICENSE").write_bytes(zf.read(licence))


def fetch_demo_session(wheel: str | os.PathLike | None = None, force: bool = False, trial: str = "single") -> Path:
    """A demo session folder, downloaded and verified on first use.

    Args:
        wheel: a local ``pose2sim`` wheel to extract from; default: download it with pip (50 MB).
        force: extract again even when the cached files verify.
        trial: ``single`` (one performer, balancing) or ``multi`` (two performers).

    Returns:
        The session folder (``videos/cam01..04.mp4``, ``calibration/Calib.qca.txt``). Raises
        :class:`~mocap.errors.ModelError` saying what to do offline.
    """
    return fetch_demo_sessions((trial,), wheel, force)[trial]


def fetch_demo_sessions(trials=TRIALS, wheel: str | os.PathLike | None = None, force: bool = False) -> dict[str, Path]:
    """Several demo sessions from one wheel (downloaded once): ``{trial: folder}``."""
    todo = [t for t in trials if force or not demo_session_ok(None, t)]
    if todo:
        if wheel is not None:
            for t in todo:
                _extract(Path(wheel), demo_dir(t), t)
        else:
            with tempfile.TemporaryDirectory(prefix="mocap-wheel-") as tmp:
                got = pip_download_wheel(POSE2SIM_REQUIREMENT, Path(tmp), hint=_hint(todo[0]))
                for t in todo:
                    _extract(got, demo_dir(t), t)
        for t in todo:
            log.info("demo session ready in %s", demo_dir(t))
    return {t: demo_dir(t) for t in trials}
