"""Task 1 inference: TTA, weighted ensembles, normal gating, calibration, per-class thresholds, the predict pipeline.

One module per job: :mod:`.tta` (views and merge modes), :mod:`.ensemble`, :mod:`.gating`, :mod:`.calibration`,
:mod:`.thresholds`, :mod:`.loader` (images in DataLoader workers), :mod:`.writer` (streamed predictions) and
:mod:`.predict` (the pipeline behind ``cxrlt predict``). The pipeline module needs torch and the models; importing
this package imports it lazily, so the array-only parts stay cheap to import.
"""

from __future__ import annotations

from cxrlt_core.inference.calibration import (
    CALIBRATORS,
    Calibration,
    binary_nll,
    fit_calibration,
    load_calibration,
)
from cxrlt_core.inference.ensemble import align_columns, class_index, ensemble_probabilities, normalise_weights
from cxrlt_core.inference.gating import GATING_FORMS, GatingWarning, find_normal, normal_gating
from cxrlt_core.inference.thresholds import (
    Thresholds,
    best_f1_threshold,
    binarize,
    f1_at_thresholds,
    fit_thresholds,
    load_thresholds,
)
from cxrlt_core.lazy import lazy_exports

_LAZY = {
    # torch-based parts, imported on first use
    "MERGE_MODES": "tta",
    "TTA_SETS": "tta",
    "View": "tta",
    "get_tta_set": "tta",
    "merge_views": "tta",
    "naive_tta_logits": "tta",
    "tta_logits": "tta",
    "tta_probabilities": "tta",
    "DEFAULT_FORWARD_PIXELS": "tta",
    "default_forward_batch": "tta",
    "PredictResult": "predict",
    "load_models": "predict",
    "postprocess": "predict",
    "predict": "predict",
    "PredictionWriter": "writer",
}

__all__ = [
    "CALIBRATORS",
    "GATING_FORMS",
    "Calibration",
    "GatingWarning",
    "Thresholds",
    "align_columns",
    "best_f1_threshold",
    "binarize",
    "binary_nll",
    "class_index",
    "ensemble_probabilities",
    "f1_at_thresholds",
    "find_normal",
    "fit_calibration",
    "fit_thresholds",
    "load_calibration",
    "load_thresholds",
    "normal_gating",
    "normalise_weights",
    *_LAZY,
]


__getattr__ = lazy_exports(__name__, {name: f".{module}" for name, module in _LAZY.items()})
