"""What the Export page proposes and checks before it writes a submission.

- the default Task 1 ensemble: the runs with the best validation mAP (not the first names alphabetically);
- each run's ensemble weight from its head, as the winning method weighs them (CSRA 1.5, MLP 1.0; docs/method.md
  "Task 1 inference"); any other head 1.0;
- the saved post-processing choices of the Gating page and the files beside them (``W/postprocess/<name>.json``
  + ``<name>.calibration.json`` / ``<name>.thresholds.json``);
- whether a calibration fitted on one model's validation predictions is applied to another model or an ensemble;
- which export files a name would overwrite.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cxrlt_core.postprocess_study import PostprocessChoice
from cxrlt_core.runs import CONFIG_FILE, checkpoint_path, read_metrics, read_status
from cxrlt_core.workspace import Workspace, check_name

HEAD_WEIGHTS = {"csra": 1.5, "mlp": 1.0}
_RUN_OF_PREDICTIONS = re.compile(r"(?:^|/)runs/([^/]+)/predictions/")


def best_val_map(run_dir: Path) -> float | None:
    """The run's best validation mAP: ``best_mAP`` of its status, else the best of ``metrics.jsonl``."""
    value = (read_status(run_dir) or {}).get("best_mAP")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    maps = [(m.get("val") or {}).get("mAP") for m in read_metrics(run_dir)]
    finite = [float(v) for v in maps if isinstance(v, (int, float)) and math.isfinite(v)]
    return max(finite) if finite else None


def ranked_runs(workspace: Workspace) -> list[tuple[str, float | None]]:
    """Runs with a best checkpoint, best validation mAP first (runs without one last, by name)."""
    found = [
        (name, best_val_map(workspace.run(name)))
        for name in workspace.list_runs()
        if checkpoint_path(workspace.run(name), "best").is_file()
    ]
    return sorted(found, key=lambda item: (item[1] is None, -(item[1] or 0.0), item[0]))


def default_ensemble(workspace: Workspace, size: int = 2) -> list[str]:
    """The ``size`` runs with the best validation mAP."""
    return [name for name, _ in ranked_runs(workspace)[:size]]


def run_head(run_dir: Path) -> str | None:
    """The head named in the run's ``config.yaml`` (``model.head``), or ``None``."""
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    head = ((data or {}).get("model") or {}).get("head") if isinstance(data, dict) else None
    return head if isinstance(head, str) else None


def head_weight(run_dir: Path) -> float:
    """The run's ensemble weight: :data:`HEAD_WEIGHTS` of its head, 1.0 for any other head."""
    return HEAD_WEIGHTS.get(run_head(run_dir) or "", 1.0)


@dataclasses.dataclass(frozen=True)
class SavedPostprocess:
    """A saved post-processing choice and the files beside it."""

    name: str
    choice: PostprocessChoice
    calibration: Path | None
    thresholds: Path | None

    @property
    def fitted_on_run(self) -> str | None:
        """The run whose validation predictions the calibration / thresholds were fitted on, if recorded."""
        source = str((self.choice.fitted_on or {}).get("predictions", ""))
        match = _RUN_OF_PREDICTIONS.search(source.replace("\\", "/"))
        return match.group(1) if match else None


def saved_postprocess_names(workspace: Workspace) -> list[str]:
    """Names of the saved choices: ``<name>.json`` files, not the ``<name>.<kind>.json`` files beside them."""
    folder = workspace.postprocess_dir
    return sorted(p.stem for p in folder.glob("*.json") if p.name.count(".") == 1) if folder.is_dir() else []


def load_postprocess(workspace: Workspace, name: str) -> SavedPostprocess:
    """The saved choice ``name`` with the paths of its calibration and thresholds files (when it has them)."""
    folder = workspace.postprocess_dir
    choice, record = PostprocessChoice.load(folder / f"{check_name(name, 'post-processing name')}.json")
    calibration = folder / record["calibration_file"] if record.get("calibration_file") else None
    thresholds = folder / record["thresholds_file"] if record.get("thresholds_file") else None
    return SavedPostprocess(name, choice, calibration, thresholds)


def calibration_note(saved: SavedPostprocess, runs: Sequence[str]) -> str | None:
    """A warning when the saved calibration was fitted on other predictions than the ensemble's, else ``None``."""
    if saved.calibration is None:
        return None
    source = saved.fitted_on_run
    if source is None:
        return "The calibration does not record which predictions it was fitted on; check it suits these runs."
    if list(runs) == [source]:
        return None
    used = ", ".join(runs) or "no run"
    what = "an ensemble of" if len(runs) > 1 else "the run"
    return (
        f"The calibration was fitted on {source}'s validation predictions but is applied to {what} {used}: "
        "an ensemble's probabilities are distributed differently, so refit it on the ensemble's validation "
        "predictions (Gating page) for calibrated figures."
    )


def export_files(workspace: Workspace, name: str) -> list[Path]:
    """The files an export called ``name`` writes that already exist (submission CSV, predictions, capsule)."""
    check_name(name, "export name")
    folder = workspace.exports_dir
    candidates = (folder / f"{name}.csv", folder / f"{name}.predictions.parquet", folder / f"{name}.capsule")
    return [path for path in candidates if path.exists()]


def weights_for(workspace: Workspace, runs: Sequence[str]) -> dict[str, Any]:
    """Run name → default ensemble weight (:func:`head_weight`)."""
    return {run: head_weight(workspace.run(run)) for run in runs}
