"""MLflow runs: the resolved recipe as params, per-epoch metrics, the per-class table and checkpoint sidecars as
artifacts, through ``MlflowClient`` (no global MLflow state).

The tracking URI is ``tracking.mlflow_uri`` (any URI MLflow takes: ``http(s)://`` servers, ``file:`` stores, and the
database stores of a full MLflow install); without one, a file store at ``<workspace>/mlruns``. A local folder is a
file store, which MLflow 3 keeps behind ``MLFLOW_ALLOW_FILE_STORE`` (set here when unset). MLflow's usage telemetry
is switched off (``MLFLOW_DISABLE_TELEMETRY``) before MLflow is imported, so nothing leaves the machine unless the
URI points elsewhere.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrlt_core import __version__, runs
from cxrlt_core.config import resolve_path
from cxrlt_core.errors import InputError
from cxrlt_core.tracking import PER_CLASS_FILE, Tracker, epoch_metrics, flatten, read_tracking, update_tracking

# MLflow reads these when it is imported: no telemetry, no git probing. This module is imported only when a run
# tracks to MLflow (cxrlt_core.tracking.open_tracker).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

DEFAULT_STORE = "${workspace}/mlruns"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params per log_batch call
_FINAL = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def resolve_tracking_uri(uri: str | None, workspace: str | os.PathLike[str] | None = None) -> str:
    """A tracking URI: ``None`` → the workspace's file store; a path (``${workspace}/...`` allowed) → ``file://``."""
    value = DEFAULT_STORE if uri is None else uri
    if _SCHEME.match(value) and len(value.split(":", 1)[0]) > 1:  # a scheme, not a Windows drive letter
        return value
    return resolve_path(value, workspace).as_uri()  # type: ignore[union-attr]


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``, set up to stay offline (see the module docstring)."""
    if tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=tracking_uri)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


class MlflowTracker(Tracker):
    """One MLflow run per cxrlt run; a resumed cxrlt run continues the MLflow run named in ``tracking.json``."""

    def __init__(self, recipe: Any, run_dir: Path, workspace: str | os.PathLike[str] | None = None):
        self.run_dir = Path(run_dir)
        self.uri = resolve_tracking_uri(recipe.tracking.mlflow_uri, workspace)
        self.client = mlflow_client(self.uri)
        previous = read_tracking(self.run_dir).get("mlflow") or {}
        try:
            if previous.get("run_id") and previous.get("tracking_uri") == self.uri:
                self.run_id = str(previous["run_id"])
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                self.run_id = self._create_run(recipe)
            self._log_params(recipe)
        except Exception as exc:
            raise InputError(f"MLflow tracking at {self.uri}: {type(exc).__name__}: {exc}") from None
        update_tracking(
            self.run_dir,
            "mlflow",
            {"run_id": self.run_id, "experiment_id": self.experiment_id, "tracking_uri": self.uri},
        )

    def _create_run(self, recipe: Any) -> str:
        name = recipe.tracking.experiment or recipe.name
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        tags = {"cxrlt.version": __version__, "cxrlt.recipe": recipe.name, "cxrlt.run_dir": str(self.run_dir)}
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name, tags=tags)
        return run.info.run_id

    @property
    def experiment_id(self) -> str:
        return self.client.get_run(self.run_id).info.experiment_id

    def _log_params(self, recipe: Any) -> None:
        """The resolved recipe; on resume, a key whose value changed is a tag (MLflow params are write-once)."""
        existing = self.client.get_run(self.run_id).data.params
        params, tags = [], []
        for key, value in flatten(recipe.to_dict()).items():
            text = _param_value(value)
            if key not in existing:
                params.append(Param(key, text))
            elif existing[key] != text:
                tags.append(RunTag(f"cxrlt.resumed_with.{key}", text))
        for i in range(0, max(len(params), len(tags)), BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + BATCH], tags=tags[i : i + BATCH])

    def log_epoch(self, record: Mapping[str, Any]) -> None:

        step = int(record["epoch"])
        stamp = int(float(record.get("time") or 0) * 1000)
        metrics = [Metric(name, value, stamp, step) for name, value in epoch_metrics(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, state: str) -> None:
        with tempfile.TemporaryDirectory(prefix="cxrlt-mlflow-") as tmp:
            table = self._per_class_table(Path(tmp) / PER_CLASS_FILE)
            if table is not None:
                self.client.log_artifact(self.run_id, str(table))
        for name in (runs.CONFIG_FILE, runs.METRICS_FILE):
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        for which in ("best", "last"):
            sidecar = runs.checkpoint_path(self.run_dir, which).with_suffix(".json")
            if sidecar.is_file():
                self.client.log_artifact(self.run_id, str(sidecar), artifact_path=runs.CHECKPOINT_DIR)
        self.client.set_terminated(self.run_id, status=_FINAL.get(state, "FINISHED"))

    def _per_class_table(self, path: Path) -> Path | None:
        """Validation AP per class at the best epoch (and the last), as CSV; ``None`` before any epoch."""
        records = runs.read_metrics(self.run_dir)
        if not records:
            return None
        best = next((r for r in reversed(records) if r.get("best")), records[-1])
        last = records[-1]
        best_ap = (best.get("val") or {}).get("per_class_ap") or {}
        last_ap = (last.get("val") or {}).get("per_class_ap") or {}
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", f"ap_best_epoch_{best.get('epoch')}", f"ap_last_epoch_{last.get('epoch')}"])
            for name in best_ap:
                writer.writerow([name, _cell(best_ap.get(name)), _cell(last_ap.get(name))])
        return path


def _cell(value: Any) -> str:
    return "" if value is None else repr(float(value))
