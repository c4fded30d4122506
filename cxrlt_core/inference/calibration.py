"""Post-hoc calibration per class, fitted on a labelled validation split; monotone, so the ranking is kept.

The winners' Task 1 mECE was 0.93 (docs/method.md "Beyond the paper"). Each class ``c`` gets its own increasing map
``f_c`` fitted on validation probabilities ``p`` and labels ``y`` (unknown labels, NaN, are masked out), with
``z = logit(p)`` (``p`` clipped to ``[1e-12, 1 − 1e-12]``):

- ``temperature`` (Guo et al., ICML 2017, per class): ``f(p) = σ(z / T)``, ``T > 0`` minimising the NLL
  (a bounded 1-D search on ``log T``);
- ``platt`` (Platt, 1999): ``f(p) = σ(a·z + b)``, ``a > 0``, minimising the NLL against Platt's smoothed targets
  ``t+ = (N+ + 1) / (N+ + 2)``, ``t− = 1 / (N− + 2)`` (L-BFGS-B);
- ``isotonic`` (Zadrozny & Elkan, KDD 2002): scikit-learn's ``IsotonicRegression(increasing=True,
  out_of_bounds="clip")``, stored as its breakpoints and applied by linear interpolation as scikit-learn does.

Temperature and Platt are strictly increasing, so AP and AUC are unchanged. Isotonic regression is a step-like
function: scores that fall in one flat step become ties, which can change AP and AUC. ``epsilon > 0`` mixes in the
input, ``f(p) = (1 − ε)·iso(p) + ε·p``, which is strictly increasing and so keeps the ranking (and AP/AUC) exactly
at a cost of at most ε in calibration. A class whose validation labels are all negative, all positive or unknown
cannot be fitted and keeps the identity map (recorded in ``status``).

Apply calibration after normal gating, to the same kind of predictions it was fitted on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit, logit

from cxrlt_core.atomic import read_json_object, write_json
from cxrlt_core.errors import InputError
from cxrlt_core.inference.ensemble import class_index
from cxrlt_core.registry import Registry

__all__ = [
    "CALIBRATORS",
    "Calibration",
    "Calibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "binary_nll",
    "fit_calibration",
    "load_calibration",
    "safe_logit",
]

FORMAT = "cxrlt-calibration"
VERSION = 1
LOGIT_EPS = 1e-12


def safe_logit(p: np.ndarray) -> np.ndarray:
    """``log(p / (1 − p))`` with ``p`` clipped to ``[1e-12, 1 − 1e-12]`` (float64)."""
    return logit(np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS))


def binary_nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy ``−mean(y log p + (1 − y) log(1 − p))`` over known labels (``p`` clipped as
    :func:`safe_logit` does)."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    y = np.asarray(y, dtype=np.float64)
    known = ~np.isnan(y)
    if not known.any():
        return float("nan")
    p, y = p[known], y[known]
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _logistic_nll(z: np.ndarray, t: np.ndarray) -> float:
    """``Σ −[t log σ(z) + (1 − t) log σ(−z)]`` for logits ``z`` and (soft) targets ``t``."""
    return float(-np.sum(t * log_expit(z) + (1.0 - t) * log_expit(-z)))


class Calibrator:
    """One calibration method: ``fit`` a class's parameters, ``apply`` them; both on 1-D float64 arrays."""

    name: ClassVar[str]

    @staticmethod
    def identity() -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def apply(cls, p: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError


CALIBRATORS: Registry[type[Calibrator]] = Registry("calibration method")


@CALIBRATORS.register("temperature")
class TemperatureCalibrator(Calibrator):
    """``σ(logit(p) / T)`` with ``T`` in ``[T_min, T_max]`` minimising the NLL (convex in ``1/T``)."""

    name = "temperature"

    @staticmethod
    def identity() -> dict[str, Any]:
        return {"temperature": 1.0}

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, t_min: float = 0.01, t_max: float = 100.0) -> dict[str, Any]:
        z = safe_logit(p)
        result = optimize.minimize_scalar(
            lambda log_t: _logistic_nll(z * np.exp(-log_t), y),
            bounds=(np.log(t_min), np.log(t_max)),
            method="bounded",
            options={"xatol": 1e-8},
        )
        return {"temperature": float(np.exp(result.x))}

    @classmethod
    def apply(cls, p: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        return expit(safe_logit(p) / float(params["temperature"]))


@CALIBRATORS.register("platt")
class PlattCalibrator(Calibrator):
    """``σ(a·logit(p) + b)``, ``a ≥ a_min > 0``, fitted by L-BFGS-B on the NLL against Platt's smoothed targets."""

    name = "platt"

    @staticmethod
    def identity() -> dict[str, Any]:
        return {"a": 1.0, "b": 0.0}

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, smooth_targets: bool = True, a_min: float = 1e-6) -> dict[str, Any]:
        z = safe_logit(p)
        positives = y > 0.5
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if smooth_targets:
            t = np.where(positives, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
        else:
            t = y.astype(np.float64)

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = params
            s = a * z + b
            residual = expit(s) - t  # d NLL / d s
            return _logistic_nll(s, t), np.array([np.dot(residual, z), residual.sum()])

        result = optimize.minimize(
            loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(a_min, None), (None, None)]
        )
        return {"a": float(result.x[0]), "b": float(result.x[1])}

    @classmethod
    def apply(cls, p: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        return expit(float(params["a"]) * safe_logit(p) + float(params["b"]))


@CALIBRATORS.register("isotonic")
class IsotonicCalibrator(Calibrator):
    """scikit-learn's increasing isotonic fit, stored as breakpoints; optional ``epsilon`` mix keeps the ranking."""

    name = "isotonic"

    @staticmethod
    def identity() -> dict[str, Any]:
        return {"x": [0.0, 1.0], "y": [0.0, 1.0], "epsilon": 0.0}

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, epsilon: float = 0.0) -> dict[str, Any]:
        from sklearn.isotonic import IsotonicRegression

        if not 0.0 <= epsilon < 1.0:
            raise InputError(f"isotonic epsilon must be in [0, 1), got {epsilon}")
        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        model.fit(np.asarray(p, dtype=np.float64), y)
        return {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist(), "epsilon": float(epsilon)}

    @classmethod
    def apply(cls, p: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        mapped = np.interp(p, np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64))
        epsilon = float(params.get("epsilon", 0.0))
        return mapped if epsilon == 0.0 else (1.0 - epsilon) * mapped + epsilon * p


