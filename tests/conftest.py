"""Shared fixtures: the real-data folder (skipped when absent) and small generated inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlt_core.paths import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` with its real radiographs and label matrix; skip when this clone has none."""
    root = shared_data_dir()
    if not (root / "README.md").is_file():
        pytest.skip(f"real data folder {root} is absent (a fresh clone has no ../shared/data)")
    return root


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory):
    """A fully built demo workspace at toy sizes (the ``tiny`` profile), shared by the dashboard tests."""
    from cxrlt_core.demo_workspace import build_demo_workspace, is_complete

    workspace = build_demo_workspace(tmp_path_factory.mktemp("tiny_ws") / "demo", profile="tiny")
    assert is_complete(workspace)
    return workspace
