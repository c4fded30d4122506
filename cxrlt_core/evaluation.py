"""Score a predictions file against a labels file: the one path shared by ``cxrlt evaluate`` and the Results page.

Rows are matched by id in any order and classes by name (``predictions.align_to_labels``); training labels, when
given, set each class's head / medium / tail bucket by its training prevalence.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.data.manifest import Manifest, read_manifest
from cxrlt_core.labels import LabelSpace
from cxrlt_core.metrics import ReportInputs, compute_report_with_inputs
from cxrlt_core.predictions import Predictions, align_to_labels, read_predictions
from cxrlt_core.runs import read_metrics
from cxrlt_core.scorers import Scorer

PathLike = str | os.PathLike[str]


@dataclasses.dataclass
class Evaluation:
    """A report with the aligned arrays it was computed from (for curves and comparisons)."""

    report: dict[str, Any]
    ids: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    notes: list[str]
    patients: np.ndarray | None = None
    inputs: ReportInputs | None = None


def training_columns(train: Manifest, classes: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """The training label matrix in the order of ``classes``; a class without a training column is all unknown."""
    matrix = np.full((len(train), len(classes)), np.nan, dtype=np.float32)
    absent = []
    for j, name in enumerate(classes):
        if name in train.classes:
            matrix[:, j] = train.labels[:, train.classes.index(name)]
        else:
            absent.append(name)
    return matrix, absent


def resampling_clusters(manifest: Manifest) -> tuple[np.ndarray | None, str]:
    """What a bootstrap keeps together: patients when the labels name them, else studies, else nothing (images)."""
    if manifest.patients is not None:
        return manifest.patients, "patient"
    studies = manifest.metadata()["study"]
    if studies.notna().any():
        return studies.to_numpy(dtype=object), "study"
    return None, "image"


def evaluate(
    pred: Predictions,
    labels: Manifest,
    train: Manifest | None = None,
    threshold: float = 0.5,
    skipped_as_zero: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    progress: Any = None,
    resample: str = "auto",
    scorer: Scorer | str | None = None,
    class_thresholds: Mapping[str, float] | None = None,
) -> Evaluation:
    """Align ``pred`` to ``labels`` and compute the challenge report (see ``metrics.compute_report``).

    The bootstrap resamples patients whenever ``labels`` has a patient column (``resample="image"`` to resample
    images); ``scorer`` names a scorer variant (:mod:`cxrlt_core.scorers`).
    """
    scores, y, classes = align_to_labels(pred, labels)
    notes = []
    unscored = [c for c in labels.classes if c not in classes]
    if unscored:
        notes.append(f"{len(unscored)} label columns have no prediction and are not scored: {unscored}")
    train_matrix = None
    if train is not None:
        train_matrix, absent = training_columns(train, classes)
        if absent:
            notes.append(f"no training column for {absent}: their prevalence counts as 0 (tail)")
    clusters, kind = resampling_clusters(labels)
    if bootstrap and resample != "image" and kind != "patient":
        notes.append(
            f"{labels.name} has no patient column: the bootstrap resamples "
            + ("whole studies (StudyID)" if kind == "study" else "images, not patients")
        )
    report, inputs = compute_report_with_inputs(
        y,
        scores,
        list(classes),
        train_labels=train_matrix,
        threshold=threshold,
        skipped_as_zero=skipped_as_zero,
        bootstrap=bootstrap,
        seed=seed,
        progress=progress,
        patients=clusters,
        resample=resample,
        cluster_kind=kind,
        scorer=scorer,
        class_thresholds=class_thresholds,
    )
    return Evaluation(report, np.asarray(labels.ids), scores, y, classes, notes, labels.patients, inputs)


def evaluate_files(
    pred_path: PathLike,
    labels_path: PathLike,
    train_labels_path: PathLike | None = None,
    label_space: LabelSpace | str | None = None,
    uncertain: str = "ignore",
    **kwargs: Any,
) -> Evaluation:
    """:func:`evaluate` on files: predictions (.csv/.parquet), a labels CSV and optionally the training CSV."""
    labels = read_manifest(labels_path, label_space=label_space, uncertain=uncertain)
    train = None
    if train_labels_path:
        train = read_manifest(train_labels_path, label_space=labels.label_space, uncertain=uncertain)
    return evaluate(read_predictions(pred_path), labels, train, **kwargs)


PREVALENCE_EVAL = "prevalence (these labels)"
PREVALENCE_TRAIN = "prevalence (training, sets the bucket)"


def per_class_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The report's per-class figures as a table (one row per class, label-space order).

    Two labelled prevalence columns: of the scored labels, and of the training labels that set the buckets.
    """
    rows = []
    for name, row in report["per_class"].items():
        entry = {
            "class": name,
            "bucket": row.get("bucket", ""),
            "n_pos": row["n_pos"],
            PREVALENCE_EVAL: row.get("prevalence", np.nan),
            PREVALENCE_TRAIN: row.get("train_prevalence", np.nan),
        }
        for figure in ("ap", "auc", "f1", "ece"):
            label = figure.upper()
            low, high = row.get(f"{figure}_ci", (np.nan, np.nan))
            entry.update({label: row[figure], f"{label} low": low, f"{label} high": high})
        entry["skipped"] = name in report.get("skipped", ())
        rows.append(entry)
    return pd.DataFrame(rows)


def bucket_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """Head / medium / tail mAP with its interval and class count (empty without training labels)."""
    rows = []
    for name, bucket in report.get("buckets", {}).items():
        low, high = bucket.get("mAP_ci", (np.nan, np.nan))
        rows.append({"bucket": name, "classes": len(bucket["classes"]), "mAP": bucket["mAP"], "low": low,
                     "high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=["bucket", "classes", "mAP", "low", "high"])


def best_val_map(prediction_file: PathLike) -> float:
    """The best validation mAP its run logged (``runs/<run>/metrics.jsonl``), NaN when unknown."""
    values = []
    for record in read_metrics(Path(prediction_file).parent.parent):
        value = (record.get("val") or {}).get("mAP") if isinstance(record, dict) else None
        if isinstance(value, (int, float)) and np.isfinite(value):
            values.append(float(value))
    return max(values) if values else float("nan")


def order_by_val_map(files: Mapping[str, PathLike], prefer: str = "test") -> list[str]:
    """File labels ordered best run first (by best validation mAP; unknown last), a ``prefer`` split first within
    a run, then by name: the Results page opens on the strongest run's test predictions."""

    def key(label: str) -> tuple[float, int, str]:
        score = best_val_map(files[label])
        return (-score if np.isfinite(score) else np.inf, 0 if Path(files[label]).stem == prefer else 1, label)

    return sorted(files, key=key)
