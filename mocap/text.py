"""Docstrings shown to a person in a terminal or a YAML comment: without reST markup."""

from __future__ import annotations

import re


def plain_text(doc: str | None) -> str | None:
    """reST roles and double backquotes removed: ``:func:`~mocap.x.f``` -> ``f``,
    ````DIR/x```` -> ``DIR/x``."""
    if not doc:
        return doc
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return doc.replace("``", "")
