"""Bootstrap of every report figure (per-class AP, AUC, F1, ECE; pooled ECE) over patients or images, fast.

**Resampling units.** With patients known, a resample draws ``P`` patients with replacement from the ``P`` patients
and keeps all images of each draw (the cluster bootstrap; Davison & Hinkley 1997, section 3.8): images of one
patient are correlated, and resampling them one by one understates the variance by the design effect
``1 + (m - 1) rho`` (Kish 1965). Without patients each image is its own cluster (the ordinary bootstrap).
Resample ``b`` is ``rng.integers(0, P, size=P)`` for ``rng = np.random.default_rng(seed)``, its ``b``-th call, so
any code can replay it (:func:`resample_rows`).

**Speed.** A resample is the original images weighted by their multiplicity, the number of times their patient
was drawn, so nothing is re-sorted. Per class, the known images are cut once into score *segments* at every
distinct positive score (``score >= v``), at the F1 threshold (``score >= t``) and at the ECE bin edges
(``score > e``). Every figure is a function of per-segment weighted counts: AP sums over positive segments
``w_pos * TP_suffix / PP_suffix``, AUC sums ``w_pos * (negatives below + 1/2 tied negatives)`` (Mann-Whitney), F1
counts the segments at or above the threshold and ECE the segments of each bin (plus a per-bin weighted score
sum). Those counts for a block of resamples are one sparse-by-dense product ``S_c @ counts`` where ``S_c`` (rows =
segment kinds, columns = patients) holds how many of a patient's images fall in each segment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cxrlt_core.errors import InputError

ProgressCallback = Callable[[int, int], None]
RESAMPLE_UNITS = ("auto", "patient", "image")
_BLOCK_BYTES = 64 << 20  # dense (segment rows x resamples) working set of one class
_BLOCK_RESAMPLES = 128  # at most this many resamples' draw counts are held at once
_COUNTS_BYTES = 96 << 20  # ... and at most this much memory for them (float64 + float32 copies)
_MAX_WORKERS = 4
FIGURES = ("ap", "auc", "f1", "ece")


@dataclasses.dataclass(frozen=True)
class ResampleDesign:
    """Which rows move together: ``cluster_of_row`` (codes 0..n_clusters-1); ``unit`` is ``patient`` or ``image``."""

    cluster_of_row: np.ndarray
    n_clusters: int
    unit: str

    def cluster_sizes(self) -> np.ndarray:
        return np.bincount(self.cluster_of_row, minlength=self.n_clusters)


def resample_design(
    n: int, patients: Sequence[object] | np.ndarray | None = None, unit: str = "auto", kind: str = "patient"
) -> ResampleDesign:
    """The resampling units of ``n`` rows: patients when known (``auto``/``patient``), else images.

    Rows with a blank patient form their own cluster. ``unit="patient"`` without patients is an error. ``kind``
    names the clusters in reports (``patient``, or ``study`` when only study ids are known).
    """
    if unit not in RESAMPLE_UNITS:
        raise InputError(f"unknown resampling unit {unit!r}; choose one of: {', '.join(RESAMPLE_UNITS)}")
    if unit == "patient" and patients is None:
        raise InputError("patient-clustered bootstrap asked for, but the labels have no patient column")
    if unit == "image" or patients is None:
        return ResampleDesign(np.arange(n, dtype=np.int64), n, "image")
    patients = np.asarray(patients, dtype=object)
    if len(patients) != n:
        raise InputError(f"{n} rows but {len(patients)} patient ids")
    blank = pd.isna(patients) | (patients == "")
    keys = np.where(blank, np.array([f"\0row{i}" for i in range(n)], dtype=object), patients.astype(str))
    codes, uniques = pd.factorize(keys)
    return ResampleDesign(codes.astype(np.int64), len(uniques), kind)


def plural(unit: str) -> str:
    """``patients``, ``studies``, ``images``: the resampling unit in a sentence."""
    return "studies" if unit == "study" else f"{unit}s"


def cluster_draws(n_clusters: int, n_resamples: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The clusters drawn by each resample: ``n_clusters`` draws with replacement (see module docstring)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield rng.integers(0, n_clusters, size=n_clusters)


def resample_rows(design: ResampleDesign, drawn: np.ndarray) -> np.ndarray:
    """The rows of one resample: every row of every drawn cluster, once per draw (for replaying a resample)."""
    order = np.argsort(design.cluster_of_row, kind="stable")
    starts = np.searchsorted(design.cluster_of_row[order], np.arange(design.n_clusters + 1))
    return np.concatenate([order[starts[c] : starts[c + 1]] for c in drawn]) if len(drawn) else order[:0]


# -------------------------------------------------------------------------------------------------- class plans


@dataclasses.dataclass(frozen=True)
class _ClassPlan:
    """One class cut into segments (module docstring).

    ``counts`` rows: images of each cluster that are [positives in segment k | negatives in segment k | negatives
    tied with the positive score of tie segment j]; ``scores`` rows: sum of the cluster's scores in ECE bin b.
    """

    counts: sp.csr_matrix
    scores: sp.csr_matrix
    n_segments: int
    pos_segments: np.ndarray  # segments holding positives, ascending
    tie_segments: np.ndarray  # positive segments that also hold negatives with the same score
    bin_starts: np.ndarray  # first segment of each ECE bin, then n_segments
    first_above: int  # first segment at or above the F1 threshold


def _csr(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """CSR from entries already sorted by row; repeated (row, col) entries are kept (a product adds them)."""
    indptr = np.searchsorted(rows, np.arange(n_rows + 1), side="left")
    return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n_rows, n_cols))


def _class_plan(
    y: np.ndarray, s: np.ndarray, cluster: np.ndarray, n_clusters: int, threshold: float, n_bins: int
) -> _ClassPlan | None:
    """Segments of one class's known rows (``y`` 0/1, ``s`` scores, ``cluster`` codes); ``None`` if no row."""
    if y.size == 0:
        return None
    order = np.argsort(s, kind="stable")
    s, positive, cluster = s[order], y[order] == 1, cluster[order]
    pos_values = np.unique(s[positive])
    closed = np.union1d(pos_values, [threshold])  # boundaries "score >= v"
    edges = np.arange(1, n_bins, dtype=np.float64) / n_bins  # boundaries "score > e"
    segment = np.searchsorted(closed, s, side="right") + np.searchsorted(edges, s, side="left")
    n_segments = closed.size + edges.size + 1
    # Boundaries by value, "score >= v" before "score > v": segment k lies after the first k of them.
    values, is_edge = np.concatenate([closed, edges]), np.repeat([False, True], [closed.size, edges.size])
    order = np.lexsort((is_edge, values))
    passed_edges = np.concatenate([[0], np.cumsum(is_edge[order])])
    bin_starts = np.searchsorted(passed_edges, np.arange(n_bins + 1), side="left")
    first_above = int(np.flatnonzero(~is_edge[order] & (values[order] == threshold))[0]) + 1
    # A negative is tied when its score equals a positive score (it then shares that positive's segment).
    tied = ~positive & np.isin(s, pos_values)
    tie_segments = np.unique(segment[tied])
    pos_segments = np.unique(segment[positive])
    rows = np.concatenate(
        [
            segment[positive],
            n_segments + segment[~positive],
            2 * n_segments + np.searchsorted(tie_segments, segment[tied]),
        ]
    )
    cols = np.concatenate([cluster[positive], cluster[~positive], cluster[tied]])
    n_rows = 2 * n_segments + tie_segments.size
    counts = _csr(rows, cols, np.ones(rows.size, dtype=np.float32), n_rows, n_clusters)
    scores = _csr(np.searchsorted(edges, s, side="left"), cluster, s, n_bins, n_clusters)
    return _ClassPlan(counts, scores, n_segments, pos_segments, tie_segments, bin_starts, first_above)


