"""Normal gating: lower every finding's probability when the model believes the image is normal.

docs/method.md "Task 1 inference", after the winning code: for every class ``c ≠ Normal``

- ``power`` (the code, default):  ``p_c ← p_c · (1 − p_N)^α``, α = 0.5;
- ``linear`` (an older write-up): ``p_c ← p_c · (1 − α · p_N)``;

then the gated classes are clipped to ``[1e-6, 1 − 1e-6]``; the Normal column is left as it is.
``α = 0`` is no gating: the input is returned unchanged (not clipped), so that gating with α = 0 equals the
ungated pipeline exactly. A label space without a Normal class gets a :class:`GatingWarning` and no change.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.labels import LabelSpace
from cxrlt_core.registry import Registry

__all__ = ["GATING_CLIP", "GATING_FORMS", "GatingWarning", "find_normal", "normal_gating"]

GATING_CLIP = (1e-6, 1.0 - 1e-6)
NORMAL_NAMES = ("Normal", "No Finding")


class GatingWarning(UserWarning):
    """Normal gating was asked for but cannot be applied (no Normal class)."""


GatingForm = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
GATING_FORMS: Registry[GatingForm] = Registry("gating form")


@GATING_FORMS.register("power")
def _power(probs: np.ndarray, normal: np.ndarray, alpha: float) -> np.ndarray:
    """``p_c · (1 − p_N)^α`` (winning code)."""
    return probs * np.power(1.0 - normal, alpha)[:, None]


@GATING_FORMS.register("linear")
def _linear(probs: np.ndarray, normal: np.ndarray, alpha: float) -> np.ndarray:
    """``p_c · (1 − α · p_N)`` (older write-up)."""
    return probs * (1.0 - alpha * normal)[:, None]


def find_normal(classes: Sequence[str], normal: str | None = None) -> int | None:
    """Column of the Normal class: ``normal`` if given (matched like a label-space column), else ``Normal`` or
    ``No Finding``; ``None`` when there is none."""
    space = LabelSpace("predictions", tuple(classes))
    for name in (normal,) if normal else NORMAL_NAMES:
        found = space.resolve(name)
        if found is not None:
            return space.classes.index(found)
    return None


def normal_gating(
    probabilities: np.ndarray,
    classes: Sequence[str],
    alpha: float = 0.5,
    form: str = "power",
    normal: str | None = None,
    clip: tuple[float, float] = GATING_CLIP,
) -> np.ndarray:
    """Gate every non-Normal probability by the Normal probability (module docstring); returns a new float64 array.

    Args:
        probabilities: (N, C) in [0, 1].
        classes: the column names; the Normal column is found by :func:`find_normal`.
        alpha: gating strength, ``α ≥ 0`` (``linear`` needs ``α ≤ 1`` to keep probabilities non-negative).
        form: ``power`` or ``linear`` (:data:`GATING_FORMS`).
        normal: name of the Normal class, default ``Normal`` / ``No Finding``.
        clip: bounds applied to the gated classes.
    """
    probs = np.array(probabilities, dtype=np.float64)
    gate = GATING_FORMS.get(form)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise InputError(f"probabilities have shape {probs.shape}, expected (n, {len(classes)})")
    if not np.isfinite(alpha) or alpha < 0 or (form == "linear" and alpha > 1):
        limit = "0 <= alpha <= 1" if form == "linear" else "alpha >= 0"
        raise InputError(f"gating alpha must satisfy {limit} for the {form} form, got {alpha}")
    if alpha == 0:
        return probs
    index = find_normal(classes, normal)
    if index is None:
        wanted = normal or " / ".join(NORMAL_NAMES)
        warnings.warn(
            f"normal gating skipped: no {wanted} class among the {len(classes)} classes", GatingWarning, stacklevel=2
        )
        return probs
    others = np.arange(probs.shape[1]) != index
    gated = gate(probs[:, others], probs[:, index], float(alpha))
    probs[:, others] = np.clip(gated, *clip)
    return probs
