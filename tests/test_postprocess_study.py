"""Post-processing study: gating sweeps, stage reports and saved choices, on synthetic over-confident scores."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.inference.gating import normal_gating
from cxrlt_core.metrics import compute_report
from cxrlt_core.postprocess_study import PostprocessChoice, gating_sweep, per_class_delta, study_stages

CLASSES = ["Normal", "cardiomegaly", "pleural effusion", "Nodule"]


def _split(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 4)) < [0.4, 0.2, 0.15, 0.05]).astype(float)
    labels[labels[:, 1:].any(axis=1), 0] = 0.0
    evidence = 0.8 * (2 * labels - 1) + rng.normal(0, 1, labels.shape)  # calibrated logit ≈ 1.6 · evidence + prior
    return 1 / (1 + np.exp(-6.0 * evidence)), labels  # over-confident on purpose


def test_gating_sweep_at_zero_equals_no_gating():
    probs, labels = _split(0)
    sweep = gating_sweep(probs, labels, CLASSES, [0.0, 0.5, 1.0])
    plain = compute_report(labels, probs, CLASSES)
    assert sweep.loc[0, "mAP"] == plain["mAP"] and sweep.loc[0, "mECE"] == plain["mECE"]
    gated = compute_report(labels, normal_gating(probs, CLASSES, alpha=0.5), CLASSES)
    assert sweep.loc[1, "mAP"] == pytest.approx(gated["mAP"], abs=1e-12)


def test_stages_keep_ranking_and_improve_calibration_and_f1():
    (val, val_labels), (test, test_labels) = _split(1), _split(2)
    result = study_stages(val, val_labels, test, test_labels, CLASSES, gating_alpha=0.5, calibration_method="platt")
    reports = result.reports
    assert list(reports) == ["uncalibrated", "gated", "calibrated", "thresholded"]
    assert reports["calibrated"]["mAP"] == pytest.approx(reports["gated"]["mAP"], abs=1e-9)
    assert reports["calibrated"]["mAUC"] == pytest.approx(reports["gated"]["mAUC"], abs=1e-9)
    assert reports["calibrated"]["mECE"] < reports["gated"]["mECE"]
    assert reports["thresholded"]["mF1"] >= reports["calibrated"]["mF1"] - 0.02
    assert result.thresholds is not None and len(result.thresholds.thresholds) == 4
    assert set(result.table()["stage"]) == set(reports)


def test_stages_without_calibration_or_thresholds():
    (val, val_labels), (test, test_labels) = _split(3), _split(4)
    result = study_stages(val, val_labels, test, test_labels, CLASSES, calibration_method=None, tune_thresholds=False)
    assert list(result.reports) == ["uncalibrated", "gated"] and result.calibration is None


def test_choice_round_trip_with_files(tmp_path):
    (val, val_labels), (test, test_labels) = _split(5), _split(6)
    result = study_stages(val, val_labels, test, test_labels, CLASSES)
    choice = PostprocessChoice(0.7, "linear", "temperature", True)
    path = choice.save(tmp_path, "mine", result.calibration, result.thresholds)
    loaded, record = PostprocessChoice.load(path)
    assert loaded == choice
    assert (tmp_path / record["calibration_file"]).is_file() and (tmp_path / record["thresholds_file"]).is_file()


def test_per_class_delta():
    probs, labels = _split(7)
    before = compute_report(labels, probs, CLASSES)
    after = compute_report(labels, normal_gating(probs, CLASSES, alpha=1.0), CLASSES)
    delta = per_class_delta(before, after)
    assert delta.loc[0, "delta"] == 0.0  # Normal itself is never gated
    np.testing.assert_allclose(delta["delta"], delta["after"] - delta["before"])
