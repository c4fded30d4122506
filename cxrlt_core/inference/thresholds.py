"""Per-class decision thresholds that maximise F1 on validation; binary outputs and F1 at those thresholds.

The winners' Task 1 mF1 at 0.5 was 0.38 (docs/method.md "Beyond the paper"). For class ``c`` with validation scores
``s`` and labels ``y`` (NaN masked out), predicting positive for ``s ≥ t``:

    ``F1(t) = 2·TP(t) / (2·TP(t) + FP(t) + FN(t)) = 2·TP(t) / (k(t) + P)``,

with ``k(t)`` predicted positives and ``P`` actual positives. Only cuts between distinct scores change the
prediction, so one descending sort and a cumulative sum of ``y`` give ``F1`` at every cut (vectorised). The chosen
threshold is the midpoint between the lowest score kept positive and the next lower score (the highest cut among
ties of the best F1); a class without validation positives keeps the default threshold 0.5.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cxrlt_core.atomic import read_json_object, write_json
from cxrlt_core.errors import InputError
from cxrlt_core.inference.ensemble import class_index

__all__ = ["Thresholds", "best_f1_threshold", "binarize", "f1_at_thresholds", "fit_thresholds", "load_thresholds"]

FORMAT = "cxrlt-thresholds"
VERSION = 1
DEFAULT_THRESHOLD = 0.5


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, F1)`` maximising F1 for one class (module docstring); ``(nan, nan)`` without positives.

    ``labels`` are 0/1 with NaN for unknown (masked out).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(labels)
    s, y = scores[known], labels[known] > 0.5
    positives = int(y.sum())
    if positives == 0:
        return float("nan"), float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    true_pos = np.cumsum(y)
    # A cut after position i keeps s[0..i] positive; it is valid where the next score is lower (end of a tie group).
    ends = np.flatnonzero(np.r_[s[1:] < s[:-1], True])
    f1 = 2.0 * true_pos[ends] / (ends + 1 + positives)
    best = int(np.argmax(f1))
    i = ends[best]
    threshold = s[i] if i + 1 == s.size else 0.5 * (s[i] + s[i + 1])
    return float(threshold), float(f1[best])


def binarize(scores: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """``scores ≥ thresholds`` per column, as uint8 (N, C)."""
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if scores.ndim != 2 or thresholds.shape != (scores.shape[1],):
        raise InputError(f"got {thresholds.size} thresholds for scores of shape {scores.shape}")
    return (scores >= thresholds[None, :]).astype(np.uint8)


def f1_at_thresholds(
    labels: np.ndarray, scores: np.ndarray, thresholds: Sequence[float] | np.ndarray | float
) -> np.ndarray:
    """Per-class F1 ``2TP / (2TP + FP + FN)`` of ``scores ≥ threshold`` over known labels; NaN for a class without
    positives (excluded from macro means, as the metrics do)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if np.ndim(thresholds) == 0:
        thresholds = np.full(scores.shape[1], float(thresholds))  # type: ignore[arg-type]
    predicted = binarize(scores, thresholds).astype(bool)
    known = ~np.isnan(labels)
    actual = np.where(known, labels > 0.5, False)
    true_pos = (predicted & actual).sum(axis=0)
    false_pos = (predicted & ~actual & known).sum(axis=0)
    positives = actual.sum(axis=0)
    denominator = true_pos + false_pos + positives
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(positives > 0, 2.0 * true_pos / denominator, np.nan)
    return f1


@dataclasses.dataclass
class Thresholds:
    """Per-class thresholds, saved as JSON; ``binarize`` matches columns by class name."""

    classes: tuple[str, ...]
    thresholds: list[float]
    f1_validation: list[float | None] = dataclasses.field(default_factory=list)
    f1_at_default: list[float | None] = dataclasses.field(default_factory=list)
    positives: list[int] = dataclasses.field(default_factory=list)
    fitted_on: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        if len(self.thresholds) != len(self.classes):
            raise InputError(f"{len(self.thresholds)} thresholds for {len(self.classes)} classes")

    def for_classes(self, classes: Sequence[str]) -> np.ndarray:
        """Thresholds in the column order ``classes`` (matched by name)."""
        index = class_index(self.classes, classes, model_name="the thresholds file")
        return np.asarray(self.thresholds, dtype=np.float64)[index]

    def binarize(self, scores: np.ndarray, classes: Sequence[str] | None = None) -> np.ndarray:
        """0/1 (uint8) decisions for ``scores`` whose columns are ``classes`` (default: this file's classes)."""
        return binarize(scores, self.for_classes(self.classes if classes is None else classes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "rule": "positive when score >= threshold",
            "classes": list(self.classes),
            "thresholds": list(self.thresholds),
            "f1_validation": list(self.f1_validation),
            "f1_at_0.5": list(self.f1_at_default),
            "positives": list(self.positives),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "thresholds") -> Thresholds:
        if data.get("format") != FORMAT:
            raise InputError(f"{source}: not a cxrlt thresholds file (format {data.get('format')!r})")
        try:
            thresholds = [float(t) for t in data["thresholds"]]
            result = cls(
                classes=tuple(data["classes"]),
                thresholds=thresholds,
                f1_validation=list(data.get("f1_validation", [])),
                f1_at_default=list(data.get("f1_at_0.5", [])),
                positives=[int(n) for n in data.get("positives", [])],
                fitted_on=dict(data.get("fitted_on", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: malformed thresholds file ({exc})") from None
        if not all(np.isfinite(thresholds)):
            raise InputError(f"{source}: thresholds must be finite numbers")
        return result

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically."""
        write_json(path, self.to_dict())


def load_thresholds(path: str | os.PathLike[str]) -> Thresholds:
    """Read a thresholds JSON written by :meth:`Thresholds.save`."""
    return Thresholds.from_dict(read_json_object(path, "thresholds"), source=str(path))


def fit_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    default: float = DEFAULT_THRESHOLD,
    fitted_on: Mapping[str, Any] | None = None,
) -> Thresholds:
    """F1-optimal threshold per class on validation ``scores`` and ``labels`` (N, C; NaN unknown)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape or scores.ndim != 2 or scores.shape[1] != len(classes):
        raise InputError(f"scores {scores.shape} and labels {labels.shape} must both be (n, {len(classes)})")
    thresholds, f1 = [], []
    for j in range(scores.shape[1]):
        t, best = best_f1_threshold(scores[:, j], labels[:, j])
        thresholds.append(default if np.isnan(t) else t)
        f1.append(None if np.isnan(best) else best)
    at_default = f1_at_thresholds(labels, scores, default)
    positives = np.where(np.isnan(labels), False, labels > 0.5).sum(axis=0)
    return Thresholds(
        classes=tuple(classes),
        thresholds=thresholds,
        f1_validation=f1,
        f1_at_default=[None if np.isnan(v) else float(v) for v in at_default],
        positives=[int(n) for n in positives],
        fitted_on=dict(fitted_on or {}),
    )