def _figures_from_counts(plan: _ClassPlan, sums: np.ndarray, score_sum: np.ndarray) -> tuple[np.ndarray, ...]:
    """(ap, auc, f1, ece, bin_pos, bin_score, total) over a block of resamples.

    ``sums`` = ``plan.counts @ draws`` (segment rows), ``score_sum`` = ``plan.scores @ draws`` (bin rows).
    """
    k = plan.n_segments
    pos, neg, ties = sums[:k], sums[k : 2 * k], sums[2 * k :]
    cum_pos, cum_neg = np.cumsum(pos, axis=0), np.cumsum(neg, axis=0)
    total_pos, total_neg = cum_pos[-1], cum_neg[-1]
    total = total_pos + total_neg
    seg_pos = pos[plan.pos_segments]
    pos_before = cum_pos[plan.pos_segments] - seg_pos
    neg_before = cum_neg[plan.pos_segments] - neg[plan.pos_segments]
    tied = np.zeros_like(seg_pos)
    if plan.tie_segments.size:
        tied[np.searchsorted(plan.pos_segments, plan.tie_segments)] = ties
    with np.errstate(invalid="ignore", divide="ignore"):
        # AP = sum_k w_pos_k TP_k / PP_k / P, TP_k and PP_k the weighted positives / images at or above segment k.
        true_pos = total_pos - pos_before
        predicted = total - pos_before - neg_before
        ap = (seg_pos * true_pos / np.maximum(predicted, 1.0)).sum(0) / total_pos
        # AUC = sum_k w_pos_k (negatives below segment k + ties_k / 2) / (P N)  (Mann-Whitney).
        auc = (seg_pos * (neg_before + 0.5 * tied)).sum(0) / (total_pos * total_neg)
        if plan.first_above > 0:
            tp = total_pos - cum_pos[plan.first_above - 1]
            fp = total_neg - cum_neg[plan.first_above - 1]
        else:
            tp, fp = total_pos, total_neg
        denominator = 2 * tp + fp + (total_pos - tp)
        f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1.0), 0.0)
        prefix = np.concatenate([np.zeros((1, pos.shape[1])), cum_pos])
        bin_pos = prefix[plan.bin_starts[1:]] - prefix[plan.bin_starts[:-1]]
        ece = np.abs(bin_pos - score_sum).sum(0) / total
    ap[total_pos == 0] = np.nan
    auc[(total_pos == 0) | (total_neg == 0)] = np.nan
    f1[total == 0] = np.nan
    ece[total == 0] = np.nan
    return ap, auc, f1, ece, bin_pos, score_sum, total


