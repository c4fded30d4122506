"""The Task 1 pipeline's stages on their own: options checked up front, gating then calibration, decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrlt_core.data.images import Preprocess
from cxrlt_core.errors import InputError
from cxrlt_core.inference.calibration import Calibration
from cxrlt_core.inference.predict import Ensemble, LoadedModel, PostProcess, PredictOptions
from cxrlt_core.inference.thresholds import Thresholds

CLASSES = ("Normal", "a", "b")


def _ensemble(normal: str | None = "Normal") -> Ensemble:
    spec = LoadedModel(
        path=Path("m.safetensors"),
        model=torch.nn.Identity(),
        classes=CLASSES,
        preprocess=Preprocess(image_size=(8, 8)),
        mean=(0.5, 0.5, 0.5),
        std=(0.2, 0.2, 0.2),
        input_size=(8, 8),
        normal=normal,
    )
    return Ensemble([spec], np.ones(1), CLASSES, [np.arange(3)], torch.device("cpu"), False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tta", "huge", "unknown TTA set"),
        ("merge", "mode", "unknown TTA merge mode"),
        ("gating_form", "cubic", "unknown gating form"),
        ("precision", "fp8", "unknown precision"),
        ("on_error", "ignore", "unknown image error policy"),
        ("chunk_size", 0, "chunk size"),
        ("threads", 0, "threads"),
        ("forward_batch", 0, "forward_batch"),
    ],
)
def test_options_are_checked_before_anything_loads(field, value, message):
    with pytest.raises(InputError, match=message):
        PredictOptions(**{field: value}).check()


def test_gate_then_calibrate_by_hand():
    temperature = 2.0
    calibration = Calibration(
        method="temperature",
        classes=CLASSES,
        params=[{"temperature": temperature}] * 3,
        status=["fitted"] * 3,
    )
    post = PostProcess.plan(_ensemble(), PredictOptions(gating_alpha=0.5, calibration=calibration))
    p = np.array([[0.75, 0.6, 0.2]])
    gated = np.array([0.75, 0.6 * 0.25**0.5, 0.2 * 0.25**0.5])  # p_c (1 - p_N)^α, Normal itself untouched

    def temper(q):  # σ(logit(q) / T)
        return 1.0 / (1.0 + np.exp(-np.log(q / (1 - q)) / temperature))

    np.testing.assert_allclose(post(p)[0], temper(gated), rtol=1e-9)
    assert post.gating() == {"alpha": 0.5, "form": "power", "normal": "Normal", "applied": True}


def test_no_normal_class_means_no_gating_and_decisions_at_thresholds():
    with pytest.warns(UserWarning):
        post = PostProcess.plan(_no_normal(), PredictOptions(gating_alpha=0.5, thresholds=_thr()))
    p = np.array([[0.3, 0.6, 0.2]])
    np.testing.assert_array_equal(post(p), p)
    np.testing.assert_array_equal(post.decisions(p), [[1.0, 0.0, 1.0]])


def _no_normal() -> Ensemble:
    ensemble = _ensemble(normal=None)
    classes = ("x", "a", "b")
    ensemble.models[0].classes = classes
    ensemble.classes = classes
    return ensemble


def _thr() -> Thresholds:
    return Thresholds(classes=("x", "a", "b"), thresholds=[0.3, 0.7, 0.1])
