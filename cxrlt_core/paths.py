"""Where things live: the package's source folder, the optional real-data folder, the workspace."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


SHARED_DATA_ENV = "CXRLT_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """The folder of real data sets named by ``$CXRLT_SHARED_DATA``, or ``None`` when the variable is unset.

    Recipes refer to it as ``${shared_data}``; nothing in the package assumes where it lies.
    """
    override = os.environ.get(SHARED_DATA_ENV)
    return Path(override) if override else None


def default_workspace() -> Path:
    """``$CXRLT_WORKSPACE`` or ``./workspace/demo``."""
    override = os.environ.get("CXRLT_WORKSPACE")
    return Path(override) if override else Path("workspace") / "demo"
