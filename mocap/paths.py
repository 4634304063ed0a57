"""Where the project finds shared data and caches."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (override with ``$MOCAP_SHARED_DATA``)."""
    env = os.environ.get("MOCAP_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """``$MOCAP_HOME`` or ``~/.cache/mocap``: models and downloaded demo data."""
    env = os.environ.get("MOCAP_HOME")
    return Path(env) if env else Path.home() / ".cache" / "mocap"
