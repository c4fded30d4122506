"""Challenge metrics: per-class AP, ROC AUC, F1 and ECE, macro means, head/medium/tail buckets, bootstrap CIs.

Every figure equals scikit-learn's within 1e-9 (``average_precision_score``, ``roc_auc_score``, ``f1_score``,
``precision_recall_curve``, ``calibration_curve``), but one class costs one sort and a handful of array passes:
the known scores of a class are sorted once, ascending, and every threshold-based figure is read off the tie groups
of that sorted column (sklearn's "distinct score thresholds"), with no loop over thresholds.

Choices the official scoring code (not public) leaves open; docs/method.md "Metrics" makes and documents them:

* Unknown labels (NaN) are masked per class: that cell is dropped for that class, exactly as if the row were absent.
* A class with no known positive has no AP; it is left out of every macro mean and listed in ``skipped``
  (``skipped_as_zero=True`` counts its AP and F1 as 0 in ``mAP``/``mF1`` instead, as the winning team's code did).
  A class with no known negative has no ROC AUC and is left out of ``mAUC`` (listed in ``skipped_auc``).
* F1 at a threshold calls a score ``>= threshold`` positive (like ``probs >= 0.5``); 0 when it is 0/0
  (``zero_division=0``).
* ECE uses 15 equal-width bins with right-closed intervals, as Guo et al. (2017) define them:
  bin ``k`` is ``(k/15, (k+1)/15]`` for ``k >= 1`` and bin 0 is ``[0, 1/15]`` (so 0 goes in the first bin and 1.0 in
  the last); the edges are ``np.arange(16) / 15``. ECE is reported per class (their mean is ``mECE``) and pooled
  over all known cells (``pooled_ece``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cxrlt_core.bootstrap import (
    FIGURES,
    BootstrapSamples,
    ResampleDesign,
    block_size,
    bootstrap_figures,
    cluster_draws,
    nan_mean,
    resample_design,
)
from cxrlt_core.bootstrap import percentile_interval as _percentile_interval
from cxrlt_core.errors import InputError
from cxrlt_core.labels import BUCKETS, assign_buckets, prevalence
from cxrlt_core.scorers import Scorer, get_scorer, macro_figures
from cxrlt_core.scorers import class_thresholds as scorer_thresholds

ECE_BINS = 15
DEFAULT_THRESHOLD = 0.5
DEFAULT_BOOTSTRAP_RESAMPLES = 200
CI_LEVEL = 0.95


ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------------- input checks


def _as_matrix(values: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be numeric: {exc}") from None
    if array.ndim != 2:
        raise InputError(f"{what} must be a 2-D (images, classes) array, got shape {array.shape}")
    return array


def _first_bad(bad: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first True cell in row-major order, or ``None``."""
    index = int(np.argmax(bad))  # argmax indexes the C-order flattening whatever the memory layout
    row, column = divmod(index, bad.shape[1])
    return (row, column) if bad[row, column] else None


