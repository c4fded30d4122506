"""Scorer variants: the choices a macro score leaves open, named, so two numbers are only compared like for like.

The CXR-LT challenges publish no scoring code, so each choice is an option and a preset names a combination
(``cxrlt evaluate --scorer NAME`` or ``--scorer empty=zero,ece=pooled,bins=10,f1=per_class``):

* ``empty``: a class with no known positive has no AP. ``skip`` leaves it out of mAP and mF1 (and of mECE);
  ``zero`` counts its AP and F1 as 0 and keeps it in every mean (the CXR-LT 2026 winning code's validation mAP;
  scikit-learn >= 1.3 ``average_precision_score(average="macro")`` does the same); ``nan`` keeps it as NaN, so the
  means are NaN (a plain ``np.mean`` over per-class values). mAUC always leaves out classes without a positive or
  without a negative (ROC AUC is undefined there; no scorer counts it as 0).
* ``ece``: the headline mECE is the mean of per-class ECEs (``per_class``) or one ECE over every (image, class)
  cell (``pooled``); ``bins`` equal-width, right-closed bins (Guo et al. 2017; 15 by default, 10 in some
  libraries).
* ``f1``: F1 at one ``threshold`` (0.5, as the CXR-LT 2024 overview states) or at per-class thresholds fitted on
  validation (``per_class``, read from a ``cxrlt thresholds`` file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

EMPTY_POLICIES = ("skip", "zero", "nan")
ECE_MODES = ("per_class", "pooled")
F1_MODES = ("fixed", "per_class")


@dataclasses.dataclass(frozen=True)
class Scorer:
    """One combination of the choices above; ``name`` is the preset's (or ``custom``)."""

    name: str = "cxrlt"
    empty: str = "skip"
    ece: str = "per_class"
    bins: int = 15
    f1: str = "fixed"
    threshold: float = 0.5
    description: str = ""

    def __post_init__(self) -> None:
        for field, value, choices in (("empty", self.empty, EMPTY_POLICIES), ("ece", self.ece, ECE_MODES),
                                      ("f1", self.f1, F1_MODES)):  # fmt: skip
            if value not in choices:
                raise InputError(f"scorer {field}={value!r}: choose one of {', '.join(choices)}")
        if not isinstance(self.bins, int) or self.bins < 1:
            raise InputError(f"scorer bins={self.bins!r}: a whole number of at least 1")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise InputError(f"scorer threshold={self.threshold!r}: must lie in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "description"}

    def label(self) -> str:
        f1 = f"F1@{self.threshold:g}" if self.f1 == "fixed" else "F1@per-class thresholds"
        return f"{self.name}: empty classes {self.empty}, {self.ece} ECE ({self.bins} bins), {f1}"


SCORERS: Registry[Scorer] = Registry("scorer")
SCORERS.add("cxrlt", Scorer("cxrlt", description="cxrlt default: empty classes skipped and listed, per-class ECE"))
SCORERS.add(
    "winning_code",
    Scorer("winning_code", empty="zero", description="CXR-LT 2026 winning code: mAP over all classes, empty as AP 0"),
)
SCORERS.add(
    "sklearn_macro",
    Scorer("sklearn_macro", empty="zero", description="scikit-learn average='macro' AP (empty class AP 0)"),
)
SCORERS.add("strict", Scorer("strict", empty="nan", description="any empty class makes the macro figures NaN"))
SCORERS.add("pooled_ece", Scorer("pooled_ece", ece="pooled", description="mECE is one ECE over all cells"))
SCORERS.add("ece10", Scorer("ece10", bins=10, description="per-class ECE with 10 bins"))
SCORERS.add(
    "tuned_f1", Scorer("tuned_f1", f1="per_class", description="F1 at per-class thresholds fitted on validation")
)


def get_scorer(spec: str | Scorer | None = None, threshold: float | None = None) -> Scorer:
    """A registered preset by name, or ``key=value,...`` over the default (``empty``, ``ece``, ``bins``, ``f1``,
    ``threshold``); ``threshold`` (if given) overrides the fixed F1 threshold."""
    if isinstance(spec, Scorer):
        scorer = spec
    elif not spec:
        scorer = SCORERS.get("cxrlt")
    elif "=" not in spec:
        scorer = SCORERS.get(spec)
    else:
        fields: dict[str, Any] = {}
        for part in spec.split(","):
            key, _, value = (s.strip() for s in part.partition("="))
            if key not in ("empty", "ece", "bins", "f1", "threshold"):
                raise InputError(f"scorer: unknown choice {key!r}; use empty, ece, bins, f1 or threshold")
            try:
                fields[key] = int(value) if key == "bins" else float(value) if key == "threshold" else value
            except ValueError:
                raise InputError(f"scorer: {key}={value!r} is not a number") from None
        scorer = Scorer("custom", **fields)
    if threshold is not None:
        scorer = dataclasses.replace(scorer, threshold=float(threshold))
    return scorer


def class_thresholds(
    scorer: Scorer, classes: Sequence[str], per_class: Mapping[str, float] | np.ndarray | None = None
) -> np.ndarray:
    """The F1 threshold of every class: the fixed one, or per-class values (a name -> threshold map or array)."""
    if scorer.f1 == "fixed":
        return np.full(len(classes), float(scorer.threshold))
    if per_class is None:
        raise InputError(f"scorer {scorer.name!r} scores F1 at per-class thresholds: give a thresholds file")
    if isinstance(per_class, Mapping):
        missing = [c for c in classes if c not in per_class]
        if missing:
            raise InputError(f"the thresholds file has no threshold for {missing}")
        return np.array([float(per_class[c]) for c in classes])
    values = np.asarray(per_class, dtype=np.float64)
    if values.shape != (len(classes),) or not np.isfinite(values).all():
        raise InputError(f"per-class thresholds: expected {len(classes)} finite values, got shape {values.shape}")
    return values


def _mean(values: np.ndarray, keep: np.ndarray, skip_nan: bool) -> np.ndarray:
    """Mean over the last axis of the ``keep`` columns; NaN values ignored when ``skip_nan``."""
    chosen = values[..., keep]
    if chosen.shape[-1] == 0:
        return np.full(values.shape[:-1], np.nan)
    if not skip_nan:
        return chosen.mean(axis=-1)
    counts = (~np.isnan(chosen)).sum(-1)
    total = np.nansum(chosen, axis=-1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def macro_figures(
    scorer: Scorer, per_class: Mapping[str, np.ndarray], has_pos: np.ndarray, members: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """mAP, mAUC, mF1 and per-class mECE under the scorer's empty-class policy.

    ``per_class`` maps ``ap``, ``auc``, ``f1``, ``ece`` to arrays (..., C) (one report, or B resamples); NaN AP marks
    a class without a positive in that sample. ``has_pos`` (C,) marks classes with a positive in the full data;
    ``members`` (C,) restricts every mean to some classes (a bucket).
    """
    ap, auc, f1, ece = (np.asarray(per_class[k], dtype=np.float64) for k in ("ap", "auc", "f1", "ece"))
    keep = np.ones(ap.shape[-1], bool) if members is None else np.asarray(members, bool)
    empty = np.isnan(ap)
    if scorer.empty == "skip":
        in_scope = keep & has_pos
        f1 = np.where(empty, np.nan, f1)
        ece = np.where(empty, np.nan, ece)
        return {"mAP": _mean(ap, in_scope, True), "mAUC": _mean(auc, keep, True),
                "mF1": _mean(f1, in_scope, True), "mECE": _mean(ece, in_scope, True)}  # fmt: skip
    if scorer.empty == "zero":
        return {"mAP": _mean(np.where(empty, 0.0, ap), keep, False), "mAUC": _mean(auc, keep, True),
                "mF1": _mean(np.where(empty, 0.0, f1), keep, False), "mECE": _mean(ece, keep, True)}  # fmt: skip
    return {"mAP": _mean(ap, keep, False), "mAUC": _mean(auc, keep, False),
            "mF1": _mean(np.where(empty, np.nan, f1), keep, False), "mECE": _mean(ece, keep, False)}  # fmt: skip
