"""Experiment tracking of training runs: TensorBoard event files and MLflow runs, off unless a recipe asks.

A recipe's ``tracking:`` section switches each on (``tracking.tensorboard=true``, ``tracking.mlflow=true``). The
training loop calls a :class:`Tracker` at a few points (opened after set-up, once per finished epoch, once at the
end); with both switches off it gets a :class:`NullTracker` and neither library is imported. Only rank 0 of a
torchrun / SLURM job opens a real tracker. What is logged:

* per epoch (step = epoch, from 1): the scalars of :func:`epoch_metrics` (train loss, val loss, mAP, mAUC, mF1,
  mECE, mAP of each head / medium / tail bucket, learning rates, epoch time, throughput);
* MLflow only: the resolved recipe as params (dotted keys), and at the end the per-class table of the best epoch,
  both checkpoint sidecars, ``config.yaml`` and ``metrics.jsonl`` as artifacts; the MLflow run ID is written to
  ``tracking.json`` in the run folder, and a resumed run (``--resume``, a requeued SLURM job) continues it.

A tracker that fails after it started (a tracking server gone away) logs one warning and training goes on.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrlt_core.atomic import read_json_object, write_json

TRACKING_FILE = "tracking.json"
TENSORBOARD_DIR = "tensorboard"
PER_CLASS_FILE = "per_class.csv"
FINAL_STATES = ("finished", "stopped", "failed")


class Tracker:
    """What the training loop calls; every method is a no-op here (the default: tracking off)."""

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """One finished epoch's ``metrics.jsonl`` record."""

    def finish(self, state: str) -> None:
        """The run ended as ``finished``, ``stopped`` or ``failed``; flush and close."""


class NullTracker(Tracker):
    """Tracking off."""


class TrackerGroup(Tracker):
    """Several trackers; a failing one warns once per call and the others (and training) go on."""

    def __init__(self, trackers: Sequence[Tracker], log: logging.Logger | None = None):
        self.trackers = list(trackers)
        self.log = log or logging.getLogger("cxrlt.tracking")

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            self._call(tracker, "log_epoch", record)

    def finish(self, state: str) -> None:
        for tracker in self.trackers:
            self._call(tracker, "finish", state)

    def _call(self, tracker: Tracker, method: str, *args: Any) -> None:
        try:
            getattr(tracker, method)(*args)
        except Exception as exc:  # tracking must never end a training run
            self.log.warning("%s.%s failed: %s: %s", type(tracker).__name__, method, type(exc).__name__, exc)


def epoch_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars logged for one epoch record (names shared by TensorBoard and MLflow); missing or non-finite
    values are left out."""
    val = record.get("val") or {}
    values: dict[str, Any] = {
        "train/loss": record.get("train_loss"),
        "val/loss": val.get("loss"),
        "val/mean_of_buckets": val.get("mean_of_buckets"),
        "time/epoch_seconds": record.get("epoch_seconds"),
        "time/images_per_second": record.get("images_per_second"),
        "train/skipped_batches": record.get("skipped_batches"),
    }
    for name in ("mAP", "mAUC", "mF1", "mECE"):
        values[f"val/{name}"] = val.get(name)
    for bucket, value in (val.get("buckets") or {}).items():
        values[f"val/mAP_{bucket}"] = value
    for i, lr in enumerate(record.get("lr") or []):
        values[f"lr/group{i}"] = lr
    out = {}
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: ``{"optim": {"phase1": {"lr": 1e-3}}}`` → ``{"optim.phase1.lr": 1e-3}``;
    an empty mapping stays one key."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def read_tracking(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``tracking.json`` (what was tracked where), or ``{}`` when the run was not tracked."""
    path = Path(run_dir) / TRACKING_FILE
    return read_json_object(path, "tracking") if path.exists() else {}


def update_tracking(run_dir: str | os.PathLike[str], key: str, value: Mapping[str, Any]) -> None:
    """Merge ``{key: value}`` into the run's ``tracking.json`` (atomically)."""
    data = read_tracking(run_dir)
    data[key] = dict(value)
    write_json(Path(run_dir) / TRACKING_FILE, data)


def open_tracker(
    recipe: Any,
    run_dir: str | os.PathLike[str],
    workspace: str | os.PathLike[str] | None = None,
    first_epoch: int = 0,
    is_main: bool = True,
    log: logging.Logger | None = None,
) -> Tracker:
    """The tracker a recipe asks for: a :class:`NullTracker` when tracking is off or on ranks other than 0.

    Args:
        recipe: the checked :class:`~cxrlt_core.config.Recipe` (its ``tracking`` section).
        run_dir: the run folder.
        workspace: what ``${workspace}`` means in ``tracking.mlflow_uri`` (default MLflow store: ``W/mlruns``).
        first_epoch: epochs already trained (a resumed run): TensorBoard drops its events from later epochs.
        is_main: rank 0 (only rank 0 tracks).
        log: the run's logger (warnings of a failing tracker go there).
    """
    config = recipe.tracking
    if not is_main or not (config.tensorboard or config.mlflow):
        return NullTracker()
    trackers: list[Tracker] = []
    run_dir = Path(run_dir)
    if config.tensorboard:
        from cxrlt_core.tracking.tensorboard_tracker import TensorBoardTracker

        trackers.append(TensorBoardTracker(recipe, run_dir, first_epoch))
    if config.mlflow:
        from cxrlt_core.tracking.mlflow_tracker import MlflowTracker

        trackers.append(MlflowTracker(recipe, run_dir, workspace))
    return TrackerGroup(trackers, log)
