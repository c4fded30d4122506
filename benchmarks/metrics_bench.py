"""Benchmark: ``compute_report`` on the real 160,861 x 36 PadChest label matrix vs a scikit-learn per-class loop.

Scores are random (seeded) and stored as float32, like model outputs, so some are tied. Both sides compute per-class
AP, ROC AUC, F1 at 0.5 and 15-bin ECE (scikit-learn has no ECE: numpy in the loop) plus the pooled ECE; the script
asserts they agree within 1e-9, then prints the best-of-``--repeats`` wall-clock and CPU times, their ratios, and
the time of a ``--resamples`` bootstrap of per-class AP and mAP. (CPU time is the steadier figure on a shared machine.)

    .venv/bin/python benchmarks/metrics_bench.py [--repeats 3] [--resamples 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt_core.labels import get_label_space
from cxrlt_core.metrics import ECE_BINS, bootstrap_average_precision, bootstrap_indices, compute_report, ece_bin_edges
from cxrlt_core.paths import shared_data_dir

LABELS_FILE = "padchest-label-matrix/padchest_cxrlt2026_labels.csv.gz"
TOLERANCE = 1e-9
NAIVE_BOOTSTRAP_REPLAY = 3


def load_label_matrix() -> tuple[np.ndarray, list[str]]:
    path = (shared_data_dir() or Path("data")) / LABELS_FILE
    if not path.is_file():
        sys.exit(f"metrics_bench: {path} is absent (set CXRLT_SHARED_DATA to the real-data folder)")
    frame = pd.read_csv(path)
    space = get_label_space("cxrlt2026")
    columns = space.match_columns(frame.columns)
    names = [name for name in space.classes if name in columns]
    return frame[[columns[name] for name in names]].to_numpy(dtype=np.float64), names


def random_scores(labels: np.ndarray, seed: int) -> np.ndarray:
    """Seeded scores, mildly informative (positives drawn higher), rounded to float32 like saved model outputs."""
    rng = np.random.default_rng(seed)
    uniform = rng.random(labels.shape)
    return np.where(labels == 1, np.sqrt(uniform), uniform).astype(np.float32).astype(np.float64)


def sklearn_loop(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """The reference: one scikit-learn call per class and metric, ECE by numpy bincount per class."""
    inner_edges = ece_bin_edges(ECE_BINS)[1:-1]
    n_classes = labels.shape[1]
    out = {key: np.full(n_classes, np.nan) for key in ("ap", "auc", "f1", "ece")}
    pooled = np.zeros((3, ECE_BINS))
    for c in range(n_classes):
        known = ~np.isnan(labels[:, c])
        y, s = labels[known, c], scores[known, c]
        if y.sum() > 0:
            out["ap"][c] = average_precision_score(y, s)
        if 0 < y.sum() < y.size:
            out["auc"][c] = roc_auc_score(y, s)
        out["f1"][c] = f1_score(y, s >= threshold, zero_division=0)
        bins = np.searchsorted(inner_edges, s, side="left")
        sums = np.stack(
            [
                np.bincount(bins, minlength=ECE_BINS),
                np.bincount(bins, weights=y, minlength=ECE_BINS),
                np.bincount(bins, weights=s, minlength=ECE_BINS),
            ]
        )
        out["ece"][c] = np.abs(sums[1] - sums[2]).sum() / y.size
        pooled += sums
    out["pooled_ece"] = np.array(np.abs(pooled[1] - pooled[2]).sum() / pooled[0].sum())
    return out


def best_time(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU (process) time over ``repeats`` calls, and the last result."""
    best_wall, best_cpu, result = math.inf, math.inf, None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the best is reported")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels, names = load_label_matrix()
    scores = random_scores(labels, args.seed)
    print(f"label matrix: {labels.shape[0]:,} images x {labels.shape[1]} classes; scores seeded {args.seed}")

    fast_s, fast_cpu, report = best_time(
        lambda: compute_report(labels, scores, names, train_labels=labels), args.repeats
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        slow_s, slow_cpu, reference = best_time(lambda: sklearn_loop(labels, scores), args.repeats)

    worst = 0.0
    for key in ("ap", "auc", "f1", "ece"):
        ours = np.array([report["per_class"][name][key] for name in names])
        theirs = reference[key]
        if not np.array_equal(np.isnan(ours), np.isnan(theirs)):
            raise AssertionError(f"{key}: undefined classes differ")
        defined = ~np.isnan(ours)
        worst = max(worst, float(np.max(np.abs(ours[defined] - theirs[defined]))))
        macro = {"ap": "mAP", "auc": "mAUC", "f1": "mF1", "ece": "mECE"}[key]
        # Macro means run over the classes with a positive (AP defined); mAUC also needs a negative.
        mean_over = defined if key in ("ap", "auc") else ~np.isnan(reference["ap"])
        worst = max(worst, abs(report[macro] - float(np.mean(theirs[mean_over]))))
    worst = max(worst, abs(report["pooled_ece"] - float(reference["pooled_ece"])))
    assert worst <= TOLERANCE, f"compute_report differs from the scikit-learn loop by {worst:.3g}"

    print(f"compute_report (with buckets): {fast_s * 1000:8.1f} ms wall, {fast_cpu * 1000:8.1f} ms CPU")
    print(f"scikit-learn per-class loop:   {slow_s * 1000:8.1f} ms wall, {slow_cpu * 1000:8.1f} ms CPU")
    print(
        f"speed-up: {slow_s / fast_s:.1f}x wall, {slow_cpu / fast_cpu:.1f}x CPU; "
        f"largest difference {worst:.2g} (tolerance {TOLERANCE:g})"
    )
    print(
        f"mAP {report['mAP']:.4f}  mAUC {report['mAUC']:.4f}  mF1 {report['mF1']:.4f}  mECE {report['mECE']:.4f}  "
        f"pooled ECE {report['pooled_ece']:.4f}; skipped: {report['skipped']}"
    )
    print("buckets: " + ", ".join(f"{k} {len(v['classes'])} classes" for k, v in report["buckets"].items()))

    if args.resamples:
        wall, cpu = time.perf_counter(), time.process_time()
        boot = compute_report(labels, scores, names, bootstrap=args.resamples, seed=args.seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        low, high = boot["mAP_ci"]
        print(
            f"compute_report with a {args.resamples}-resample bootstrap: {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"(mAP 95% CI [{low:.4f}, {high:.4f}])"
        )
        naive_bootstrap_check(labels, scores, args.resamples, args.seed, cpu)


def naive_bootstrap_check(labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int, fast_cpu: float) -> None:
    """Replay the first few resamples with scikit-learn, assert equality, extrapolate the naive loop's time."""
    replay = min(NAIVE_BOOTSTRAP_REPLAY, resamples)
    fast = bootstrap_average_precision(labels, scores, n_resamples=replay, seed=seed)
    cpu = time.process_time()
    for b, rows in enumerate(bootstrap_indices(labels.shape[0], replay, seed)):
        for c in range(labels.shape[1]):
            y, s = labels[rows, c], scores[rows, c]
            known = ~np.isnan(y)
            if (y[known] == 1).any():
                expected = average_precision_score(y[known], s[known])
                assert abs(fast[b, c] - expected) <= TOLERANCE, f"bootstrap AP differs at resample {b}, class {c}"
            else:
                assert math.isnan(fast[b, c])
    naive_cpu = (time.process_time() - cpu) / replay * resamples
    print(
        f"naive scikit-learn bootstrap, {replay} resamples replayed (equal within {TOLERANCE:g}) and extrapolated "
        f"to {resamples}: {naive_cpu:.1f} s CPU, {naive_cpu / fast_cpu:.0f}x slower"
    )


if __name__ == "__main__":
    main()
