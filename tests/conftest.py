"""Shared fixtures: the real-data folder (skipped when absent) and small generated inputs.

The real data sets are found through ``--shared-data DIR`` or ``$CXRLT_SHARED_DATA``; a developer checkout that has
them beside the clone (``../shared/data``) needs neither. The folder found is exported as ``$CXRLT_SHARED_DATA`` so
recipes (``${shared_data}``) and child processes see the same one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cxrlt_core.paths import SHARED_DATA_ENV

_BESIDE_THE_CLONE = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shared-data",
        default=None,
        help=f"folder of the real data sets (default: ${SHARED_DATA_ENV}, else ../shared/data beside the clone)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--shared-data") or os.environ.get(SHARED_DATA_ENV)
    if chosen is None and _BESIDE_THE_CLONE.is_dir():
        chosen = str(_BESIDE_THE_CLONE)
    if chosen is not None:
        os.environ[SHARED_DATA_ENV] = str(Path(chosen).resolve())


@pytest.fixture(autouse=True)
def _real_main_module():
    """Put the real ``__main__`` back after every test: Streamlit's AppTest installs its script as ``__main__`` and
    leaves it there, and spawn-started workers of later tests would then re-run (or fail to find) that script on
    start-up, so a multiprocessing pool keeps replacing workers that die."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real radiographs and label matrix; skip when no folder was named and none lies beside the clone."""
    named = os.environ.get(SHARED_DATA_ENV)
    root = Path(named) if named else _BESIDE_THE_CLONE
    if not (root / "README.md").is_file():
        pytest.skip(f"real data folder {root} is absent (use --shared-data DIR or ${SHARED_DATA_ENV})")
    return root


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory):
    """A fully built demo workspace at toy sizes (the ``tiny`` profile), shared by the dashboard tests."""
    from cxrlt_core.demo_workspace import build_demo_workspace, is_complete

    workspace = build_demo_workspace(tmp_path_factory.mktemp("tiny_ws") / "demo", profile="tiny")
    assert is_complete(workspace)
    return workspace
