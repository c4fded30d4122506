"""Several training runs side by side: curves per epoch, the recipe keys that differ, best-checkpoint test figures.

The one logic behind the dashboard's Runs page and ``cxrlt runs list`` / ``cxrlt runs diff``. A run's curves are
the scalars of :func:`cxrlt_core.tracking.epoch_metrics` over its ``metrics.jsonl`` (the names TensorBoard and
MLflow get); its recipe is ``config.yaml`` with every default filled in; its test figures come from its
``predictions/test.*`` file when that file was predicted from the run's best checkpoint, scored against the labels
found for it (:func:`find_labels`) with training prevalence buckets from the recipe's ``data.train_csv``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cxrlt_core import runs
from cxrlt_core.config import recipe_from_yaml, resolve_path
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import CxrltError, InputError
from cxrlt_core.evaluation import evaluate
from cxrlt_core.predictions import read_predictions
from cxrlt_core.tracking import epoch_metrics, flatten, read_tracking
from cxrlt_core.workspace import Workspace

PathLike = str | os.PathLike[str]
CURVE_METRICS = ("train/loss", "val/loss", "val/mAP", "val/mAP_head", "val/mAP_medium", "val/mAP_tail")
TEST_SPLIT = "test"
FIGURES = ("mAP", "mAUC", "mF1", "mECE")
BUCKETS = ("head", "medium", "tail")


@dataclasses.dataclass
class RunRecord:
    """What one run folder holds, read once."""

    name: str
    path: Path
    status: dict[str, Any]
    records: list[dict[str, Any]]
    recipe: dict[str, Any]
    tracking: dict[str, Any]

    @property
    def best(self) -> dict[str, Any] | None:
        """The epoch record that wrote ``checkpoints/best`` last."""
        return next((r for r in reversed(self.records) if r.get("best")), None)


def read_recipe_dict(run_dir: PathLike) -> dict[str, Any]:
    """``config.yaml`` as plain values with every default filled in (the raw file when this version cannot
    read it, e.g. a key that a later version added)."""
    path = Path(run_dir) / runs.CONFIG_FILE
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        return recipe_from_yaml(text, str(path)).to_dict()
    except CxrltError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}


def load_run(workspace: Workspace | PathLike, name: str) -> RunRecord:
    """Read run ``name`` of ``workspace`` (an ``InputError`` naming it when there is no such run)."""
    run_dir = runs.run_dir_of(workspace, name)
    try:
        tracking = read_tracking(run_dir)
    except CxrltError:
        tracking = {}
    return RunRecord(
        name=name,
        path=run_dir,
        status=runs.read_status(run_dir) or {},
        records=runs.read_metrics(run_dir),
        recipe=read_recipe_dict(run_dir),
        tracking=tracking,
    )


def load_runs(workspace: Workspace | PathLike, names: Sequence[str]) -> list[RunRecord]:
    return [load_run(workspace, name) for name in names]


def curves_frame(records: Sequence[RunRecord], metrics: Sequence[str] | None = CURVE_METRICS) -> pd.DataFrame:
    """Long table ``run, epoch, phase, metric, value`` of every run's per-epoch scalars (``metrics``: which;
    ``None``: all)."""
    rows = []
    for run in records:
        for record in run.records:
            for metric, value in epoch_metrics(record).items():
                if metrics is None or metric in metrics:
                    rows.append((run.name, int(record["epoch"]), record.get("phase"), metric, value))
    return pd.DataFrame(rows, columns=["run", "epoch", "phase", "metric", "value"])


def _display(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def recipe_diff(recipes: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The dotted recipe keys whose values are not the same in every run: index = key, one column per run
    (a key absent from a run shows ``(absent)``)."""
    flat = {name: flatten(recipe) for name, recipe in recipes.items()}
    keys: list[str] = []
    for values in flat.values():
        keys += [k for k in values if k not in keys]
    rows = {}
    for key in keys:
        cells = [_display(values[key]) if key in values else "(absent)" for values in flat.values()]
        if len(set(cells)) > 1:
            rows[key] = cells
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(flat)).rename_axis("key")