@dataclasses.dataclass
class Calibration:
    """Fitted per-class calibration maps; saved as a small JSON (``format``, ``method``, ``classes``, ``params``).

    Attributes:
        method: a name in :data:`CALIBRATORS`.
        classes: class names, in the order of ``params``.
        params: one parameter dict per class.
        status: per class ``"fitted"`` or why the identity map was kept.
        fitted_on: provenance (files, counts, the predictions' metadata).
        options: the fit options.
    """

    method: str
    classes: tuple[str, ...]
    params: list[dict[str, Any]]
    status: list[str] = dataclasses.field(default_factory=list)
    fitted_on: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        CALIBRATORS.get(self.method)
        if len(self.params) != len(self.classes):
            raise InputError(f"calibration has {len(self.params)} parameter sets for {len(self.classes)} classes")
        if not self.status:
            self.status = ["fitted"] * len(self.classes)

    def apply(self, probabilities: np.ndarray, classes: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated copy of ``probabilities`` (N, C) whose columns are ``classes`` (default: this calibration's);
        columns are matched by class name.

        Raises:
            InputError: a column's class has no calibration map.
        """
        probs = np.asarray(probabilities, dtype=np.float64)
        classes = self.classes if classes is None else tuple(classes)
        if probs.ndim != 2 or probs.shape[1] != len(classes):
            raise InputError(f"probabilities have shape {probs.shape}, expected (n, {len(classes)})")
        index = class_index(self.classes, classes, model_name=f"the {self.method} calibration")
        calibrator = CALIBRATORS.get(self.method)
        out = np.empty_like(probs)
        for j, k in enumerate(index):
            out[:, j] = calibrator.apply(probs[:, j], self.params[k])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "classes": list(self.classes),
            "params": self.params,
            "status": self.status,
            "options": self.options,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "calibration") -> Calibration:
        if data.get("format") != FORMAT:
            raise InputError(f"{source}: not a cxrlt calibration file (format {data.get('format')!r})")
        if int(data.get("version", 0)) > VERSION:
            raise InputError(f"{source}: calibration file version {data.get('version')} is newer than this cxrlt")
        try:
            return cls(
                method=str(data["method"]),
                classes=tuple(data["classes"]),
                params=[dict(p) for p in data["params"]],
                status=list(data.get("status", [])),
                fitted_on=dict(data.get("fitted_on", {})),
                options=dict(data.get("options", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: malformed calibration file ({exc})") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically."""
        write_json(path, self.to_dict())


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    """Read a calibration JSON written by :meth:`Calibration.save`."""
    return Calibration.from_dict(read_json_object(path, "calibration"), source=str(path))


def fit_calibration(
    probabilities: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    method: str = "temperature",
    fitted_on: Mapping[str, Any] | None = None,
    **options: Any,
) -> Calibration:
    """Fit one calibration map per class on validation ``probabilities`` and ``labels`` (N, C; NaN = unknown).

    Args:
        probabilities: validation predictions, after the same post-processing (TTA, ensemble, gating) as the
            predictions the calibration will be applied to.
        labels: 0/1 with NaN for unknown, aligned with ``probabilities``.
        classes: the column names.
        method: ``temperature``, ``platt`` or ``isotonic``.
        fitted_on: provenance to store in the file.
        options: passed to the method's ``fit`` (``t_min``/``t_max``; ``smooth_targets``; ``epsilon``).
    """
    calibrator = CALIBRATORS.get(method)
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if probs.shape != labels.shape or probs.ndim != 2 or probs.shape[1] != len(classes):
        raise InputError(
            f"predictions {probs.shape} and labels {labels.shape} must both be (n, {len(classes)}) to fit calibration"
        )
    params, status = [], []
    for j in range(probs.shape[1]):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        n_pos = int((y > 0.5).sum())
        if n_pos == 0 or n_pos == y.size:
            params.append(calibrator.identity())
            status.append("identity: no positives in validation" if n_pos == 0 else "identity: no negatives")
            continue
        params.append(calibrator.fit(probs[known, j], (y > 0.5).astype(np.float64), **options))
        status.append("fitted")
    return Calibration(method, tuple(classes), params, status, dict(fitted_on or {}), dict(options))
