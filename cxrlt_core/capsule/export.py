"""A capsule next to each exported submission (the Export page): ``W/exports/<name>.capsule/``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cxrlt_core.capsule.make import CapsuleResult, make_capsule
from cxrlt_core.predictions import read_predictions
from cxrlt_core.runs_compare import find_labels, load_run, train_csv_of
from cxrlt_core.workspace import Workspace

CAPSULE_SUFFIX = ".capsule"


def training_csv_of_predictions(provenance: dict[str, Any], workspace: Workspace) -> Path | None:
    """The training CSV of the first checkpoint's run (for head / medium / tail), when it can be found."""
    for model in provenance.get("models") or []:
        path = Path(str(model.get("checkpoint", ""))) if isinstance(model, dict) else None
        if path is not None and path.parent.parent.parent == workspace.runs_dir:
            return train_csv_of(load_run(workspace, path.parent.parent.name), workspace.root)
    return None


def export_capsule(
    workspace: Workspace,
    predictions: str | os.PathLike[str],
    submission: str | os.PathLike[str],
    test_csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
) -> CapsuleResult:
    """Pack ``submission``, the predictions it was written from and what they rest on, beside the submission.

    Figures are scored when labels are found beside the test ids (``<test>_labels.csv``, as in the demo data);
    without them the capsule still re-checks every hash and re-runs the Task 1 inference.
    """
    submission, test_csv = Path(submission), Path(test_csv)
    provenance = read_predictions(predictions).metadata
    return make_capsule(
        workspace.exports_dir / f"{submission.stem}{CAPSULE_SUFFIX}",
        predictions,
        labels=find_labels(test_csv),
        train_labels=training_csv_of_predictions(provenance, workspace),
        ids=test_csv,
        images=images or test_csv.parent / "images",
        extra_files=[submission],
        overwrite=True,
    )
