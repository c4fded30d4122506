"""Scorer variants on a hand-made matrix with an empty class; every expected value worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.metrics import compute_report
from cxrlt_core.scorers import SCORERS, get_scorer

NAMES = ["A", "B", "C"]
# A: positives at 0.9 and 0.3, negatives at 0.8 and 0.1. B: one positive at 0.6. C: no positive (empty class).
LABELS = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float)
SCORES = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.2], [0.3, 0.7, 0.6], [0.1, 0.1, 0.4]])
# By hand. AP: A = (1/1 + 2/3) / 2 = 5/6 (ranks 0.9+, 0.8-, 0.3+); B = 1/2 (0.7- above 0.6+).
# AUC: A = 3/4 (0.3 < 0.8 is the only lost pair); B = 2/3. F1 at 0.5: A = 2*1/(2+1+1) = 1/2; B = 2/(2+1) = 2/3;
# C = 0 (one false positive). ECE, 15 bins, every score alone in its bin, so ECE = mean |y - s|:
# A = (0.1 + 0.8 + 0.7 + 0.1) / 4 = 0.425, B = (0.2 + 0.4 + 0.7 + 0.1) / 4 = 0.35, C = (0.1 + 0.2 + 0.6 + 0.4) / 4.
AP, AUC, F1, ECE = [5 / 6, 0.5], [0.75, 2 / 3], [0.5, 2 / 3, 0.0], [0.425, 0.35, 0.325]


def report(scorer: str, **kwargs):
    return compute_report(LABELS, SCORES, NAMES, scorer=scorer, **kwargs)


def test_empty_class_skipped() -> None:
    r = report("cxrlt")
    assert r["skipped"] == ["C"] and math.isnan(r["per_class"]["C"]["ap"])
    assert r["mAP"] == pytest.approx(np.mean(AP))
    assert r["mAUC"] == pytest.approx(np.mean(AUC))
    assert r["mF1"] == pytest.approx(np.mean(F1[:2]))
    assert r["mECE"] == pytest.approx(np.mean(ECE[:2]))


@pytest.mark.parametrize("name", ["winning_code", "sklearn_macro"])
def test_empty_class_counted_as_zero(name: str) -> None:
    r = report(name)
    assert r["per_class"]["C"]["ap"] == 0.0
    assert r["mAP"] == pytest.approx((AP[0] + AP[1] + 0) / 3)
    assert r["mF1"] == pytest.approx(np.mean(F1))
    assert r["mAUC"] == pytest.approx(np.mean(AUC))  # AUC is undefined there, never 0
    assert r["mECE"] == pytest.approx(np.mean(ECE))


def test_empty_class_makes_the_means_nan() -> None:
    r = report("strict")
    assert math.isnan(r["mAP"]) and math.isnan(r["mAUC"]) and math.isnan(r["mF1"])
    assert r["mECE"] == pytest.approx(np.mean(ECE))  # ECE is defined for the empty class


def test_pooled_ece_and_binning() -> None:
    # Pooled over the 12 cells, bins (k/15, (k+1)/15]: |sum y - sum s| per bin is 0.3 (three 0.1), 0.4 (two 0.2),
    # 0.7 (0.3, y=1), 0.4, 0.2 (0.6 y=1 and 0.6 y=0), 0.7, 0.8, 0.1 (0.9, y=1): total 3.6 over 12 cells.
    r = report("pooled_ece")
    assert r["mECE"] == pytest.approx(0.3) and r["pooled_ece"] == pytest.approx(0.3)
    assert r["mECE_per_class"] == pytest.approx(np.mean(ECE[:2]))
    # One bin: ECE = |mean y - mean s|: A |0.5 - 0.525|, B |0.25 - 0.4|.
    one_bin = report("bins=1")
    assert [one_bin["per_class"][n]["ece"] for n in "AB"] == pytest.approx([0.025, 0.15])
    assert report("ece10")["per_class"]["A"]["ece"] == pytest.approx(ECE[0])  # still one score per bin


def test_f1_at_per_class_thresholds() -> None:
    # A at 0.85: only 0.9 called positive: F1 = 2/(2+0+1) = 2/3. B at 0.65: only 0.7 (a negative): F1 = 0.
    r = report("tuned_f1", class_thresholds={"A": 0.85, "B": 0.65, "C": 0.5})
    assert [r["per_class"][n]["f1"] for n in "AB"] == pytest.approx([2 / 3, 0.0])
    assert r["mF1"] == pytest.approx(1 / 3) and r["threshold"] == "per_class"
    with pytest.raises(InputError, match="thresholds file"):
        report("tuned_f1")
    assert report("threshold=0.25")["per_class"]["A"]["f1"] == pytest.approx(2 * 2 / (4 + 1 + 0))


def test_scorer_specs() -> None:
    assert get_scorer(None).name == "cxrlt"
    custom = get_scorer("empty=zero,ece=pooled,bins=10")
    assert (custom.empty, custom.ece, custom.bins) == ("zero", "pooled", 10)
    with pytest.raises(InputError, match="choose one of"):
        get_scorer("empty=maybe")
    with pytest.raises(InputError, match="unknown scorer"):
        get_scorer("leaderboard")
    assert set(SCORERS.names()) >= {"cxrlt", "winning_code", "strict", "pooled_ece", "tuned_f1"}


def test_bootstrap_interval_follows_the_scorer() -> None:
    labels = np.tile(LABELS, (10, 1))
    scores = np.tile(SCORES, (10, 1))
    skip = compute_report(labels, scores, NAMES, bootstrap=50, scorer="cxrlt")
    zero = compute_report(labels, scores, NAMES, bootstrap=50, scorer="winning_code")
    assert zero["mAP_ci"][1] < skip["mAP_ci"][0]  # a third of every zero-scorer mean is the empty class's 0
    assert zero["per_class"]["C"]["ap_ci"] == [0.0, 0.0]
