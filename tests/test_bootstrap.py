"""Patient-clustered bootstrap: whole patients, exact replay against scikit-learn, the design effect."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt_core.bootstrap import (
    bootstrap_figures,
    cluster_draws,
    percentile_interval,
    resample_design,
    resample_rows,
    two_sided_p,
)
from cxrlt_core.errors import InputError
from cxrlt_core.metrics import compute_report


def _sklearn_figures(y: np.ndarray, s: np.ndarray, threshold: float, n_bins: int = 15) -> tuple[float, ...]:
    known = ~np.isnan(y)
    y, s = y[known], s[known]
    ap = average_precision_score(y, s) if y.sum() > 0 else np.nan
    auc = roc_auc_score(y, s) if 0 < y.sum() < y.size else np.nan
    f1 = f1_score(y, s >= threshold, zero_division=0)
    bins = np.searchsorted(np.arange(1, n_bins) / n_bins, s, side="left")
    ece = np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, s, n_bins)).sum() / y.size
    return ap, auc, f1, ece


def _data(seed: int, n: int = 300, n_classes: int = 4, n_patients: int = 90):
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, n_patients, size=n).astype(str)
    labels = (rng.random((n, n_classes)) < np.linspace(0.4, 0.03, n_classes)).astype(float)
    labels[rng.random((n, n_classes)) < 0.05] = np.nan
    scores = np.round(np.clip(0.35 * np.nan_to_num(labels) + 0.65 * rng.random((n, n_classes)), 0, 1), 2)
    return labels, scores, patients


def test_resampling_keeps_patients_whole() -> None:
    patients = np.array(["p1", "p2", "p1", "p3", "p2", "p1", ""], dtype=object)
    design = resample_design(7, patients)
    assert design.unit == "patient" and design.n_clusters == 4  # the blank patient is its own cluster
    for drawn in cluster_draws(design.n_clusters, 50, seed=3):
        rows = resample_rows(design, drawn)
        for cluster in range(design.n_clusters):
            members = np.flatnonzero(design.cluster_of_row == cluster)
            times = int((drawn == cluster).sum())
            # Every image of a drawn patient comes along, as often as the patient was drawn.
            assert all((rows == m).sum() == times for m in members)
        assert len(rows) == design.cluster_sizes()[drawn].sum()
    assert resample_design(7, None).unit == "image"
    assert resample_design(7, patients, unit="image").n_clusters == 7
    with pytest.raises(InputError, match="no patient column"):
        resample_design(7, None, unit="patient")


@pytest.mark.parametrize("unit", ["patient", "image"])
def test_every_figure_equals_sklearn_on_the_replayed_resample(unit: str) -> None:
    labels, scores, patients = _data(1)
    design = resample_design(len(labels), patients, unit=unit)
    thresholds = np.array([0.5, 0.4, 0.6, 0.5])
    samples = bootstrap_figures(labels, scores, design, 12, seed=7, thresholds=thresholds)
    for b, drawn in enumerate(cluster_draws(design.n_clusters, 12, 7)):
        rows = resample_rows(design, drawn)
        for c in range(labels.shape[1]):
            expected = _sklearn_figures(labels[rows, c], scores[rows, c], thresholds[c])
            got = [samples.figure(name)[b, c] for name in ("ap", "auc", "f1", "ece")]
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_intervals_agree_with_a_slow_loop_within_monte_carlo_error() -> None:
    labels, scores, patients = _data(2, n=400, n_classes=2, n_patients=150)
    design = resample_design(len(labels), patients)
    n_resamples = 400
    fast = bootstrap_figures(labels, scores, design, n_resamples, seed=11)
    slow = np.array(
        [
            [_sklearn_figures(labels[rows, 0], scores[rows, 0], 0.5)[k] for k in range(4)]
            for rows in (resample_rows(design, drawn) for drawn in cluster_draws(design.n_clusters, n_resamples, 99))
        ]
    )  # other seed: independent resamples
    # Monte-Carlo standard error of the difference of two 2.5 % quantiles of B normal draws:
    # sqrt(2 p (1 - p) / B) / phi(z_p) standard deviations (p = 0.025, phi(1.96) = 0.0584); allow 3 of them.
    mc_error = np.sqrt(2 * 0.025 * 0.975 / n_resamples) / 0.0584
    for k, name in enumerate(("ap", "auc", "f1", "ece")):
        np.testing.assert_allclose(percentile_interval(fast.figure(name)[:, 0]), percentile_interval(slow[:, k]),
                                   atol=3 * mc_error * np.nanstd(slow[:, k]))  # fmt: skip


def _widths(labels, scores, patients, unit):
    report = compute_report(labels, scores, ["A"], bootstrap=800, seed=5, patients=patients, resample=unit)
    low, high = report["per_class"]["A"]["auc_ci"]
    return high - low


def test_clustered_interval_is_wider_by_the_design_effect() -> None:
    rng = np.random.default_rng(4)
    n_patients, m = 300, 4
    y = (rng.random(n_patients) < 0.3).astype(float)
    s = np.clip(0.3 * y + 0.7 * rng.random(n_patients), 0, 1)
    patients = np.repeat(np.arange(n_patients).astype(str), m)
    # Images of one patient nearly identical: intra-cluster correlation ~1, design effect 1 + (m - 1) * 1 = m.
    labels = np.repeat(y, m)[:, None]
    scores = np.clip(np.repeat(s, m) + rng.normal(0, 1e-4, n_patients * m), 0, 1)[:, None]
    ratio = _widths(labels, scores, patients, "patient") / _widths(labels, scores, patients, "image")
    assert ratio == pytest.approx(np.sqrt(m), rel=0.15)
    # Independent images grouped into the same "patients": design effect 1, the intervals agree.
    labels = (rng.random((n_patients * m, 1)) < 0.3).astype(float)
    scores = np.clip(0.3 * labels + 0.7 * rng.random(labels.shape), 0, 1)
    ratio = _widths(labels, scores, patients, "patient") / _widths(labels, scores, patients, "image")
    assert ratio == pytest.approx(1.0, rel=0.15)


def test_two_sided_p() -> None:
    assert two_sided_p(np.zeros(50)) == 1.0  # identical inputs: no evidence of a difference
    assert two_sided_p(np.full(50, 0.1)) == 0.0
    deltas = np.array([-1.0] * 10 + [1.0] * 90)
    assert two_sided_p(deltas) == pytest.approx(0.2)
