"""A small, independent FBX binary reader for tests: parse a file into a node tree and dump it.

Written from the published layout of the binary format (header, node records, typed properties,
zlib-compressed arrays, null record, footer), separately from :mod:`mocap.export.fbx_binary`, so a
round trip through both checks the writer against a second implementation.

Usage: ``python tests/fbx_dump.py FILE [--depth N] [--max-array K]`` prints the node tree.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")
_SCALAR = {"Y": "<h", "C": "<?", "I": "<i", "F": "<f", "D": "<d", "L": "<q"}
_ARRAY = {"f": "<f4", "d": "<f8", "l": "<i8", "i": "<i4", "b": "?"}


@dataclass
class Node:
    name: str
    props: list = field(default_factory=list)  # (type code, value) pairs
    children: list = field(default_factory=list)
    has_null_record: bool = False  # whether the record ended with a nested-list null record

    def find(self, name: str) -> Node | None:
        return next((c for c in self.children if c.name == name), None)

    def find_all(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]

    @property
    def values(self) -> list:
        return [v for _, v in self.props]


@dataclass
class FBXFile:
    version: int
    nodes: list[Node]
    footer_ok: bool

    def find(self, name: str) -> Node | None:
        return next((c for c in self.nodes if c.name == name), None)


def _read_prop(buf: bytes, pos: int) -> tuple[tuple[str, object], int]:
    code = chr(buf[pos])
    pos += 1
    if code in _SCALAR:
        fmt = _SCALAR[code]
        size = struct.calcsize(fmt)
        return (code, struct.unpack_from(fmt, buf, pos)[0]), pos + size
    if code in "SR":
        (n,) = struct.unpack_from("<I", buf, pos)
        raw = bytes(buf[pos + 4 : pos + 4 + n])
        return (code, raw), pos + 4 + n
    if code in _ARRAY:
        length, encoding, clen = struct.unpack_from("<III", buf, pos)
        data = bytes(buf[pos + 12 : pos + 12 + clen])
        if encoding == 1:
            data = zlib.decompress(data)
        elif encoding != 0:
            raise ValueError(f"unknown array encoding {encoding} at byte {pos}")
        arr = np.frombuffer(data, dtype=_ARRAY[code])
        if arr.shape != (length,):
            raise ValueError(f"array length {length} does not match {arr.shape} at byte {pos}")
        return (code, arr), pos + 12 + clen
    raise ValueError(f"unknown property type {code!r} at byte {pos - 1}")


def _read_node(buf: bytes, pos: int, wide: bool) -> tuple[Node | None, int]:
    if wide:
        end, nprops, _plen = struct.unpack_from("<QQQ", buf, pos)
        pos += 24
    else:
        end, nprops, _plen = struct.unpack_from("<III", buf, pos)
        pos += 12
    name_len = buf[pos]
    pos += 1
    if end == 0:
        return None, pos
    name = buf[pos : pos + name_len].decode("ascii")
    pos += name_len
    node = Node(name)
    for _ in range(nprops):
        prop, pos = _read_prop(buf, pos)
        node.props.append(prop)
    null_size = 25 if wide else 13
    while pos < end:
        if end - pos == null_size and not any(buf[pos:end]):
            node.has_null_record = True
            pos = end
            break
        child, pos = _read_node(buf, pos, wide)
        if child is None:
            raise ValueError(f"unexpected null record inside {name!r} at byte {pos}")
        node.children.append(child)
    if pos != end:
        raise ValueError(f"node {name!r} ends at {pos}, header says {end}")
    return node, end


def read_fbx(path: str | Path) -> FBXFile:
    """Parse a binary FBX file into its top-level node list (raises ``ValueError`` if malformed)."""
    buf = Path(path).read_bytes()
    if not buf.startswith(MAGIC):
        raise ValueError(f"{path}: not a binary FBX file")
    (version,) = struct.unpack_from("<I", buf, 23)
    wide = version >= 7500
    pos = 27
    nodes = []
    while True:
        node, pos = _read_node(buf, pos, wide)
        if node is None:
            break
        nodes.append(node)
    footer_ok = buf.endswith(FOOTER_MAGIC) and struct.unpack_from("<I", buf, len(buf) - 16 - 120 - 4)[0] == version
    return FBXFile(version, nodes, footer_ok)


def format_value(code: str, value, max_array: int = 6) -> str:
    if code in _ARRAY:
        head = ", ".join(f"{v:g}" if code in "fd" else str(v) for v in value[:max_array])
        return f"{code}[{len(value)}]({head}{', …' if len(value) > max_array else ''})"
    if code in "SR":
        return repr(value.replace(b"\x00\x01", b"::"))[1:] if code == "S" else f"R[{len(value)}]"
    return f"{code}:{value}"


def dump(nodes: list[Node], depth: int = 99, max_array: int = 6, indent: int = 0, out=sys.stdout) -> None:
    for node in nodes:
        props = ", ".join(format_value(c, v, max_array) for c, v in node.props)
        out.write(f"{'  ' * indent}{node.name}: {props}{'  [null]' if node.has_null_record else ''}\n")
        if indent + 1 < depth:
            dump(node.children, depth, max_array, indent + 1, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--depth", type=int, default=99)
    parser.add_argument("--max-array", type=int, default=6)
    args = parser.parse_args(argv)
    fbx = read_fbx(args.file)
    print(f"# version {fbx.version}, footer {'ok' if fbx.footer_ok else 'MISSING'}")
    dump(fbx.nodes, args.depth, args.max_array)
    return 0


if __name__ == "__main__":
    sys.exit(main())
