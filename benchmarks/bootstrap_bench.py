"""Benchmark: 1,000 patient-clustered bootstrap resamples of the full report on the real PadChest label matrix.

The 160,861 x 36 matrix with its PatientIDs (67,625 patients), seeded synthetic scores (positives drawn higher,
rounded to float32). The fast side is ``compute_report(..., bootstrap=N, patients=...)``: per-class AP, ROC AUC,
F1 at 0.5 and 15-bin ECE, the pooled ECE, macro means and head/medium/tail buckets on every resample, with 95 %
intervals. The slow reference is the per-resample loop a user would write: rebuild each resample's rows (all images
of each drawn patient) and call scikit-learn per class (ECE by numpy). ``--replay`` resamples are run through that
loop with the same seed, asserted equal to the fast figures (1e-9), and their time is extrapolated to N; both times
and the ratio are printed. (CPU time is the steadier figure on a shared machine.)

    .venv/bin/python benchmarks/bootstrap_bench.py [--resamples 1000] [--replay 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from cxrlt_core.bootstrap import cluster_draws, resample_rows
from cxrlt_core.labels import get_label_space
from cxrlt_core.metrics import compute_report_with_inputs
from cxrlt_core.paths import shared_data_dir

LABELS_FILE = "padchest-label-matrix/padchest_cxrlt2026_labels.csv.gz"
TOLERANCE = 1e-9


def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
    path = shared_data_dir() / LABELS_FILE
    if not path.is_file():
        sys.exit(f"bootstrap_bench: {path} is absent (the real-data folder ../shared/data is not beside this clone)")
    frame = pd.read_csv(path, dtype={"PatientID": str})
    space = get_label_space("cxrlt2026")
    columns = space.match_columns(frame.columns)
    names = [name for name in space.classes if name in columns]
    return frame[[columns[n] for n in names]].to_numpy(np.float64), frame["PatientID"].to_numpy(object), names


def synthetic_scores(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uniform = rng.random(labels.shape)
    return np.where(labels == 1, np.sqrt(uniform), uniform).astype(np.float32).astype(np.float64)


def sklearn_resample(labels: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(4, C) AP, AUC, F1 at 0.5 and 15-bin ECE of one resample's rows, one scikit-learn call per class and figure."""
    edges = np.arange(1, 15) / 15
    out = np.full((4, labels.shape[1]), np.nan)
    y_all, s_all = labels[rows], scores[rows]
    for c in range(labels.shape[1]):
        y, s = y_all[:, c], s_all[:, c]
        if y.sum() > 0:
            out[0, c] = average_precision_score(y, s)
        if 0 < y.sum() < y.size:
            out[1, c] = roc_auc_score(y, s)
        out[2, c] = f1_score(y, s >= 0.5, zero_division=0)
        bins = np.searchsorted(edges, s, side="left")
        out[3, c] = np.abs(np.bincount(bins, y, 15) - np.bincount(bins, s, 15)).sum() / y.size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--replay", type=int, default=3, help="resamples run through the scikit-learn loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels, patients, names = load()
    scores = synthetic_scores(labels, args.seed)
    print(f"{labels.shape[0]:,} images x {labels.shape[1]} classes, {len(set(patients)):,} patients")

    wall, cpu = time.perf_counter(), time.process_time()
    report, inputs = compute_report_with_inputs(
        labels, scores, names, train_labels=labels, bootstrap=args.resamples, seed=args.seed, patients=patients
    )
    fast_wall, fast_cpu = time.perf_counter() - wall, time.process_time() - cpu
    samples = inputs.samples
    design = samples.design

    wall, cpu = time.perf_counter(), time.process_time()
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for b, drawn in enumerate(cluster_draws(design.n_clusters, args.replay, args.seed)):
            reference = sklearn_resample(labels, scores, resample_rows(design, drawn))
            for k, name in enumerate(("ap", "auc", "f1", "ece")):
                ours = samples.figure(name)[b]
                assert np.array_equal(np.isnan(ours), np.isnan(reference[k])), f"{name}: undefined classes differ"
                defined = ~np.isnan(ours)
                worst = max(worst, float(np.max(np.abs(ours[defined] - reference[k][defined]))))
    slow_wall = (time.perf_counter() - wall) / args.replay * args.resamples
    slow_cpu = (time.process_time() - cpu) / args.replay * args.resamples
    assert worst <= TOLERANCE, f"fast bootstrap differs from scikit-learn on a replayed resample by {worst:.3g}"

    unit = report["bootstrap"]["unit"]
    print(f"fast: {args.resamples} {unit}-clustered resamples of the full report: {fast_wall:.1f} s wall, "
          f"{fast_cpu:.1f} s CPU")  # fmt: skip
    print(f"scikit-learn per-resample loop, {args.replay} replayed (equal within {worst:.1g}) and extrapolated to "
          f"{args.resamples}: {slow_wall:.0f} s wall, {slow_cpu:.0f} s CPU")  # fmt: skip
    print(f"ratio: {slow_wall / fast_wall:.0f}x wall, {slow_cpu / fast_cpu:.0f}x CPU")
    low, high = report["mAP_ci"]
    buckets = ", ".join(f"{k} {v['mAP']:.4f} {v['mAP_ci']}" for k, v in report["buckets"].items())
    print(f"mAP {report['mAP']:.4f} [{low:.4f}, {high:.4f}]; mAUC {report['mAUC']:.4f} {report['mAUC_ci']}; {buckets}")


if __name__ == "__main__":
    main()
