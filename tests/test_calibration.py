"""Calibration keeps the ranking (AP/AUC) and lowers NLL and ECE on a miscalibrated synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrlt_core.errors import InputError
from cxrlt_core.inference.calibration import (
    CALIBRATORS,
    Calibration,
    binary_nll,
    fit_calibration,
    load_calibration,
)
from cxrlt_core.metrics import expected_calibration_error

CLASSES = ("Normal", "cardiomegaly", "Nodule")


def _miscalibrated(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities σ(z); predictions overconfident (×3) and shifted per class."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, 3)) + np.array([0.0, -1.0, -2.5])
    labels = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(np.float64)
    predicted = 1 / (1 + np.exp(-(3.0 * z + np.array([0.0, 1.0, -0.5]))))
    return predicted, labels, z


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_strictly_monotone_methods_keep_ap_and_auc_and_lower_nll_and_ece(method: str) -> None:
    probs, labels, _ = _miscalibrated()
    val, test = slice(0, 2000), slice(2000, None)
    calibration = fit_calibration(probs[val], labels[val], CLASSES, method=method)
    out = calibration.apply(probs[test], CLASSES)
    for j in range(3):
        y, before, after = labels[test, j], probs[test, j], out[:, j]
        assert abs(average_precision_score(y, after) - average_precision_score(y, before)) < 1e-9
        assert abs(roc_auc_score(y, after) - roc_auc_score(y, before)) < 1e-9
        assert binary_nll(after, y) < binary_nll(before, y)
        assert expected_calibration_error(y, after) < 0.6 * expected_calibration_error(y, before)


def test_temperature_recovers_a_known_temperature() -> None:
    probs, labels, _ = _miscalibrated(n=40000, seed=1)
    # Class 0 has no shift: predicted logits are exactly 3x the true ones, so T ≈ 3.
    temperature = fit_calibration(probs[:, :1], labels[:, :1], CLASSES[:1]).params[0]["temperature"]
    assert 2.8 < temperature < 3.2


def test_isotonic_equals_scikit_learn_and_epsilon_keeps_the_ranking() -> None:
    probs, labels, _ = _miscalibrated()
    calibration = fit_calibration(probs[:2000], labels[:2000], CLASSES, method="isotonic")
    out = calibration.apply(probs[2000:])
    for j in range(3):
        reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(probs[:2000, j], labels[:2000, j])
        np.testing.assert_allclose(out[:, j], reference.predict(probs[2000:, j]), rtol=0, atol=1e-12)
        assert binary_nll(out[:, j], labels[2000:, j]) < binary_nll(probs[2000:, j], labels[2000:, j])
    # Plain isotonic makes ties (a step function), so AUC can change; with epsilon the ranking is the input's.
    tied = fit_calibration(probs[:2000], labels[:2000], CLASSES, method="isotonic", epsilon=1e-6)
    kept = tied.apply(probs[2000:])
    for j in range(3):
        y = labels[2000:, j]
        assert abs(roc_auc_score(y, kept[:, j]) - roc_auc_score(y, probs[2000:, j])) < 1e-9
        assert abs(average_precision_score(y, kept[:, j]) - average_precision_score(y, probs[2000:, j])) < 1e-9
    assert len(np.unique(out[:, 1])) < len(np.unique(kept[:, 1]))


@pytest.mark.parametrize("method", CALIBRATORS.names())
def test_every_method_is_non_decreasing_and_maps_into_0_1(method: str) -> None:
    probs, labels, _ = _miscalibrated(n=500)
    grid = np.linspace(0.0, 1.0, 2001)
    calibration = fit_calibration(probs, labels, CLASSES, method=method)
    out = calibration.apply(np.repeat(grid[:, None], 3, axis=1))
    assert np.all(np.diff(out, axis=0) >= 0)
    assert np.all((out >= 0) & (out <= 1))


def test_unknown_labels_are_masked_out() -> None:
    probs, labels, _ = _miscalibrated(n=600)
    masked = labels.copy()
    masked[::3, 1] = np.nan
    full = fit_calibration(probs, masked, CLASSES, method="platt")
    subset = fit_calibration(
        probs[np.isfinite(masked[:, 1])][:, 1:2], labels[np.isfinite(masked[:, 1])][:, 1:2], ["x"], method="platt"
    )
    assert full.params[1] == subset.params[0]


def test_a_class_without_positives_keeps_the_identity() -> None:
    probs, labels, _ = _miscalibrated(n=300)
    labels[:, 2] = 0.0
    calibration = fit_calibration(probs, labels, CLASSES, method="temperature")
    assert calibration.status[2].startswith("identity") and calibration.status[0] == "fitted"
    np.testing.assert_allclose(calibration.apply(probs)[:, 2], probs[:, 2], rtol=1e-12)


@pytest.mark.parametrize("method", CALIBRATORS.names())
def test_json_round_trip_and_alignment_by_class_name(method: str, tmp_path) -> None:
    probs, labels, _ = _miscalibrated(n=400)
    calibration = fit_calibration(probs, labels, CLASSES, method=method, fitted_on={"predictions": "val.csv"})
    calibration.save(tmp_path / "cal.json")
    loaded = load_calibration(tmp_path / "cal.json")
    assert loaded.method == method and loaded.fitted_on == {"predictions": "val.csv"}
    np.testing.assert_array_equal(loaded.apply(probs), calibration.apply(probs))
    order = [2, 0, 1]
    shuffled = loaded.apply(probs[:, order], [CLASSES[i] for i in order])
    np.testing.assert_array_equal(shuffled, calibration.apply(probs)[:, order])


def test_bad_files_and_classes_are_input_errors(tmp_path) -> None:
    calibration = Calibration("temperature", ("a",), [{"temperature": 2.0}])
    with pytest.raises(InputError, match=r"does not predict classes \['b'\]"):
        calibration.apply(np.full((2, 1), 0.5), ["b"])
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a cxrlt calibration file"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not found"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(InputError, match="unknown calibration method"):
        fit_calibration(np.full((4, 1), 0.5), np.array([[0], [1], [0], [1.0]]), ["a"], method="beta")
