"""Weighted ensembles of models whose classes may come in different orders: align by class name, then average.

docs/method.md "Task 1 inference": the ensemble is the weighted mean of the models' TTA-merged probabilities,
``p_c = Σ_m w_m p_{m,c}`` with ``w_m ≥ 0`` normalised to ``Σ_m w_m = 1`` (paper: 1.0 for the MLP model, 1.5 for
the CSRA model). Class names are matched ignoring case, spacing and underscores (as :class:`LabelSpace` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.labels import LabelSpace

__all__ = ["align_columns", "class_index", "ensemble_probabilities", "normalise_weights"]


def normalise_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
    """Ensemble weights as float64 summing to 1; ``None`` means equal weights.

    Raises:
        InputError: wrong number of weights, a negative or non-finite weight, or all zero.
    """
    if count < 1:
        raise InputError("an ensemble needs at least one model")
    if weights is None:
        return np.full(count, 1.0 / count)
    values = np.asarray(list(weights), dtype=np.float64)
    if values.shape != (count,):
        raise InputError(f"got {values.size} ensemble weights for {count} models; give one weight per model")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError(f"ensemble weights must be finite and non-negative, got {values.tolist()}")
    total = values.sum()
    if total <= 0:
        raise InputError(f"ensemble weights sum to {total}; at least one must be positive")
    return values / total


def class_index(model_classes: Sequence[str], classes: Sequence[str], model_name: str = "model") -> np.ndarray:
    """Column of ``model_classes`` that holds each of ``classes`` (matched by name, ignoring case and spacing).

    Raises:
        InputError: a class of ``classes`` is not predicted by the model; the message names the model and classes.
    """
    space = LabelSpace(model_name, tuple(model_classes))
    positions = {name: i for i, name in enumerate(space.classes)}
    index, missing = [], []
    for name in classes:
        found = space.resolve(name)
        if found is None:
            missing.append(name)
        else:
            index.append(positions[found])
    if missing:
        raise InputError(f"{model_name} does not predict classes {missing}; it predicts {list(model_classes)}")
    return np.asarray(index, dtype=np.intp)


def align_columns(
    scores: np.ndarray, model_classes: Sequence[str], classes: Sequence[str], model_name: str = "model"
) -> np.ndarray:
    """``scores`` (N, len(model_classes)) reordered to the columns ``classes`` (extra model classes dropped)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(model_classes):
        raise InputError(f"{model_name}: scores have shape {scores.shape}, expected (n, {len(model_classes)})")
    return scores[:, class_index(model_classes, classes, model_name)]


def ensemble_probabilities(
    probabilities: Sequence[np.ndarray],
    model_classes: Sequence[Sequence[str]],
    weights: Sequence[float] | None = None,
    classes: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Weighted mean of per-model probabilities after aligning their columns by class name.

    ``p_c = Σ_m w_m p_{m, idx_m(c)}`` with normalised weights (:func:`normalise_weights`).

    Args:
        probabilities: one (N, C_m) array per model, rows aligned.
        model_classes: each model's class names, in its column order.
        weights: one per model (normalised here), default equal.
        classes: output classes and order; default the first model's.
        names: model names used in error messages.

    Returns:
        ``(probabilities (N, C) float64, classes)``.
    """
    count = len(probabilities)
    if len(model_classes) != count:
        raise InputError(f"{count} probability arrays but {len(model_classes)} class lists")
    w = normalise_weights(weights, count)
    names = list(names) if names is not None else [f"model {m + 1}" for m in range(count)]
    out_classes = tuple(classes) if classes is not None else tuple(model_classes[0])
    rows = {np.asarray(p).shape[0] for p in probabilities}
    if len(rows) != 1:
        raise InputError(f"models scored different numbers of images: {sorted(rows)}")
    total = np.zeros((rows.pop(), len(out_classes)), dtype=np.float64)
    for probs, m_classes, weight, name in zip(probabilities, model_classes, w, names):
        total += weight * align_columns(np.asarray(probs, dtype=np.float64), m_classes, out_classes, name)
    return total, out_classes