def check_inputs(
    labels: object, scores: object, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate a label matrix and a score matrix; return them as float64 arrays with the class names.

    Labels must be 0, 1 or NaN (unknown); scores must be finite probabilities in [0, 1]; both (images, classes)
    with the same shape. The first bad cell (row-major) is named by class and row index in an ``InputError``.
    """
    labels = _as_matrix(labels, "labels")
    scores = _as_matrix(scores, "scores")
    if labels.shape != scores.shape:
        raise InputError(f"labels have shape {labels.shape} but scores have shape {scores.shape}")
    names = [f"column {j}" for j in range(labels.shape[1])] if class_names is None else [str(c) for c in class_names]
    if len(names) != labels.shape[1]:
        raise InputError(f"{len(names)} class names for {labels.shape[1]} label columns")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise InputError(f"duplicate class names: {duplicates}")
    if labels.shape[0] == 0:
        raise InputError("no rows to evaluate")
    bad = _first_bad(~((labels == 0) | (labels == 1) | np.isnan(labels)))
    if bad is not None:
        row, column = bad
        value = float(labels[row, column])
        raise InputError(f"label for class {names[column]!r} at row {row}: {value!r} is not 0, 1 or unknown (NaN)")
    bad = _first_bad(~((scores >= 0.0) & (scores <= 1.0)))
    if bad is not None:
        row, column = bad
        value = float(scores[row, column])
        raise InputError(
            f"score for class {names[column]!r} at row {row}: {value!r} is not a finite probability in [0, 1]"
        )
    return labels, scores, names


def _as_column(labels: object, scores: object, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One class's known labels (bool) and their scores; NaN labels are dropped, finite scores required.

    With ``probabilities`` the scores must lie in [0, 1]. Rows in errors count from 0 over the input as given.
    """
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise InputError(f"{labels.size} labels but {scores.size} scores")
    bad = np.flatnonzero(~((labels == 0) | (labels == 1) | np.isnan(labels)))
    if bad.size:
        raise InputError(f"label at row {bad[0]}: {float(labels[bad[0]])!r} is not 0, 1 or unknown (NaN)")
    valid = (scores >= 0.0) & (scores <= 1.0) if probabilities else np.isfinite(scores)
    bad = np.flatnonzero(~valid)
    if bad.size:
        wanted = "a probability in [0, 1]" if probabilities else "finite"
        raise InputError(f"score at row {bad[0]}: {float(scores[bad[0]])!r} is not {wanted}")
    known = ~np.isnan(labels)
    if not known.all():
        labels, scores = labels[known], scores[known]
    return labels == 1, scores


# ------------------------------------------------------------------------------------------------ sorted column


@dataclass(frozen=True)
class _SortedColumn:
    """One class's known (score, label) pairs as ascending uint64 sort keys: ``score_rank << 1 | label``.

    For non-negative scores the rank is the IEEE-754 bit pattern, which orders exactly like the floats, so a plain
    ``np.sort`` of the keys (about 3x faster than ``argsort`` plus gathers) sorts by score and keeps each label.
    Other scores (e.g. logits) use their dense rank among ``values``. Equal scores share a rank: a tie group is a run
    of keys ``2r`` (negatives) then ``2r + 1`` (positives), i.e. one of scikit-learn's distinct thresholds.
    ``pos_index`` holds the sorted positions of the positives.
    """

    keys: np.ndarray
    pos_index: np.ndarray
    values: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.keys.size)

    @property
    def n_pos(self) -> int:
        return int(self.pos_index.size)

    @property
    def n_neg(self) -> int:
        return self.n - self.n_pos

    def scores(self) -> np.ndarray:
        """The sorted scores as floats."""
        ranks = self.keys >> np.uint64(1)
        return ranks.view(np.float64) if self.values is None else self.values[ranks]

    def threshold_key(self, threshold: float, closed: bool = True) -> np.uint64:
        """Key ``k`` such that ``score >= threshold`` iff ``key >= k`` (``closed``), or ``score > threshold`` iff."""
        if self.values is not None:
            side = "left" if closed else "right"
            return np.uint64(int(np.searchsorted(self.values, threshold, side=side)) << 1)
        if threshold < 0.0 or (threshold == 0.0 and closed):
            return np.uint64(0)
        bits = int(np.float64(threshold + 0.0).view(np.uint64))
        return np.uint64((bits << 1) + (0 if closed else 2))

    def count_below(self, key: np.uint64 | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(elements, positives) with a sort key below ``key``."""
        below = np.searchsorted(self.keys, key, side="left")
        return below, np.searchsorted(self.pos_index, below, side="left")


def _sort_column(positive: np.ndarray, scores: np.ndarray) -> _SortedColumn:
    """Sort one class's known scores (with their labels) ascending; see :class:`_SortedColumn`."""
    values = None
    if scores.size and scores.min() >= 0.0:
        # -0.0 is 0.0 for scikit-learn too: its sign bit is shifted out, so both get key 0.
        keys = scores.view(np.uint64) << np.uint64(1)
    else:
        values, ranks = np.unique(scores, return_inverse=True)
        keys = ranks.astype(np.uint64) << np.uint64(1)
    keys |= positive
    keys.sort()
    return _SortedColumn(keys, np.flatnonzero(keys & np.uint64(1)), values)


def _ranking_figures(column: _SortedColumn) -> tuple[float, float]:
    """(average precision, ROC AUC) of one class from its positives only.

    For a positive with key ``k``, its tie group starts at the first key ``>= k - 1``; ``first`` counts positives
    below the group. At the group's threshold TP = n_pos - first and predicted positives = n - start, so
    AP = (1 / n_pos) sum_positives TP / PP, i.e. sum_k (R_k - R_{k-1}) P_k over distinct thresholds
    (scikit-learn ``average_precision_score``, no interpolation). ROC AUC is the Mann-Whitney statistic with ties
    credited 1/2 (the trapezoidal area under scikit-learn's ROC curve):
    2 n_pos n_neg AUC = sum_positives (negatives below the group + negatives up to and including it), exact in
    integers. AP is NaN without positives, AUC without positives or negatives.
    """
    n, n_pos = column.n, column.n_pos
    if n_pos == 0:
        return math.nan, math.nan
    pos_keys = column.keys[column.pos_index]
    first = np.searchsorted(pos_keys, pos_keys, side="left")
    start = np.searchsorted(column.keys, pos_keys - np.uint64(1), side="left")
    ap = float(np.sum((n_pos - first) / (n - start)) / n_pos)
    n_neg = n - n_pos
    if n_neg == 0:
        return ap, math.nan
    through = np.searchsorted(column.keys, pos_keys, side="left")
    twice_area = int(np.sum(start + through - 2 * first))
    return ap, twice_area / (2.0 * n_pos * n_neg)


def _f1(column: _SortedColumn, threshold: float) -> float:
    """F1 = 2 TP / (2 TP + FP + FN) with ``score >= threshold`` positive; 0 when 0/0 (sklearn ``zero_division=0``)."""
    below, pos_below = column.count_below(column.threshold_key(threshold))
    true_pos = column.n_pos - int(pos_below)
    false_pos = (column.n - int(below)) - true_pos
    false_neg = column.n_pos - true_pos
    denominator = 2 * true_pos + false_pos + false_neg
    return 2 * true_pos / denominator if denominator else 0.0


def ece_bin_edges(n_bins: int = ECE_BINS) -> np.ndarray:
    """Edges ``k / n_bins`` for ``k = 0..n_bins`` (bin k is ``(edge_k, edge_k+1]``, bin 0 also holds 0)."""
    if n_bins < 1:
        raise InputError(f"number of ECE bins must be at least 1, got {n_bins}")
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def ece_bin_index(scores: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin of each score in [0, 1]: ``k`` with ``edge_k < s <= edge_k+1``, and 0 for ``s == 0``."""
    return np.searchsorted(ece_bin_edges(n_bins)[1:-1], np.asarray(scores, dtype=np.float64), side="left")


def _bin_sums(column: _SortedColumn, n_bins: int) -> np.ndarray:
    """(3, n_bins) per-bin count, sum of labels and sum of scores, read off the sorted column."""
    uppers = [column.threshold_key(edge, closed=False) for edge in ece_bin_edges(n_bins)[1:-1]]
    below, pos_below = column.count_below(np.array(uppers, dtype=np.uint64))
    bounds = np.concatenate(([0], below, [column.n]))
    counts = np.diff(bounds)
    positives = np.diff(np.concatenate(([0], pos_below, [column.n_pos])))
    score_sums = np.zeros(n_bins)
    filled = counts > 0
    if filled.any():
        # Segments between consecutive non-empty bins' starts are exactly those bins (empty ones have no elements).
        score_sums[filled] = np.add.reduceat(column.scores(), bounds[:-1][filled])
    return np.stack([counts.astype(np.float64), positives.astype(np.float64), score_sums])


def _ece_from_bins(sums: np.ndarray) -> float:
    """ECE = sum_k (n_k / N) |acc_k - conf_k| = sum_k |sum_y_k - sum_s_k| / N (Naeini et al. 2015; Guo et al. 2017)."""
    total = sums[0].sum()
    if total == 0:
        return math.nan
    return float(np.abs(sums[1] - sums[2]).sum() / total)


# ------------------------------------------------------------------------------------------ single-class metrics


def average_precision(labels: object, scores: object) -> float:
    """Average precision of one class, = ``sklearn.metrics.average_precision_score``.

    AP = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds (scikit-learn's definition, no interpolation).
    NaN labels are dropped. With no positive it returns 0.0, as scikit-learn does (``compute_report`` instead
    reports NaN and lists the class as skipped).
    """
    positive, scores = _as_column(labels, scores)
    ap, _ = _ranking_figures(_sort_column(positive, scores))
    return 0.0 if math.isnan(ap) else ap


def roc_auc(labels: object, scores: object) -> float:
    """Area under the ROC curve of one class, = ``sklearn.metrics.roc_auc_score`` (ties count 1/2).

    NaN labels are dropped; NaN when the column lacks positives or negatives (scikit-learn warns and returns NaN).
    """
    positive, scores = _as_column(labels, scores)
    return _ranking_figures(_sort_column(positive, scores))[1]


def f1_at_threshold(labels: object, scores: object, threshold: float = DEFAULT_THRESHOLD) -> float:
    """F1 of one class with ``score >= threshold`` predicted positive.

    = ``sklearn.metrics.f1_score(labels, scores >= threshold, zero_division=0)``; NaN labels are dropped.
    """
    positive, scores = _as_column(labels, scores)
    return _f1(_sort_column(positive, scores), _check_threshold(threshold))


def expected_calibration_error(labels: object, scores: object, n_bins: int = ECE_BINS) -> float:
    """ECE of one class's probabilities: sum_k (n_k / N) |mean label_k - mean score_k| over equal-width bins.

    Bins as in :func:`ece_bin_index` (Guo et al. 2017, right-closed, 0 in the first bin). NaN labels are dropped;
    NaN when no label is known.
    """
    positive, scores = _as_column(labels, scores, probabilities=True)
    return _ece_from_bins(_bin_sums(_sort_column(positive, scores), n_bins))


def precision_recall_curve(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) exactly as ``sklearn.metrics.precision_recall_curve`` returns them.

    Thresholds are the distinct scores, ascending; ``precision[i]``/``recall[i]`` are at ``score >= thresholds[i]``,
    and a final (1, 0) point closes the curve. With no positive, recall is 1 everywhere (as scikit-learn sets it).
    """
    positive, scores = _as_column(labels, scores)
    column = _sort_column(positive, scores)
    ranks = column.keys >> np.uint64(1)
    new_group = np.ones(column.n, dtype=bool)
    np.not_equal(ranks[1:], ranks[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    true_pos = (column.n_pos - np.searchsorted(column.pos_index, starts, side="left")).astype(np.float64)
    precision = true_pos / (column.n - starts)
    recall = true_pos / column.n_pos if column.n_pos else np.ones_like(true_pos)
    return np.append(precision, 1.0), np.append(recall, 0.0), column.scores()[starts]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin calibration of one class (or of pooled cells), for a reliability diagram.

    ``edges`` has n_bins + 1 entries; per bin, ``confidence`` is the mean score, ``accuracy`` the share of positives
    (both NaN in an empty bin) and ``count`` the number of cells.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    def ece(self) -> float:
        """sum_k (n_k / N) |accuracy_k - confidence_k| over non-empty bins."""
        total = self.count.sum()
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.count[filled] * gaps) / total) if total else math.nan


def _reliability_from_bins(sums: np.ndarray, n_bins: int) -> ReliabilityCurve:
    counts = sums[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(counts > 0, sums[2] / counts, np.nan)
        accuracy = np.where(counts > 0, sums[1] / counts, np.nan)
    return ReliabilityCurve(ece_bin_edges(n_bins), confidence, accuracy, counts.astype(np.int64))


def reliability_curve(labels: object, scores: object, n_bins: int = ECE_BINS) -> ReliabilityCurve:
    """Reliability diagram data of one class (the bins of :func:`expected_calibration_error`).

    Its non-empty bins equal ``sklearn.calibration.calibration_curve(labels, scores, n_bins=n_bins)``
    (``prob_true`` = accuracy, ``prob_pred`` = confidence).
    """
    positive, scores = _as_column(labels, scores, probabilities=True)
    return _reliability_from_bins(_bin_sums(_sort_column(positive, scores), n_bins), n_bins)


# ---------------------------------------------------------------------------------------------- per-class arrays


@dataclass(frozen=True)
class ClassMetrics:
    """Per-class arrays (length C) for one label matrix and one score matrix, plus the pooled ECE.

    ``ap`` is NaN without positives, ``auc`` NaN without positives or negatives, ``ece`` NaN without known labels;
    ``bins`` is the (C, 3, n_bins) per-bin count / label sum / score sum behind ECE and the reliability curves.
    """

    ap: np.ndarray
    auc: np.ndarray
    f1: np.ndarray
    ece: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    bins: np.ndarray

    @property
    def pooled_ece(self) -> float:
        """ECE over all known cells of all classes together (their bins summed)."""
        return _ece_from_bins(self.bins.sum(axis=0))

    def reliability(self, index: int | None = None) -> ReliabilityCurve:
        """Reliability curve of class ``index``, or pooled over all classes when ``None``."""
        sums = self.bins.sum(axis=0) if index is None else self.bins[index]
        return _reliability_from_bins(sums, sums.shape[1])


def _columns(labels: np.ndarray, scores: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield each class's known (positive, score) vectors, contiguous (one transpose, not a strided read per op)."""
    labels_t = np.ascontiguousarray(labels.T)
    scores_t = np.ascontiguousarray(scores.T)
    for label_col, score_col in zip(labels_t, scores_t):
        known = ~np.isnan(label_col)
        if known.all():
            yield label_col == 1, score_col
        else:
            yield label_col[known] == 1, score_col[known]


def per_class_metrics(
    labels: object,
    scores: object,
    threshold: float = DEFAULT_THRESHOLD,
    n_bins: int = ECE_BINS,
    class_names: Sequence[str] | None = None,
) -> ClassMetrics:
    """AP, ROC AUC, F1 at ``threshold`` (one, or one per class) and ECE of every class; NaN labels masked.

    One sort per class; each figure equals scikit-learn's on that class's known rows.
    """
    labels, scores, _ = check_inputs(labels, scores, class_names)
    if np.ndim(threshold):
        thresholds = np.asarray(threshold, dtype=np.float64)
        if thresholds.shape != (labels.shape[1],) or not np.isfinite(thresholds).all():
            raise InputError(f"thresholds: expected {labels.shape[1]} finite values, got {threshold!r}")
        return _per_class_metrics(labels, scores, thresholds, n_bins)
    return _per_class_metrics(labels, scores, _check_threshold(threshold), n_bins)


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(value):
        raise InputError(f"threshold must be finite, got {threshold!r}")
    return value


def _per_class_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float | np.ndarray, n_bins: int
) -> ClassMetrics:
    """Per-class figures; ``threshold`` is one F1 threshold or one per class."""
    n_classes = labels.shape[1]
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_classes,))
    ap, auc, f1, ece = (np.full(n_classes, np.nan) for _ in range(4))
    n_pos = np.zeros(n_classes, dtype=np.int64)
    n_neg = np.zeros(n_classes, dtype=np.int64)
    bins = np.zeros((n_classes, 3, n_bins))
    for c, (positive, column) in enumerate(_columns(labels, scores)):
        sorted_column = _sort_column(positive, column)
        n_pos[c], n_neg[c] = sorted_column.n_pos, sorted_column.n_neg
        if sorted_column.n == 0:
            continue
        ap[c], auc[c] = _ranking_figures(sorted_column)
        f1[c] = _f1(sorted_column, float(thresholds[c]))
        bins[c] = _bin_sums(sorted_column, n_bins)
        ece[c] = _ece_from_bins(bins[c])
    return ClassMetrics(ap, auc, f1, ece, n_pos, n_neg, bins)


# ----------------------------------------------------------------------------------------------------- bootstrap


def bootstrap_indices(n: int, n_resamples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The rows of each image-level bootstrap resample: ``n`` draws with replacement, one ``rng.integers`` call each.

    ``rng = np.random.default_rng(seed)``; resample ``b`` is the ``b``-th call, so any code can replay them
    (``cxrlt_core.bootstrap.cluster_draws`` with every image its own cluster).
    """
    return cluster_draws(n, n_resamples, seed)


def bootstrap_average_precision(
    labels: object,
    scores: object,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    progress: ProgressCallback | bool | None = None,
    patients: Sequence[object] | np.ndarray | None = None,
) -> np.ndarray:
    """(n_resamples, C) AP of every class on bootstrap resamples: of images (:func:`bootstrap_indices`), or of
    patients when ``patients`` is given. Equal to ``average_precision_score`` on each replayed resample's known
    rows; NaN where a resample holds no positive of a class."""
    labels, scores, _ = check_inputs(labels, scores, class_names)
    design = resample_design(labels.shape[0], patients)
    return _run_bootstrap(labels, scores, design, n_resamples, seed, DEFAULT_THRESHOLD, ECE_BINS, progress).ap


def _run_bootstrap(
    labels: np.ndarray,
    scores: np.ndarray,
    design: ResampleDesign,
    n_resamples: int,
    seed: int,
    thresholds: float | np.ndarray,
    n_bins: int,
    progress: ProgressCallback | bool | None,
) -> BootstrapSamples:
    n_blocks = -(-n_resamples // block_size(design, n_resamples)) if n_resamples > 0 else 1
    report, close = _progress_reporter(progress, n_blocks, f"bootstrap ({design.unit}s)")
    try:
        return bootstrap_figures(labels, scores, design, n_resamples, seed, thresholds, n_bins,
                                 progress=lambda done, total: report(done))  # fmt: skip
    finally:
        close()


def _progress_reporter(
    progress: ProgressCallback | bool | None, total: int, description: str
) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(update(done), close()) for a callback, a tqdm bar (``True``) or nothing."""
    if progress is True:
        bar = tqdm(total=total, desc=description, leave=False)

        def update(done: int) -> None:
            bar.update(done - bar.n)

        return update, bar.close
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    return (lambda done: None), (lambda: None)


def percentile_interval(samples: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """Percentile bootstrap interval along axis 0 (NaN samples ignored): (2, ...) lower and upper bounds."""
    return _percentile_interval(samples, level)


# ------------------------------------------------------------------------------------------------------- report


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _py(value: float | int | np.floating | np.integer) -> float:
    return float(value)


def _pair(interval: np.ndarray) -> list[float]:
    return [_py(interval[0]), _py(interval[1])]


@dataclass
class ReportInputs:
    """What a report was computed from, kept for paired comparisons and audits."""

    labels: np.ndarray
    scores: np.ndarray
    names: list[str]
    scorer: Scorer
    thresholds: np.ndarray
    has_pos: np.ndarray
    bucket_of: dict[str, str] | None
    samples: BootstrapSamples | None = None


def compute_report(labels: object, scores: object, class_names: Sequence[str], **options: Any) -> dict[str, object]:
    """The challenge's figures for one prediction matrix, as a JSON-ready dict (plain floats, NaN if undefined).

    Keys: ``mAP``, ``mAUC``, ``mF1``, ``mECE`` (macro means under the ``scorer``, :mod:`cxrlt_core.scorers`;
    ``mECE`` is the pooled ECE with ``ece=pooled``), ``mECE_per_class``, ``pooled_ece``, ``threshold``,
    ``n_images``, ``scorer``, ``per_class`` (class -> ``ap``, ``auc``, ``f1``, ``ece``, ``n_pos``, ``n_neg``,
    ``prevalence``, ``threshold``, and ``bucket`` / ``*_ci`` when asked), ``skipped`` (no positive),
    ``skipped_auc`` (no positive or no negative). With ``train_labels``: ``buckets`` (``head``/``medium``/``tail``
    -> ``classes``, ``mAP``, ``train_prevalence`` of the members; head > 10 %, medium 1-10 %, tail < 1 % training
    prevalence), per-class ``train_prevalence`` and ``mean_of_buckets``. ``skipped_as_zero`` is the ``zero``
    empty-class policy. With ``bootstrap=B > 0``: a 95 % percentile interval for every figure (``mAP_ci``,
    ``mAUC_ci``, ``mF1_ci``, ``mECE_ci``, ``pooled_ece_ci``, per-class ``ap_ci``/``auc_ci``/``f1_ci``/``ece_ci``,
    each bucket's ``mAP_ci``, ``mean_of_buckets_ci``) over B resamples of patients when ``patients`` is given
    (``resample="image"`` resamples images instead), and ``bootstrap`` = {``resamples``, ``seed``, ``level``,
    ``unit``, ``clusters``}. ``progress`` follows the bootstrap: a ``(done, total)`` callback or ``True`` (tqdm).
    """
    return compute_report_with_inputs(labels, scores, class_names, **options)[0]


def compute_report_with_inputs(
    labels: object,
    scores: object,
    class_names: Sequence[str],
    train_labels: object | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    skipped_as_zero: bool = False,
    bootstrap: int = 0,
    seed: int = 0,
    progress: ProgressCallback | bool | None = None,
    patients: Sequence[object] | np.ndarray | None = None,
    resample: str = "auto",
    scorer: Scorer | str | None = None,
    class_thresholds: Mapping[str, float] | np.ndarray | None = None,
    cluster_kind: str = "patient",
) -> tuple[dict[str, object], ReportInputs]:
    """:func:`compute_report` (whose ``options`` are the keyword arguments here: ``train_labels``, ``threshold``,
    ``skipped_as_zero``, ``bootstrap``, ``seed``, ``progress``, ``patients``, ``resample``, ``scorer``,
    ``class_thresholds``, ``cluster_kind``) and the :class:`ReportInputs` (with the bootstrap samples) behind it."""
    labels, scores, names = check_inputs(labels, scores, class_names)
    chosen = get_scorer(scorer, threshold=_check_threshold(threshold) if scorer is None else None)
    if skipped_as_zero:
        chosen = replace(chosen, empty="zero")
    thresholds = scorer_thresholds(chosen, names, class_thresholds)
    metrics = _per_class_metrics(labels, scores, thresholds, chosen.bins)
    bucket_of = None
    if train_labels is not None:
        bucket_of = assign_buckets(_as_matrix(train_labels, "training labels"), names)
    inputs = ReportInputs(labels, scores, names, chosen, thresholds, metrics.n_pos > 0, bucket_of)
    report = _point_report(inputs, metrics)
    if train_labels is not None:
        _add_buckets(report, inputs, metrics, prevalence(_as_matrix(train_labels, "training labels")))
    if bootstrap:
        if bootstrap < 0:
            raise InputError(f"number of bootstrap resamples must be at least 1, got {bootstrap}")
        design = resample_design(labels.shape[0], patients, resample, kind=cluster_kind)
        inputs.samples = _run_bootstrap(labels, scores, design, bootstrap, seed, thresholds, chosen.bins, progress)
        _add_intervals(report, inputs)
    return report, inputs


def _point_report(inputs: ReportInputs, metrics: ClassMetrics) -> dict[str, object]:
    """The figures of the data as given (no resampling)."""
    scorer, names, has_pos = inputs.scorer, inputs.names, inputs.has_pos
    has_auc = has_pos & (metrics.n_neg > 0)
    ap = np.where(has_pos, metrics.ap, 0.0 if scorer.empty == "zero" else np.nan)
    figures = {"ap": metrics.ap, "auc": metrics.auc, "f1": metrics.f1, "ece": metrics.ece}
    macro = {k: _py(v) for k, v in macro_figures(scorer, figures, has_pos).items()}
    pooled = _py(metrics.pooled_ece)
    known = metrics.n_pos + metrics.n_neg
    report: dict[str, object] = {
        "mAP": macro["mAP"],
        "mAUC": macro["mAUC"],
        "mF1": macro["mF1"],
        "mECE": pooled if scorer.ece == "pooled" else macro["mECE"],
        "mECE_per_class": macro["mECE"],
        "pooled_ece": pooled,
        "threshold": float(inputs.thresholds[0]) if scorer.f1 == "fixed" else "per_class",
        "n_images": int(inputs.labels.shape[0]),
        "n_classes": len(names),
        "scorer": scorer.to_dict(),
        "skipped": [name for name, ok in zip(names, has_pos) if not ok],
        "skipped_auc": [name for name, ok in zip(names, has_auc) if not ok],
    }
    report["per_class"] = {
        name: {
            "ap": _py(ap[c]),
            "auc": _py(metrics.auc[c]),
            "f1": _py(0.0 if scorer.empty == "zero" and not has_pos[c] else metrics.f1[c]),
            "ece": _py(metrics.ece[c]),
            "n_pos": int(metrics.n_pos[c]),
            "n_neg": int(metrics.n_neg[c]),
            "prevalence": _py(metrics.n_pos[c] / known[c]) if known[c] else math.nan,
            "threshold": float(inputs.thresholds[c]),
        }
        for c, name in enumerate(names)
    }
    return report


def bucket_members(inputs: ReportInputs) -> dict[str, np.ndarray]:
    """Class masks of head / medium / tail (``inputs`` computed with training labels)."""
    assert inputs.bucket_of is not None
    return {b: np.array([inputs.bucket_of[n] == b for n in inputs.names]) for b in BUCKETS}


def _add_buckets(report: dict[str, Any], inputs: ReportInputs, metrics: ClassMetrics, train_prev: np.ndarray) -> None:
    """Head / medium / tail by training prevalence (the prevalence shown beside them is the training one)."""
    figures = {"ap": metrics.ap, "auc": metrics.auc, "f1": metrics.f1, "ece": metrics.ece}
    buckets: dict[str, dict[str, object]] = {}
    for bucket, members in bucket_members(inputs).items():
        buckets[bucket] = {
            "classes": [name for name, member in zip(inputs.names, members) if member],
            "mAP": _py(macro_figures(inputs.scorer, figures, inputs.has_pos, members)["mAP"]),
        }
    for c, name in enumerate(inputs.names):
        report["per_class"][name]["bucket"] = inputs.bucket_of[name]
        report["per_class"][name]["train_prevalence"] = _py(train_prev[c])
    report["buckets"] = buckets
    report["mean_of_buckets"] = _mean(np.array([b["mAP"] for b in buckets.values() if not math.isnan(b["mAP"])]))


def _add_intervals(report: dict[str, Any], inputs: ReportInputs) -> None:
    """Percentile intervals of every figure over the bootstrap samples (same scorer as the point figures)."""
    samples = inputs.samples
    assert samples is not None
    figures = {name: samples.figure(name) for name in FIGURES}
    macro = macro_figures(inputs.scorer, figures, inputs.has_pos)
    if inputs.scorer.ece == "pooled":
        macro["mECE"] = samples.pooled_ece
    for key in ("mAP", "mAUC", "mF1", "mECE"):
        report[f"{key}_ci"] = _pair(_percentile_interval(macro[key]))
    report["pooled_ece_ci"] = _pair(_percentile_interval(samples.pooled_ece))
    for name in FIGURES:
        values = figures[name]
        if name in ("ap", "f1") and inputs.scorer.empty == "zero":
            values = np.where(np.isnan(samples.ap), 0.0, values)
        interval = _percentile_interval(values)
        for c, cls in enumerate(inputs.names):
            report["per_class"][cls][f"{name}_ci"] = _pair(interval[:, c])
    if "buckets" in report:
        per_bucket = []
        for bucket, members in bucket_members(inputs).items():
            resampled = macro_figures(inputs.scorer, figures, inputs.has_pos, members)["mAP"]
            report["buckets"][bucket]["mAP_ci"] = _pair(_percentile_interval(resampled))
            if not math.isnan(report["buckets"][bucket]["mAP"]):
                per_bucket.append(resampled)
        if per_bucket:
            report["mean_of_buckets_ci"] = _pair(_percentile_interval(nan_mean(np.stack(per_bucket, 1), axis=1)))
    report["bootstrap"] = {
        "resamples": samples.n_resamples,
        "seed": samples.seed,
        "level": CI_LEVEL,
        "unit": samples.design.unit,
        "clusters": samples.design.n_clusters,
    }


def _cell(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_report_table(report: Mapping[str, Any]) -> str:
    """The per-class table (class, bucket, n_pos, AP, AUC, F1, ECE) and the macro lines, for the terminal."""
    per_class: Mapping[str, Mapping[str, Any]] = report["per_class"]
    skipped = set(report.get("skipped", []))
    with_ci = "mAP_ci" in report
    width = max([len("class")] + [len(name) for name in per_class])
    header = f"{'class':<{width}}  {'bucket':<6}  {'n_pos':>7}  {'AP':>6}  {'AUC':>6}  {'F1':>6}  {'ECE':>6}"
    if with_ci:
        header += f"  {'AP 95% CI':>16}"
    lines = [header, "-" * len(header)]
    for name, row in per_class.items():
        line = (
            f"{name:<{width}}  {row.get('bucket', '-'):<6}  {row['n_pos']:>7d}  {_cell(row['ap']):>6}  "
            f"{_cell(row['auc']):>6}  {_cell(row['f1']):>6}  {_cell(row['ece']):>6}"
        )
        if with_ci:
            low, high = row["ap_ci"]
            line += f"  {'[' + _cell(low) + ', ' + _cell(high) + ']':>16}"
        if name in skipped:
            line += "  (skipped: no positive)"
        lines.append(line)
    lines.append("-" * len(header))
    macro = (
        f"macro over {len(per_class) - len(skipped)} of {len(per_class)} classes, {report['n_images']} images: "
        f"mAP {_cell(report['mAP'], 4)}  mAUC {_cell(report['mAUC'], 4)}  "
        f"mF1@{report['threshold']:g} {_cell(report['mF1'], 4)}  mECE {_cell(report['mECE'], 4)}  "
        f"pooled ECE {_cell(report['pooled_ece'], 4)}"
    )
    if with_ci:
        low, high = report["mAP_ci"]
        resamples = report["bootstrap"]["resamples"]
        macro += f"  (mAP 95% CI [{_cell(low, 4)}, {_cell(high, 4)}], {resamples} resamples)"
    lines.append(macro)
    if "buckets" in report:
        parts = [f"{name} {_cell(b['mAP'], 4)} ({len(b['classes'])})" for name, b in report["buckets"].items()]
        lines.append(f"mAP by bucket: {', '.join(parts)}; mean of buckets {_cell(report['mean_of_buckets'], 4)}")
    if skipped:
        lines.append("skipped (no positive): " + ", ".join(sorted(skipped)))
    return "\n".join(lines)
