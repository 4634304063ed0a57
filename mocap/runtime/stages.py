"""Resumable stages: a stage's outputs are reused only when the fingerprint of its inputs and
settings, and of the mocap code that made them (:func:`code_digest`), is the one they were made
with.

After a stage finishes, :meth:`StageRecord.done` writes ``DIR/stages/<stage>.yaml``: the
fingerprint, what went into it (file digests, the settings), and each output file's sha256. A
later run calls :meth:`StageRecord.reusable` before the stage: the stage is skipped when the
record exists, its fingerprint matches, and every output is still there with the recorded
digest; otherwise the log says why it runs (no record: never finished, e.g. killed; the inputs
or which settings changed; an output missing or modified). Records are written atomically
after the outputs, so a run killed mid-stage leaves that stage to be done again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import yaml

from mocap.io.files import atomic_write

log = logging.getLogger(__name__)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (hex, first 16 digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """:func:`source_digest` of the mocap package itself, once per process: outputs made by other
    code (an upgrade, a ``git pull``) are not reused, since a fix in any stage can change them."""
    return source_digest(Path(__file__).resolve().parents[1])


def source_digest(root: Path) -> str:
    """sha256 of every ``.py`` and ``.pt`` file under ``root`` with its relative path (compiled
    caches left out; hex, first 16 digits)."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix in (".py", ".pt") and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _plain(value):
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value).tobytes() + str(value.dtype).encode()).hexdigest()[:16]
    if isinstance(value, (Path, np.generic)):
        return str(value)
    return value


def fingerprint(parts: dict) -> str:
    """One digest of named inputs and settings (dataclasses, dicts, arrays, paths, numbers)."""
    return hashlib.sha256(json.dumps(_plain(parts), sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageRecord:
    """The record of one stage in an output folder.

    Attributes:
        out: the run's output folder.
        stage: the stage's name (``detect``, ``reconstruct``, ``export``, ...).
        parts: named inputs and settings; each is fingerprinted on its own, so the log can say
            which changed.
    """

    out: Path
    stage: str
    parts: dict

    @property
    def path(self) -> Path:
        return Path(self.out) / "stages" / f"{self.stage}.yaml"

    def digests(self) -> dict:
        """Each part's fingerprint, and the code's (``mocap code``)."""
        return {**{name: fingerprint({name: value}) for name, value in self.parts.items()}, "mocap code": code_digest()}

    def reusable(self) -> bool:
        """True (and logged) when the stage's outputs can be reused; else logs why it runs."""
        why = self._why_not()
        if why is None:
            log.info("stage %s: reused (same inputs and settings; outputs unchanged)", self.stage)
            return True
        log.info("stage %s: runs (%s)", self.stage, why)
        return False

    def _why_not(self) -> str | None:
        if not self.path.is_file():
            return "no finished run recorded"
        try:
            old = yaml.safe_load(self.path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return f"{self.path} unreadable"
        changed = [k for k, v in self.digests().items() if old.get("parts", {}).get(k) != v]
        if changed:
            return "changed since the last run: " + ", ".join(changed)
        for rel, digest in (old.get("outputs") or {}).items():
            path = Path(self.out) / rel
            if not path.is_file():
                return f"output {rel} missing"
            if file_digest(path) != digest:
                return f"output {rel} modified"
        return None

    def done(self, outputs, seconds: float | None = None) -> None:
        """Record the finished stage with its output files (paths under ``out``)."""
        out = Path(self.out)
        rels = {str(Path(p).resolve().relative_to(out.resolve())): file_digest(p) for p in outputs}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"stage": self.stage, "fingerprint": fingerprint(self.parts), "parts": self.digests(),
                  "outputs": rels, "seconds": None if seconds is None else round(float(seconds), 3)}
        text = yaml.safe_dump(record, sort_keys=False)
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))

    def outputs(self) -> list[Path]:
        """The output files the record lists."""
        old = yaml.safe_load(self.path.read_text()) or {}
        return [Path(self.out) / rel for rel in (old.get("outputs") or {})]
