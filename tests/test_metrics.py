"""Challenge metrics against scikit-learn, hand-worked cases, masking, buckets, bootstrap and bad input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve

from cxrlt_core import bootstrap, metrics
from cxrlt_core.errors import InputError

TOL = 1e-9


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    # scikit-learn warns on all-negative columns; those are cases we test on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _column(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 80))
    labels = (rng.random(n) < rng.uniform(0.05, 0.7)).astype(float)
    scores = rng.random(n)
    if kind == "tied":
        scores = np.round(scores, 1)
    elif kind == "few_values":
        scores = rng.choice([0.0, 0.25, 0.5, 1.0], size=n)
    elif kind == "all_negative":
        labels[:] = 0.0
    elif kind == "all_positive":
        labels[:] = 1.0
    elif kind == "logits":
        scores = np.round(rng.normal(size=n) * 3, 1)
    return labels, scores


KINDS = ["random", "tied", "few_values", "all_negative", "all_positive", "logits"]


@pytest.mark.parametrize("kind", KINDS)
def test_single_class_metrics_equal_sklearn(kind):
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    for _ in range(60):
        labels, scores = _column(kind, rng)
        assert metrics.average_precision(labels, scores) == pytest.approx(
            average_precision_score(labels, scores), abs=TOL
        )
        if 0 < labels.sum() < labels.size:
            assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
        else:  # one class only: undefined (scikit-learn 1.9 warns and returns NaN too)
            assert math.isnan(metrics.roc_auc(labels, scores))
        for threshold in (0.5, 0.0, 0.2, 1.0, -1.0):
            expected = f1_score(labels, scores >= threshold, zero_division=0)
            assert metrics.f1_at_threshold(labels, scores, threshold) == pytest.approx(expected, abs=TOL)
        precision, recall, thresholds = metrics.precision_recall_curve(labels, scores)
        sk_precision, sk_recall, sk_thresholds = sk_precision_recall_curve(labels, scores)
        np.testing.assert_allclose(precision, sk_precision, rtol=0, atol=TOL)
        np.testing.assert_allclose(recall, sk_recall, rtol=0, atol=TOL)
        np.testing.assert_array_equal(thresholds, sk_thresholds)


def test_hand_worked_cases():
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]
    assert metrics.average_precision(labels, scores) == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
    assert metrics.roc_auc(labels, scores) == pytest.approx(3 / 4, abs=1e-15)  # 3 of 4 pairs ranked right
    # One tie group holding both: one threshold, precision 1/2 at recall 1; the tie earns half a pair.
    assert metrics.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    # score == threshold is positive: predictions [1, 1, 0] -> TP 1, FP 1, FN 1 -> F1 = 2 / 4.
    assert metrics.f1_at_threshold([1, 0, 1], [0.5, 0.6, 0.4]) == pytest.approx(0.5)
    assert metrics.f1_at_threshold([0, 0], [0.1, 0.2]) == 0.0  # 0/0 -> 0
    # -0.0 and 0.0 are one threshold, as for scikit-learn.
    assert metrics.average_precision([1, 0], [0.0, -0.0]) == pytest.approx(average_precision_score([1, 0], [0.0, -0.0]))


def test_unknown_labels_are_dropped_in_single_class_functions():
    labels = np.array([1, np.nan, 0, 1, np.nan, 0])
    scores = np.array([0.9, 0.95, 0.3, 0.2, 0.01, 0.4])
    known = ~np.isnan(labels)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels[known], scores[known]), abs=TOL
    )
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels[known], scores[known]), abs=TOL)


def test_ece_bins_and_hand_computation():
    edges = metrics.ece_bin_edges()
    assert edges.size == 16 and edges[0] == 0.0 and edges[-1] == 1.0
    # Right-closed bins (Guo et al. 2017): an edge value belongs to the bin below it; 0 to the first, 1 to the last.
    assert metrics.ece_bin_index([0.0, 1 / 15, 1 / 15 + 1e-12, 0.5, 14 / 15, 1.0]).tolist() == [0, 0, 1, 7, 13, 14]
    scores = [0.0, 1 / 15, 0.1, 0.5, 1.0]
    labels = [0, 1, 0, 1, 1]
    # bins: {0.0, 1/15} -> 0, {0.1} -> 1, {0.5} -> 7, {1.0} -> 14
    expected = (abs(1 - (0 + 1 / 15)) + abs(0 - 0.1) + abs(1 - 0.5) + abs(1 - 1.0)) / 5
    assert metrics.expected_calibration_error(labels, scores) == pytest.approx(expected, abs=1e-15)
    curve = metrics.reliability_curve(labels, scores)
    assert curve.count.tolist() == [2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert curve.accuracy[0] == 0.5 and curve.confidence[0] == pytest.approx(1 / 30)
    assert math.isnan(curve.accuracy[2]) and math.isnan(curve.confidence[2])
    assert curve.ece() == pytest.approx(expected, abs=1e-15)
    assert metrics.expected_calibration_error([1, 1], [1.0, 1.0]) == 0.0


def _naive_ece(labels: np.ndarray, scores: np.ndarray, n_bins: int = 15) -> float:
    total = 0.0
    for k in range(n_bins):
        low, high = k / n_bins, (k + 1) / n_bins
        in_bin = (scores > low) & (scores <= high) if k else (scores <= high)
        if in_bin.any():
            total += in_bin.sum() * abs(labels[in_bin].mean() - scores[in_bin].mean())
    return total / labels.size


@pytest.mark.parametrize("kind", ["random", "tied", "few_values", "all_negative", "all_positive"])
def test_ece_and_reliability_equal_reference(kind):
    rng = np.random.default_rng(7)
    for _ in range(40):
        labels, scores = _column(kind, rng)
        assert metrics.expected_calibration_error(labels, scores) == pytest.approx(_naive_ece(labels, scores), abs=TOL)
        curve = metrics.reliability_curve(labels, scores)
        prob_true, prob_pred = calibration_curve(labels, scores, n_bins=15)
        filled = curve.count > 0
        np.testing.assert_allclose(curve.accuracy[filled], prob_true, rtol=0, atol=TOL)
        np.testing.assert_allclose(curve.confidence[filled], prob_pred, rtol=0, atol=TOL)


def _masked_matrix(rng: np.random.Generator, n: int = 300, n_classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    labels = (rng.random((n, n_classes)) < np.linspace(0.02, 0.5, n_classes)).astype(float)
    labels[rng.random(labels.shape) < 0.15] = np.nan
    scores = np.round(rng.random((n, n_classes)), 2)
    return labels, scores


def test_per_class_metrics_mask_unknown_labels_like_dropping_rows():
    rng = np.random.default_rng(3)
    labels, scores = _masked_matrix(rng)
    result = metrics.per_class_metrics(labels, scores, threshold=0.4)
    pooled_labels, pooled_scores = [], []
    for c in range(labels.shape[1]):
        known = ~np.isnan(labels[:, c])
        y, s = labels[known, c], scores[known, c]
        assert result.n_pos[c] == y.sum() and result.n_neg[c] == (y == 0).sum()
        assert result.ap[c] == pytest.approx(average_precision_score(y, s), abs=TOL)
        assert result.auc[c] == pytest.approx(roc_auc_score(y, s), abs=TOL)
        assert result.f1[c] == pytest.approx(f1_score(y, s >= 0.4, zero_division=0), abs=TOL)
        assert result.ece[c] == pytest.approx(_naive_ece(y, s), abs=TOL)
        pooled_labels.append(y)
        pooled_scores.append(s)
    assert result.pooled_ece == pytest.approx(
        _naive_ece(np.concatenate(pooled_labels), np.concatenate(pooled_scores)), abs=TOL
    )
    pooled = result.reliability()
    assert pooled.count.sum() == np.sum(~np.isnan(labels))
    assert pooled.ece() == pytest.approx(result.pooled_ece, abs=TOL)


def test_report_shape_skipped_and_macro_means():
    rng = np.random.default_rng(5)
    labels, scores = _masked_matrix(rng, n_classes=5)
    labels[:, 3] = np.where(np.isnan(labels[:, 3]), np.nan, 0.0)  # no positive: skipped
    labels[:, 4] = 1.0  # no negative: no AUC
    names = ["A", "B", "C", "D", "E"]
    report = metrics.compute_report(labels, scores, names)
    assert report["skipped"] == ["D"]
    assert report["skipped_auc"] == ["D", "E"]
    assert report["n_images"] == labels.shape[0] and report["threshold"] == 0.5
    per = report["per_class"]
    assert set(per) == set(names)
    assert set(per["A"]) >= {"ap", "auc", "f1", "ece", "n_pos", "n_neg", "prevalence"}
    assert math.isnan(per["D"]["ap"]) and math.isnan(per["D"]["auc"]) and math.isnan(per["E"]["auc"])
    assert per["E"]["ap"] == 1.0
    aps = [per[n]["ap"] for n in "ABCE"]
    assert report["mAP"] == pytest.approx(np.mean(aps), abs=TOL)
    assert report["mAUC"] == pytest.approx(np.mean([per[n]["auc"] for n in "ABC"]), abs=TOL)
    assert report["mF1"] == pytest.approx(np.mean([per[n]["f1"] for n in "ABCE"]), abs=TOL)
    assert report["mECE"] == pytest.approx(np.mean([per[n]["ece"] for n in "ABCE"]), abs=TOL)
    for name in names:
        assert per[name]["prevalence"] == pytest.approx(per[name]["n_pos"] / (per[name]["n_pos"] + per[name]["n_neg"]))
    assert "buckets" not in report and "mAP_ci" not in report
    # Plain Python values only: the JSON round trip keeps every number.
    assert json.loads(json.dumps(report))["per_class"]["B"]["ap"] == per["B"]["ap"]
    assert all(type(v) is float for n in names for k, v in per[n].items() if k not in ("n_pos", "n_neg"))

    as_zero = metrics.compute_report(labels, scores, names, skipped_as_zero=True)
    assert as_zero["per_class"]["D"]["ap"] == 0.0
    assert as_zero["mAP"] == pytest.approx(sum(aps) / 5, abs=TOL)
    assert as_zero["mF1"] == pytest.approx(np.mean([per[n]["f1"] for n in names]), abs=TOL)


def test_buckets_from_training_prevalence():
    # Training prevalences over 200 images: 50 % head, 10 % (not > 10 %) medium, 5 % medium, 1 % medium, 0.5 % tail.
    train = np.zeros((200, 5))
    for c, positives in enumerate([100, 20, 10, 2, 1]):
        train[:positives, c] = 1
    names = ["head1", "edge10", "medium5", "edge1", "tail"]
    rng = np.random.default_rng(11)
    labels = (rng.random((120, 5)) < 0.3).astype(float)
    labels[:, 4] = 0.0
    scores = rng.random((120, 5))
    report = metrics.compute_report(labels, scores, names, train_labels=train)
    buckets = report["buckets"]
    assert list(buckets) == ["head", "medium", "tail"]
    assert buckets["head"]["classes"] == ["head1"]
    assert buckets["medium"]["classes"] == ["edge10", "medium5", "edge1"]
    assert buckets["tail"]["classes"] == ["tail"]
    per = report["per_class"]
    assert [per[n]["bucket"] for n in names] == ["head", "medium", "medium", "medium", "tail"]
    assert buckets["head"]["mAP"] == pytest.approx(per["head1"]["ap"])
    assert buckets["medium"]["mAP"] == pytest.approx(np.mean([per[n]["ap"] for n in ("edge10", "medium5", "edge1")]))
    assert math.isnan(buckets["tail"]["mAP"])  # its only class has no positive in the evaluation set
    assert report["mean_of_buckets"] == pytest.approx((buckets["head"]["mAP"] + buckets["medium"]["mAP"]) / 2)

    as_zero = metrics.compute_report(labels, scores, names, train_labels=train, skipped_as_zero=True)
    assert as_zero["buckets"]["tail"]["mAP"] == 0.0
    assert as_zero["mean_of_buckets"] == pytest.approx((buckets["head"]["mAP"] + buckets["medium"]["mAP"]) / 3)

    with pytest.raises(InputError):
        metrics.compute_report(labels, scores, names, train_labels=train[:, :4])


def _naive_bootstrap(labels: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    out = np.full((n_resamples, labels.shape[1]), np.nan)
    for b, rows in enumerate(metrics.bootstrap_indices(labels.shape[0], n_resamples, seed)):
        for c in range(labels.shape[1]):
            y, s = labels[rows, c], scores[rows, c]
            known = ~np.isnan(y)
            if (y[known] == 1).any():
                out[b, c] = average_precision_score(y[known], s[known])
    return out


def test_bootstrap_equals_naive_sklearn_loop():
    rng = np.random.default_rng(9)
    labels, scores = _masked_matrix(rng, n=250, n_classes=5)
    labels[:, 0] = np.nan
    labels[:3, 0] = 1.0  # three positives only: some resamples draw none (NaN)
    labels[3:40, 0] = 0.0
    labels[:, 4] = np.where(np.isnan(labels[:, 4]), np.nan, 0.0)  # never a positive
    fast = metrics.bootstrap_average_precision(labels, scores, n_resamples=60, seed=4)
    naive = _naive_bootstrap(labels, scores, 60, 4)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(naive))
    assert np.isnan(fast[:, 0]).any() and np.isnan(fast[:, 4]).all()
    np.testing.assert_allclose(fast, naive, rtol=0, atol=TOL)

    calls = []
    names = ["a", "b", "c", "d", "e"]
    report = metrics.compute_report(labels, scores, names, bootstrap=60, seed=4, progress=lambda d, t: calls.append(d))
    assert calls == [1]  # one block of resamples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        class_ci = np.nanpercentile(naive, [2.5, 97.5], axis=0)
        map_ci = np.nanpercentile(np.nanmean(naive[:, :4], axis=1), [2.5, 97.5])
    for c, name in enumerate(names[:4]):
        np.testing.assert_allclose(report["per_class"][name]["ap_ci"], class_ci[:, c], rtol=0, atol=TOL)
        lo, hi = report["per_class"][name]["ap_ci"]
        assert lo <= hi
    assert all(math.isnan(v) for v in report["per_class"]["e"]["ap_ci"])
    np.testing.assert_allclose(report["mAP_ci"], map_ci, rtol=0, atol=TOL)
    assert report["bootstrap"] == {"resamples": 60, "seed": 4, "level": 0.95, "unit": "image", "clusters": 250}

    as_zero = metrics.compute_report(labels, scores, names, bootstrap=60, seed=4, skipped_as_zero=True)
    zero_ci = np.percentile(np.nan_to_num(naive, nan=0.0).mean(axis=1), [2.5, 97.5])
    np.testing.assert_allclose(as_zero["mAP_ci"], zero_ci, rtol=0, atol=TOL)
    # Same seed, same resamples; another seed, other resamples.
    again = metrics.bootstrap_average_precision(labels, scores, n_resamples=60, seed=4)
    np.testing.assert_array_equal(np.isnan(again), np.isnan(fast))
    assert not np.allclose(np.nan_to_num(metrics.bootstrap_average_precision(labels, scores, 60, seed=5)), 0)


def test_bootstrap_blocks_give_the_same_resamples(monkeypatch):
    rng = np.random.default_rng(2)
    labels, scores = _masked_matrix(rng, n=120, n_classes=3)
    whole = metrics.bootstrap_average_precision(labels, scores, n_resamples=25, seed=1)
    monkeypatch.setattr(bootstrap, "_BLOCK_RESAMPLES", 4)  # blocks of 4 resamples
    blocked = metrics.bootstrap_average_precision(labels, scores, n_resamples=25, seed=1)
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-12)  # same resamples; sums may differ in the last bit


@pytest.mark.parametrize(
    ("row", "column", "value", "match"),
    [
        (3, 1, np.nan, r"score for class 'B' at row 3: nan"),
        (5, 2, np.inf, r"score for class 'C' at row 5: inf"),
        (0, 0, 1.5, r"score for class 'A' at row 0: 1.5"),
        (7, 1, -0.1, r"score for class 'B' at row 7: -0.1"),
    ],
)
def test_bad_scores_name_class_and_row(row, column, value, match):
    labels = np.zeros((10, 3))
    scores = np.full((10, 3), 0.5)
    scores[row, column] = value
    scores[9, 2] = np.nan  # a later bad cell: the first one is reported
    with pytest.raises(InputError, match=match):
        metrics.compute_report(labels, scores, ["A", "B", "C"])


@pytest.mark.parametrize("value", [2.0, -1.0, 0.5])
def test_bad_labels_name_class_and_row(value):
    labels = np.zeros((6, 2))
    labels[4, 1] = value
    with pytest.raises(InputError, match=rf"label for class 'Y' at row 4: {value!r}"):
        metrics.compute_report(labels, np.full((6, 2), 0.5), ["X", "Y"])


def test_bad_shapes_and_arguments():
    labels, scores = np.zeros((4, 2)), np.full((4, 2), 0.5)
    with pytest.raises(InputError, match="shape"):
        metrics.compute_report(labels, scores[:3], ["a", "b"])
    with pytest.raises(InputError, match="2 label columns"):
        metrics.compute_report(labels, scores, ["a"])
    with pytest.raises(InputError, match="duplicate"):
        metrics.compute_report(labels, scores, ["a", "a"])
    with pytest.raises(InputError, match="2-D"):
        metrics.compute_report(labels[:, 0], scores[:, 0], ["a"])
    with pytest.raises(InputError, match="numeric"):
        metrics.compute_report([["x", "y"]], [[0.1, 0.2]], ["a", "b"])
    with pytest.raises(InputError, match="no rows"):
        metrics.compute_report(np.zeros((0, 2)), np.zeros((0, 2)), ["a", "b"])
    with pytest.raises(InputError, match="threshold"):
        metrics.compute_report(labels, scores, ["a", "b"], threshold=float("nan"))
    with pytest.raises(InputError, match="not a probability"):
        metrics.expected_calibration_error([0, 1], [0.2, 1.2])
    with pytest.raises(InputError, match="not finite"):
        metrics.average_precision([0, 1], [0.2, np.nan])


def test_format_report_table():
    rng = np.random.default_rng(1)
    labels = (rng.random((80, 3)) < 0.3).astype(float)
    labels[:, 2] = 0
    names = ["Cardiomegaly", "Pleural Effusion", "Infarction"]
    report = metrics.compute_report(labels, rng.random((80, 3)), names, train_labels=labels, bootstrap=10)
    text = metrics.format_report_table(report)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["class", "bucket", "n_pos"]
    assert any(
        line.startswith("Cardiomegaly") and f"{report['per_class']['Cardiomegaly']['ap']:.3f}" in line for line in lines
    )
    assert any(line.startswith("Infarction") and "skipped" in line for line in lines)
    assert f"mAP {report['mAP']:.4f}" in text and "mAP by bucket" in text and "95% CI" in text


def test_real_label_matrix_matches_sklearn(shared_data):
    import pandas as pd

    from cxrlt_core.labels import get_label_space

    frame = pd.read_csv(shared_data / "padchest-label-matrix" / "padchest_cxrlt2026_labels.csv.gz", nrows=20000)
    space = get_label_space("cxrlt2026")
    columns = space.match_columns(frame.columns)
    names = [name for name in space.classes if name in columns]
    labels = frame[[columns[name] for name in names]].to_numpy(dtype=float)
    scores = np.random.default_rng(0).random(labels.shape).astype(np.float32).astype(float)
    report = metrics.compute_report(labels, scores, names, train_labels=labels)
    assert "Infarction" in report["skipped"]
    for c, name in enumerate(names):
        y, s = labels[:, c], scores[:, c]
        row = report["per_class"][name]
        if y.sum():
            assert row["ap"] == pytest.approx(average_precision_score(y, s), abs=TOL)
            assert row["auc"] == pytest.approx(roc_auc_score(y, s), abs=TOL)
        assert row["f1"] == pytest.approx(f1_score(y, s >= 0.5, zero_division=0), abs=TOL)
