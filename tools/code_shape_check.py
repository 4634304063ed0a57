"""The package's code shape: functions longer than ``LIMIT`` lines, and private names imported
across modules. ``make lint`` runs it; ``tests/test_code_shape.py`` runs the same functions.

- **Long functions:** every ``def`` (methods and nested functions too) counted from its ``def``
  line to its last line: the docstring, comments and blank lines inside count, the decorators
  above do not.
- **Private imports:** ``from mocap.x import _name`` is a leak unless ``mocap.x`` is a private
  module (``_numba_kernels``) of the importer's own package, or ``_name`` is itself a private
  module of the importer's own package (``from mocap.triangulation import _cameras`` inside
  ``mocap/triangulation/``). A private module, whatever is taken from it, serves its own package
  (and the packages inside it) only: ``mocap._checks`` anywhere in ``mocap``,
  ``mocap.triangulation._cameras`` only under ``mocap/triangulation/``. Relative imports are
  resolved first.

usage: python tools/code_shape_check.py [PACKAGE_DIR] [--limit N]     (default: mocap, 80)

Prints one line per finding and a summary; exit status 1 when anything is found.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

LIMIT = 80


@dataclass(frozen=True)
class Finding:
    """One problem: ``path`` (relative to the package's parent folder), ``line`` and what."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.message}"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _sources(root: Path):
    """``(path relative to root's parent, its package as a tuple of names, parsed tree)`` per file."""
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root.parent)
        yield rel.as_posix(), rel.with_suffix("").parts[:-1], ast.parse(f.read_text(), str(f))


def long_functions(root: str | Path, limit: int = LIMIT) -> list[Finding]:
    """Functions of the package at ``root`` longer than ``limit`` lines."""
    out = []
    for path, _, tree in _sources(Path(root)):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(Finding(path, node.lineno, f"{node.name} {n} lines (limit {limit})"))
    return sorted(out, key=lambda f: (f.path, f.line))


def _module_of(node: ast.ImportFrom, here: tuple[str, ...]) -> tuple[str, ...]:
    """The absolute module an import-from reads, ``here`` being the importer's package."""
    if not node.level:
        return tuple(node.module.split("."))
    base = here[: len(here) - (node.level - 1)]
    return base + (tuple(node.module.split(".")) if node.module else ())


def _private_module_leak(src: tuple[str, ...], here: tuple[str, ...]) -> str | None:
    """Why importing from module ``src`` inside package ``here`` leaks a private module, or None."""
    for i, part in enumerate(src[1:], start=1):
        if _is_private(part):
            owner = src[:i]
            if here[:i] != owner:
                return f"a private module of {'.'.join(owner)}, used outside it"
            return None
    return None


def private_imports(root: str | Path) -> list[Finding]:
    """Private names (and private modules) of the package at ``root`` imported across modules."""
    root = Path(root)
    pkg = root.name
    out = []
    for path, here, tree in _sources(root):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    src = tuple(a.name.split("."))
                    why = _private_module_leak(src, here) if src[0] == pkg else None
                    if why:
                        out.append(Finding(path, node.lineno, f"imports {a.name} ({why})"))
            if not isinstance(node, ast.ImportFrom):
                continue
            src = _module_of(node, here)
            if not src or src[0] != pkg:
                continue
            module = ".".join(src)
            why = _private_module_leak(src, here)
            if why:
                names = ", ".join(a.name for a in node.names)
                out.append(Finding(path, node.lineno, f"imports {names} from {module} ({why})"))
                continue
            for a in node.names:
                if not _is_private(a.name):
                    continue
                if src[:-1] == here and _is_private(src[-1]):
                    continue  # the contents of a private module beside the importer
                if src == here and (root.parent.joinpath(*src, f"{a.name}.py").exists()
                                    or root.parent.joinpath(*src, a.name, "__init__.py").exists()):
                    continue  # a private module of the importer's own package
                out.append(Finding(path, node.lineno, f"imports {a.name} from {module}"))
    return sorted(out, key=lambda f: (f.path, f.line))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", nargs="?", default="mocap", help="package folder (default: mocap)")
    parser.add_argument("--limit", type=int, default=LIMIT, help=f"longest function, lines (default {LIMIT})")
    args = parser.parse_args(argv)
    long_fns = long_functions(args.package, args.limit)
    private = private_imports(args.package)
    for f in long_fns:
        print(f"long: {f}")
    for f in private:
        print(f"private import: {f}")
    print(f"code shape: {len(long_fns)} functions over {args.limit} lines, "
          f"{len(private)} private names imported across modules")
    return 1 if long_fns or private else 0


if __name__ == "__main__":
    sys.exit(main())
