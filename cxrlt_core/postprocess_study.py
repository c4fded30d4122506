"""Study the post-processing of Task 1 probabilities on labelled data: normal gating, calibration, thresholds.

Shared by the Gating page and ``benchmarks/postprocess_demo.py``. The pipeline order is the one ``cxrlt predict``
applies: TTA + ensemble → normal gating → calibration (fitted on validation) → per-class thresholds (fitted on the
validation scores after calibration). Every function works on arrays already aligned by id and class.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.atomic import read_json_object, write_json
from cxrlt_core.inference.calibration import Calibration, fit_calibration
from cxrlt_core.inference.gating import GATING_FORMS, find_normal, normal_gating
from cxrlt_core.inference.thresholds import Thresholds, f1_at_thresholds, fit_thresholds
from cxrlt_core.metrics import compute_report

SUMMARY_KEYS = ("mAP", "mAUC", "mF1", "mECE")


@dataclasses.dataclass
class PostprocessChoice:
    """A saved post-processing choice (``W/postprocess/<name>.json``), read by the Export page."""

    gating_alpha: float = 0.5
    gating_form: str = "power"
    calibration: str | None = None
    thresholds: bool = False
    fitted_on: dict[str, Any] = dataclasses.field(default_factory=dict)

    def save(
        self, folder: str | os.PathLike[str], name: str, calibration: Calibration | None, thresholds: Thresholds | None
    ) -> Path:
        """Write the choice and, when used, its calibration and thresholds files beside it (atomically)."""
        folder = Path(folder)
        record = dataclasses.asdict(self)
        if calibration is not None and self.calibration:
            calibration.save(folder / f"{name}.calibration.json")
            record["calibration_file"] = f"{name}.calibration.json"
        if thresholds is not None and self.thresholds:
            thresholds.save(folder / f"{name}.thresholds.json")
            record["thresholds_file"] = f"{name}.thresholds.json"
        path = folder / f"{name}.json"
        write_json(path, record)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[PostprocessChoice, dict[str, Any]]:
        """The choice and the raw record (with the names of its calibration / thresholds files)."""
        record = read_json_object(path, "post-processing choice")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in fields}), record


# α ranges that keep gated probabilities meaningful: the linear form p·(1 − α·p_N) goes negative for α > 1.
ALPHA_RANGES = {"power": (0.0, 2.0), "linear": (0.0, 1.0)}


def alpha_range(form: str) -> tuple[float, float]:
    """The α range offered for a gating form (an unknown form is an ``InputError`` listing the forms)."""
    GATING_FORMS.get(form)
    return ALPHA_RANGES.get(form, (0.0, 2.0))


def sweep_alphas(form: str, points: int = 21) -> np.ndarray:
    """``points`` evenly spaced α over the form's range, rounded to 3 decimals."""
    low, high = alpha_range(form)
    return np.round(np.linspace(low, high, points), 3)


def has_normal(classes: Sequence[str]) -> bool:
    """The classes include a Normal / No Finding class, so gating can act."""
    return find_normal(classes) is not None


def summary(report: dict[str, Any]) -> dict[str, float]:
    """The four macro figures of a report."""
    return {key: float(report[key]) for key in SUMMARY_KEYS}


def gating_sweep(
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    alphas: Sequence[float],
    form: str = "power",
) -> pd.DataFrame:
    """mAP, mAUC, mF1 and mECE of the gated probabilities for each α (one row per α)."""
    rows = []
    for alpha in alphas:
        gated = normal_gating(probabilities, classes, alpha=float(alpha), form=form)
        rows.append({"alpha": float(alpha), **summary(compute_report(labels, gated, list(classes)))})
    return pd.DataFrame(rows)


@dataclasses.dataclass
class StageResult:
    """Reports of each post-processing stage on the evaluation split, and what was fitted on validation."""

    reports: dict[str, dict[str, Any]]
    calibration: Calibration | None
    thresholds: Thresholds | None

    def table(self) -> pd.DataFrame:
        """One row per stage with the four macro figures."""
        return pd.DataFrame([{"stage": stage, **summary(r)} for stage, r in self.reports.items()])


def study_stages(
    val_probabilities: np.ndarray,
    val_labels: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    gating_alpha: float = 0.5,
    gating_form: str = "power",
    calibration_method: str | None = "temperature",
    tune_thresholds: bool = True,
    train_labels: np.ndarray | None = None,
) -> StageResult:
    """Evaluate each stage on (``probabilities``, ``labels``) with maps fitted on the validation split.

    Stages: ``uncalibrated`` (as predicted), ``gated``, ``calibrated`` (gated, then calibrated with a map fitted on
    the gated validation scores) and ``thresholded`` (the calibrated scores, with mF1 taken at per-class
    F1-optimal thresholds fitted on validation instead of 0.5). ``train_labels`` (columns = ``classes``) adds the
    head / medium / tail buckets to every report.
    """
    classes = list(classes)

    def report_of(scores: np.ndarray) -> dict[str, Any]:
        return compute_report(labels, scores, classes, train_labels=train_labels)

    reports = {"uncalibrated": report_of(probabilities)}
    val = normal_gating(val_probabilities, classes, alpha=gating_alpha, form=gating_form)
    test = normal_gating(probabilities, classes, alpha=gating_alpha, form=gating_form)
    reports["gated"] = report_of(test)
    calibration = None
    if calibration_method:
        calibration = fit_calibration(val, val_labels, classes, method=calibration_method)
        val, test = calibration.apply(val, classes), calibration.apply(test, classes)
        reports["calibrated"] = report_of(test)
    thresholds = None
    if tune_thresholds:
        thresholds = fit_thresholds(val, val_labels, classes)
        report = dict(reports["calibrated" if calibration else "gated"])
        f1 = f1_at_thresholds(labels, test, thresholds.for_classes(classes))
        report["mF1"] = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
        report["per_class"] = {
            name: {**row, "f1": float(f1[j])} for j, (name, row) in enumerate(report["per_class"].items())
        }
        reports["thresholded"] = report
    return StageResult(reports, calibration, thresholds)


def per_class_delta(before: dict[str, Any], after: dict[str, Any], key: str = "ap") -> pd.DataFrame:
    """Per-class ``key`` before and after a change, and the difference."""
    rows = [
        {"class": name, "before": row[key], "after": after["per_class"][name][key]}
        for name, row in before["per_class"].items()
    ]
    frame = pd.DataFrame(rows)
    frame["delta"] = frame["after"] - frame["before"]
    return frame
