"""Seed-mean mAP per bucket (cxrlt_core.seed_summary) on hand-made predictions with known APs."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.seed_summary import bucket_groups, bucket_map, format_figure, seed_mean_map


def test_bucket_map_ignores_classes_without_positives():
    samples = np.array([[0.2, np.nan, 0.6], [np.nan, np.nan, np.nan]])
    got = bucket_map(samples, np.array([True, True, False]))
    assert got[0] == pytest.approx(0.2) and np.isnan(got[1])
    assert bucket_map(samples, np.array([True, True, True]))[0] == pytest.approx(0.4)


def test_buckets_follow_training_prevalence():
    """200 training images: 30 % → head, 5 % → medium, 0.5 % → tail (> 10 %, 1-10 %, < 1 %)."""
    train = np.zeros((200, 3))
    train[:60, 0], train[:10, 1], train[:1, 2] = 1, 1, 1
    groups = bucket_groups(train, ["a", "b", "c"])
    assert {g: m.tolist() for g, m in groups.items()} == {
        "all": [True, True, True],
        "head": [True, False, False],
        "medium": [False, True, False],
        "tail": [False, False, True],
    }


def test_seed_mean_of_two_seeds_with_known_average_precisions():
    """Seed 1 ranks both classes perfectly (AP 1, 1); seed 2 puts class b's only positive second of four
    (AP 1/2) and class a's positives first and third (AP (1 + 2/3) / 2 = 5/6).

    Per seed mAP: 1 and (5/6 + 1/2) / 2 = 2/3; seed mean 5/6, sample SD |1 - 2/3| / sqrt(2).
    """
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]], dtype=float)
    perfect = np.array([[0.9, 0.1], [0.8, 0.9], [0.2, 0.2], [0.1, 0.3]])
    second = np.array([[0.9, 0.8], [0.3, 0.7], [0.5, 0.2], [0.1, 0.3]])
    train = np.zeros((10, 2))
    train[:5] = 1  # both head classes
    result = seed_mean_map([(perfect, labels), (second, labels)], ["a", "b"], train, n_boot=200)
    assert result.per_seed["all"] == pytest.approx([1.0, 2 / 3])
    figures = result.figures()
    assert figures["all"]["mean"] == pytest.approx(5 / 6)
    assert figures["all"]["sd"] == pytest.approx((1 - 2 / 3) / np.sqrt(2))
    assert figures["head"]["mean"] == pytest.approx(5 / 6) and figures["head"]["n_classes"] == 2
    assert figures["tail"]["n_classes"] == 0
    low, high = figures["all"]["ci"]
    assert 0.0 <= low <= high <= 1.0
    assert [r["mAP"] for r in result.reports] == pytest.approx([1.0, 2 / 3])
    assert format_figure({"mean": 0.5, "ci": [0.25, 0.75], "sd": 0.125}) == "0.500 [0.250–0.750] ±0.125"