def _class_block(plan: _ClassPlan | None, counts: np.ndarray, counts64: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """:func:`_figures_from_counts` for a block of resamples, in column chunks that keep the working set small.

    ``counts`` (float32: integer sums stay exact below 2**24) feeds the count rows, ``counts64`` the score sums.
    """
    if plan is None:
        return None
    chunk = max(1, _BLOCK_BYTES // (8 * 3 * plan.counts.shape[0]))
    parts = [
        _figures_from_counts(
            plan,
            (plan.counts @ counts[:, j : j + chunk]).astype(np.float64),
            plan.scores @ counts64[:, j : j + chunk],
        )
        for j in range(0, counts.shape[1], chunk)
    ]
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(pieces, axis=-1) for pieces in zip(*parts))


# ------------------------------------------------------------------------------------------------- the samples


@dataclasses.dataclass
class BootstrapSamples:
    """Per-resample figures: ``ap``, ``auc``, ``f1``, ``ece`` are (B, C) (NaN where undefined in a resample),
    ``pooled_ece`` is (B,); ``design`` and ``seed`` say how they were drawn."""

    ap: np.ndarray
    auc: np.ndarray
    f1: np.ndarray
    ece: np.ndarray
    pooled_ece: np.ndarray
    design: ResampleDesign
    seed: int

    @property
    def n_resamples(self) -> int:
        return int(self.ap.shape[0])

    def figure(self, name: str) -> np.ndarray:
        return {"ap": self.ap, "auc": self.auc, "f1": self.f1, "ece": self.ece}[name]


def block_size(design: ResampleDesign, n_resamples: int) -> int:
    """Resamples per block: up to 128, fewer when that many clusters' counts would exceed the memory budget."""
    fits = _COUNTS_BYTES // (12 * max(design.n_clusters, 1))
    return int(max(1, min(n_resamples, _BLOCK_RESAMPLES, fits)))


def count_blocks(design: ResampleDesign, n_resamples: int, seed: int, block: int) -> Iterator[np.ndarray]:
    """(n_clusters, width) float64 draw counts for consecutive blocks of ``block`` resamples."""
    draws = cluster_draws(design.n_clusters, n_resamples, seed)
    for first in range(0, n_resamples, block):
        width = min(block, n_resamples - first)
        counts = np.empty((design.n_clusters, width))
        for j in range(width):
            counts[:, j] = np.bincount(next(draws), minlength=design.n_clusters)
        yield counts


def bootstrap_figures(
    labels: np.ndarray,
    scores: np.ndarray,
    design: ResampleDesign,
    n_resamples: int,
    seed: int = 0,
    thresholds: float | Sequence[float] | np.ndarray = 0.5,
    n_bins: int = 15,
    progress: ProgressCallback | None = None,
) -> BootstrapSamples:
    """Every class's AP, AUC, F1 (at its threshold) and ECE, and the pooled ECE, on ``n_resamples`` resamples.

    ``labels`` (n, C) 0/1/NaN and ``scores`` (n, C) in [0, 1] are assumed checked (``metrics.check_inputs``).
    Each figure equals scikit-learn's on the replayed rows of that resample (:func:`resample_rows`).
    """
    if n_resamples < 1:
        raise InputError(f"number of bootstrap resamples must be at least 1, got {n_resamples}")
    n, n_classes = labels.shape
    if n >= 1 << 24:
        raise InputError(f"{n} rows: the bootstrap counts in float32 and handles at most {(1 << 24) - 1}")
    if design.cluster_of_row.shape != (n,):
        raise InputError(f"resampling design covers {design.cluster_of_row.size} rows, the labels have {n}")
    cuts = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_classes,))
    plans = []
    for c in range(n_classes):
        known = ~np.isnan(labels[:, c])
        plans.append(
            _class_plan(labels[known, c], scores[known, c], design.cluster_of_row[known], design.n_clusters,
                        float(cuts[c]), n_bins)
        )  # fmt: skip
    out = {name: np.full((n_resamples, n_classes), np.nan) for name in FIGURES}
    pooled = np.full(n_resamples, np.nan)
    block = block_size(design, n_resamples)
    n_blocks = -(-n_resamples // block)
    workers = max(1, min(os.cpu_count() or 1, _MAX_WORKERS))
    with ThreadPoolExecutor(workers) as pool:
        for index, counts in enumerate(count_blocks(design, n_resamples, seed, block)):
            first, width = index * block, counts.shape[1]
            # scipy's sparse products and numpy's reductions release the GIL: classes run side by side.
            counts32 = counts.astype(np.float32)
            results = list(pool.map(_class_block, plans, [counts32] * len(plans), [counts] * len(plans)))
            bin_pos, bin_score, total = np.zeros((n_bins, width)), np.zeros((n_bins, width)), np.zeros(width)
            for c, figures in enumerate(results):
                if figures is None:
                    continue
                for name, values in zip(FIGURES, figures[:4]):
                    out[name][first : first + width, c] = values
                bin_pos += figures[4]
                bin_score += figures[5]
                total += figures[6]
            with np.errstate(invalid="ignore", divide="ignore"):
                pooled[first : first + width] = np.abs(bin_pos - bin_score).sum(0) / total
            if progress is not None:
                progress(index + 1, n_blocks)
    return BootstrapSamples(out["ap"], out["auc"], out["f1"], out["ece"], pooled, design, seed)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Percentile bootstrap interval along axis 0 (NaN samples ignored): (2, ...) lower and upper bounds."""
    tail = 100.0 * (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds, which is the answer
        return np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)


def two_sided_p(deltas: np.ndarray) -> np.ndarray:
    """Bootstrap two-sided p-value of H0: delta = 0 along axis 0: 2 min(P(d <= 0), P(d >= 0)), capped at 1.

    The share of resamples on either side of 0 (Efron & Tibshirani 1993, section 16.4, percentile version),
    counting ties at 0 on both sides so that identical inputs give p = 1. NaN samples are ignored.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    valid = ~np.isnan(deltas)
    n = valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = (valid & (deltas <= 0)).sum(0) / n
        high = (valid & (deltas >= 0)).sum(0) / n
        return np.where(n > 0, np.minimum(1.0, 2 * np.minimum(low, high)), np.nan)


def nan_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean ignoring NaN (NaN where every value is NaN), without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def finite_or_nan(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan
