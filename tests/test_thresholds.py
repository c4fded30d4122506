"""Per-class F1-optimal thresholds: a tiny case by hand, brute force against scikit-learn, binary outputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cxrlt_core.errors import InputError
from cxrlt_core.inference.thresholds import (
    Thresholds,
    best_f1_threshold,
    binarize,
    f1_at_thresholds,
    fit_thresholds,
    load_thresholds,
)


def test_tiny_case_by_hand() -> None:
    # Cuts keep the top k: F1 = 2 TP / (k + P) with P = 3 -> 2/4, 2/5, 4/6, 6/7, 6/8; best k = 4.
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    labels = np.array([1, 0, 1, 1, 0])
    threshold, f1 = best_f1_threshold(scores, labels)
    assert threshold == pytest.approx(0.25) and f1 == pytest.approx(6 / 7)


def test_ties_are_cut_together_and_unknown_labels_ignored() -> None:
    # Only cuts between distinct scores exist: {0.5, 0.5} -> 2/3; all -> 2/4.
    threshold, f1 = best_f1_threshold(np.array([0.5, 0.5, 0.1, 0.95]), np.array([1, 0, 0, np.nan]))
    assert threshold == pytest.approx(0.3) and f1 == pytest.approx(2 / 3)
    # Predicting everything positive is the best: the threshold is the lowest score.
    assert best_f1_threshold(np.array([0.2, 0.4]), np.array([1, 1])) == (0.2, 1.0)
    assert np.isnan(best_f1_threshold(np.array([0.2, 0.4]), np.array([0, 0]))[0])


def test_best_f1_equals_brute_force_over_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 40))
        labels = (rng.uniform(size=n) < 0.3).astype(float)
        labels[0] = 1.0
        scores = np.round(rng.uniform(size=n), 1 if trial % 2 else 6)  # coarse rounding makes ties
        threshold, f1 = best_f1_threshold(scores, labels)
        brute = max(f1_score(labels, scores >= t, zero_division=0) for t in np.unique(scores))
        assert f1 == pytest.approx(brute, abs=1e-12)
        assert f1_score(labels, scores >= threshold, zero_division=0) == pytest.approx(f1, abs=1e-12)


def test_f1_at_thresholds_against_scikit_learn_per_class() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=(60, 3)) < 0.4).astype(float)
    scores = rng.uniform(size=(60, 3))
    thresholds = np.array([0.3, 0.5, 0.7])
    labels[::7, 1] = np.nan
    got = f1_at_thresholds(labels, scores, thresholds)
    for j in range(3):
        known = ~np.isnan(labels[:, j])
        assert got[j] == pytest.approx(f1_score(labels[known, j], scores[known, j] >= thresholds[j]), abs=1e-12)
    labels[:, 2] = 0
    assert np.isnan(f1_at_thresholds(labels, scores, 0.5)[2])


def test_fitted_thresholds_never_lower_validation_f1_and_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(2)
    labels = (rng.uniform(size=(200, 4)) < [0.5, 0.2, 0.05, 0.0]).astype(float)
    scores = np.clip(0.3 * labels + rng.uniform(0, 0.7, size=labels.shape), 0, 1)
    fitted = fit_thresholds(scores, labels, ["a", "b", "c", "d"], fitted_on={"predictions": "val.csv"})
    tuned = f1_at_thresholds(labels, scores, fitted.thresholds)
    at_half = f1_at_thresholds(labels, scores, 0.5)
    assert np.all(tuned[:3] >= at_half[:3] - 1e-12)
    np.testing.assert_allclose(tuned[:3], fitted.f1_validation[:3])
    assert fitted.thresholds[3] == 0.5 and fitted.f1_validation[3] is None and fitted.positives[3] == 0
    fitted.save(tmp_path / "thr.json")
    loaded = load_thresholds(tmp_path / "thr.json")
    assert loaded.thresholds == fitted.thresholds and loaded.fitted_on == {"predictions": "val.csv"}
    np.testing.assert_array_equal(loaded.binarize(scores), binarize(scores, fitted.thresholds))
    order = [3, 1, 0, 2]
    np.testing.assert_array_equal(
        loaded.binarize(scores[:, order], ["d", "b", "a", "c"]), loaded.binarize(scores)[:, order]
    )


def test_binarize_uses_greater_or_equal() -> None:
    out = binarize(np.array([[0.5, 0.49], [0.2, 0.8]]), [0.5, 0.8])
    assert out.dtype == np.uint8 and out.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(InputError, match="thresholds"):
        binarize(np.zeros((2, 2)), [0.5])


def test_bad_files_are_input_errors(tmp_path) -> None:
    (tmp_path / "t.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a cxrlt thresholds file"):
        load_thresholds(tmp_path / "t.json")
    with pytest.raises(InputError, match="thresholds for"):
        Thresholds(("a", "b"), [0.5])
    with pytest.raises(InputError, match=r"does not predict classes \['z'\]"):
        Thresholds(("a",), [0.5]).for_classes(["z"])
