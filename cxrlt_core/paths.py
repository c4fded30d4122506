"""Where things live: the repository, the shared real-data folder, the workspace."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """The real-data folder beside the repository (``../shared/data``), or ``$CXRLT_SHARED_DATA``.

    It may not exist (a user's fresh clone); callers check and skip.
    """
    override = os.environ.get("CXRLT_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def default_workspace() -> Path:
    """``$CXRLT_WORKSPACE`` or ``./workspace/demo``."""
    override = os.environ.get("CXRLT_WORKSPACE")
    return Path(override) if override else Path("workspace") / "demo"
