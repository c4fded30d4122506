"""A tiny, fully built demo workspace for the dashboard tests (built once per test session, tens of seconds)."""

from __future__ import annotations

from pathlib import Path

from cxrlt_core.demo_workspace import build_demo_workspace, is_complete
from cxrlt_core.workspace import Workspace


def build_tiny_workspace(root: Path) -> Workspace:
    """The ``tiny`` demo profile at ``root``: every step of the real build, at toy sizes."""
    workspace = build_demo_workspace(root, profile="tiny")
    assert is_complete(workspace)
    return workspace