def summary_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: state, recipe, epochs, best validation mAP (and per bucket at that epoch), MLflow run."""
    rows = []
    for run in records:
        best = run.best or {}
        val = best.get("val") or {}
        row = {
            "run": run.name,
            "state": run.status.get("state", "unknown") + (" (stale)" if runs.is_stale(run.status) else ""),
            "recipe": run.recipe.get("name", run.status.get("recipe")),
            "epochs": f"{len(run.records)}/{run.status.get('epochs', '?')}",
            "best_epoch": best.get("epoch"),
            "val_mAP": val.get("mAP"),
        }
        for bucket in BUCKETS:
            row[f"val_mAP_{bucket}"] = (val.get("buckets") or {}).get(bucket)
        row["mlflow_run"] = (run.tracking.get("mlflow") or {}).get("run_id")
        rows.append(row)
    return pd.DataFrame(rows)


def find_labels(manifest_path: PathLike) -> Path | None:
    """The labels of a predicted split: ``<name>_labels.csv`` beside the ids file (the challenge's layout), else the
    ids file itself when it has class columns; ``None`` when neither exists."""
    path = Path(manifest_path)
    sibling = path.with_name(f"{path.stem}_labels{path.suffix}")
    if sibling.is_file():
        return sibling
    if path.is_file():
        header = path.open(encoding="utf-8", errors="replace").readline().strip().split(",")
        if len(header) > 1:
            return path
    return None


def best_predictions(run: RunRecord, split: str = TEST_SPLIT) -> Path | None:
    """The run's ``predictions/<split>.parquet|csv`` when it was predicted from this run's best checkpoint alone."""
    best = runs.checkpoint_path(run.path, "best").resolve()
    for suffix in (".parquet", ".csv"):
        path = run.path / "predictions" / f"{split}{suffix}"
        if not path.is_file():
            continue
        models = read_predictions(path).metadata.get("models") or []
        if len(models) == 1 and Path(str(models[0].get("checkpoint", ""))).resolve() == best:
            return path
    return None


def best_test_figures(
    run: RunRecord, labels: PathLike | None = None, workspace: PathLike | None = None
) -> dict[str, Any]:
    """The run's best-checkpoint test figures (mAP, mAUC, mF1, mECE, per bucket) or a ``note`` saying why none."""
    row: dict[str, Any] = {"run": run.name}
    pred_path = best_predictions(run)
    if pred_path is None:
        return {**row, "note": "no test predictions of the best checkpoint"}
    pred = read_predictions(pred_path)
    labels_path = Path(labels) if labels else find_labels((pred.metadata.get("images") or {}).get("manifest", ""))
    if labels_path is None:
        return {**row, "predictions": str(pred_path), "note": "no labels found for the predicted split"}
    try:
        truth = read_manifest(labels_path)
        train = _train_manifest(run, truth.label_space, workspace)
        report = evaluate(pred, truth, train).report
    except CxrltError as exc:
        return {**row, "predictions": str(pred_path), "note": str(exc)}
    row.update({"n_images": report.get("n_images"), **{name: report.get(name) for name in FIGURES}})
    for bucket in BUCKETS:
        row[f"mAP_{bucket}"] = ((report.get("buckets") or {}).get(bucket) or {}).get("mAP")
    return {**row, "predictions": str(pred_path), "labels": str(labels_path)}


def train_csv_of(run: RunRecord, workspace: PathLike | None = None) -> Path | None:
    """The run's training CSV (``data.train_csv`` of its recipe, placeholders resolved) when it exists."""
    train_csv = (run.recipe.get("data") or {}).get("train_csv")
    if not train_csv:
        return None
    path = resolve_path(train_csv, workspace if workspace is not None else run.path.parent.parent)
    return path if path is not None and path.is_file() else None


def _train_manifest(run: RunRecord, label_space: Any, workspace: PathLike | None) -> Any:
    path = train_csv_of(run, workspace)
    return read_manifest(path, label_space=label_space) if path is not None else None


def best_test_frame(
    records: Sequence[RunRecord], labels: PathLike | None = None, workspace: PathLike | None = None
) -> pd.DataFrame:
    """:func:`best_test_figures` of each run, one row each."""
    return pd.DataFrame([best_test_figures(run, labels, workspace) for run in records])


def require_runs(names: Sequence[str]) -> None:
    if len(names) < 2:
        raise InputError(f"compare at least two runs, got {len(names)}")
