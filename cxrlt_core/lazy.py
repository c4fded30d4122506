"""Package names loaded on first use (PEP 562 module ``__getattr__``), so that importing a package stays cheap.

``training``, ``inference`` and ``zeroshot`` export names whose modules import torch or open_clip; a package's
``__getattr__ = lazy_exports(__name__, {name: module})`` imports ``module`` only when ``name`` is first read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that returns ``exports[name]``'s attribute ``name`` (module paths may be relative
    to ``package``: ``".tta"``)."""

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return getattr_
