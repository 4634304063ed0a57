"""Files written so that a crash never leaves half of one behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike, write_fn, suffix: str = "") -> Path:
    """Write through ``write_fn(tmp_path)`` to a temporary name beside ``path``, then rename.

    A crash or an exception never leaves a half-written file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        # mkstemp creates 0600; give the file the permissions a normal open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output_dir(path: str | os.PathLike) -> Path:
    """An output folder that exists or can be created and is writable; a one-line error naming
    the path otherwise (checked before any long work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output {path}: exists and is a file, not a folder; give a folder path (--out DIR)")
    parent = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise NotADirectoryError(f"output {path}: {parent} is a file, not a folder")
    try:  # a real write: permission bits say nothing for root, or on a read-only mount
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise PermissionError(f"output {path}: cannot write in {parent} ({exc.strerror}); choose another --out") from None
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """An output file path whose folder exists or can be created and is writable, and that is not
    a folder; a one-line error naming the path otherwise."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {path}: is a folder; give a file path (e.g. {path / 'tracks.npz'})")
    check_output_dir(path.parent)
    return path
