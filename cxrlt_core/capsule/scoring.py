"""The scorer variant a capsule records, and the figures it produced (flat ``name -> value``)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.evaluation import evaluate

BUCKETS = ("head", "medium", "tail")
MACRO = ("mAP", "mAUC", "mF1", "mECE", "mean_of_buckets")


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
    """Every choice of :func:`cxrlt_core.evaluation.evaluate` that changes a figure."""

    threshold: float = 0.5
    skipped_as_zero: bool = False
    bootstrap: int = 0
    seed: int = 0
    uncertain: str = "ignore"
    label_space: str | None = None
    scorer: str = "cxrlt_core.evaluation.evaluate"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> ScorerSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: scorer has unknown keys {unknown} (made by a newer cxrlt?)")
        return cls(**dict(data))


def score(
    pred: Any, labels: str | os.PathLike[str], train: str | os.PathLike[str] | None, spec: ScorerSpec
) -> dict[str, float | None]:
    """The figures of ``pred`` against the labels CSV (training CSV: bucket prevalence), scored as ``spec`` says."""
    truth = read_manifest(labels, label_space=spec.label_space, uncertain=spec.uncertain)
    train_manifest = None
    if train is not None:
        train_manifest = read_manifest(Path(train), label_space=truth.label_space, uncertain=spec.uncertain)
    report = evaluate(
        pred, truth, train_manifest, threshold=spec.threshold, skipped_as_zero=spec.skipped_as_zero,
        bootstrap=spec.bootstrap, seed=spec.seed,
    ).report  # fmt: skip
    return figures_of(report)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def figures_of(report: Mapping[str, Any]) -> dict[str, float | None]:
    """``mAP``, ``mAUC``, ``mF1``, ``mECE``, ``mean_of_buckets``, ``mAP[head]`` ..., the 95 % interval ends
    (``mAP_ci_low`` / ``mAP_ci_high``) when bootstrapped, and ``AP[<class>]`` per class."""
    figures: dict[str, float | None] = {name: _number(report.get(name)) for name in MACRO if name in report}
    for bucket in BUCKETS:
        values = (report.get("buckets") or {}).get(bucket)
        if values is not None:
            figures[f"mAP[{bucket}]"] = _number(values.get("mAP"))
    ci = report.get("mAP_ci")
    if ci is not None:
        figures["mAP_ci_low"], figures["mAP_ci_high"] = _number(ci[0]), _number(ci[1])
    for name, values in (report.get("per_class") or {}).items():
        figures[f"AP[{name}]"] = _number(values.get("ap"))
    return figures


def compare(reported: float | None, found: float | None, tolerance: float) -> bool:
    """Equal within ``tolerance`` (two missing values are equal: a class without positives has no AP)."""
    if reported is None or found is None:
        return reported is None and found is None
    return abs(reported - found) <= tolerance
