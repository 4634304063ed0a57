"""The package's code shape (``tools/code_shape_check.py``, also ``make lint``): no function over
80 lines, no private name imported across modules or sub-packages."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shape():
    spec = importlib.util.spec_from_file_location("code_shape_check", REPO / "tools" / "code_shape_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_no_function_over_80_lines(shape):
    found = shape.long_functions(REPO / "mocap", 80)
    assert not found, "functions over 80 lines; split them into named steps:\n" + "\n".join(map(str, found))


def test_no_private_name_imported_across_modules(shape):
    found = shape.private_imports(REPO / "mocap")
    assert not found, ("private names imported across modules; make them public (name, docstring) or move "
                       "them:\n" + "\n".join(map(str, found)))


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_long_function_lines_count_from_def_with_docstring_not_decorators(shape, tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(77))
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        # 80 lines: def, 2-line docstring, 77 statements; the decorator above does not count
        "pkg/a.py": f"import functools\n\n\n@functools.cache\ndef fits():\n    '''Doc.\n    '''\n{body}\n",
        # 81 lines: the same with one blank line inside
        "pkg/b.py": f"def too_long():\n    '''Doc.\n    '''\n\n{body}\n",
    })
    found = shape.long_functions(pkg, 80)
    assert [(f.path, f.line, f.message) for f in found] == [("pkg/b.py", 1, "too_long 81 lines (limit 80)")]


def test_private_imports_leaks_are_found_and_own_private_modules_allowed(shape, tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/_util.py": "_X = 1\ny = 2\n",
        "pkg/a/__init__.py": "",
        "pkg/a/_kernels.py": "_K = 1\nk = 2\n",
        "pkg/a/core.py": "_helper = 1\n",
        "pkg/a/ok.py": """\
            from pkg._util import y
            from pkg.a import _kernels
            from pkg.a._kernels import _K, k
            from ._kernels import _K as K2
            import pkg.a._kernels
        """,
        "pkg/a/leak.py": "from pkg.a.core import _helper\nfrom .core import _helper as h2\n",
        "pkg/b/__init__.py": "",
        "pkg/b/leak.py": """\
            from pkg.a._kernels import k
            import pkg.a._kernels
            from pkg._util import _X
            from pkg.a import _kernels
        """,
    })
    found = [str(f) for f in shape.private_imports(pkg)]
    assert found == [
        "pkg/a/leak.py:1 imports _helper from pkg.a.core",
        "pkg/a/leak.py:2 imports _helper from pkg.a.core",
        "pkg/b/leak.py:1 imports k from pkg.a._kernels (a private module of pkg.a, used outside it)",
        "pkg/b/leak.py:2 imports pkg.a._kernels (a private module of pkg.a, used outside it)",
        "pkg/b/leak.py:3 imports _X from pkg._util",
        "pkg/b/leak.py:4 imports _kernels from pkg.a",
    ]
