"""Seed-mean test mAP per frequency bucket with a bootstrap interval: the leaderboard figure of recipe comparisons.

For S training seeds, each with test scores and labels over the same images and classes:

- per seed s and bucket g (``all``, ``head``, ``medium``, ``tail``; buckets from the training prevalence,
  :func:`cxrlt_core.labels.assign_buckets`): mAP_{s,g} = mean AP over the bucket's classes that have a positive;
- the figure is the seed mean (1/S) Σ_s mAP_{s,g}, with its sample standard deviation across seeds;
- its 95 % interval is the percentile interval of (1/S) Σ_s mAP^b_{s,g} over B bootstrap resamples b of the test
  images, drawn once (seed ``seed``) and shared by every training seed, so it is the interval of the seed mean
  under test-set sampling (Efron & Tibshirani 1993, percentile method).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrlt_core.bootstrap import percentile_interval
from cxrlt_core.labels import BUCKETS, assign_buckets
from cxrlt_core.metrics import bootstrap_average_precision, compute_report


def bucket_groups(train_labels: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Class masks of ``all`` and of each bucket, from the training labels (N, C) of ``classes``."""
    bucket_of = assign_buckets(train_labels, list(classes))
    groups = {"all": np.ones(len(classes), bool)}
    groups |= {b: np.array([bucket_of[c] == b for c in classes]) for b in BUCKETS}
    return groups


def bucket_map(samples: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Mean AP over the ``members`` columns of each row of ``samples`` (R, C), NaN (no positive) ignored."""
    with np.errstate(invalid="ignore"):
        block = samples[:, members]
        count = np.sum(~np.isnan(block), axis=1)
        return np.where(count > 0, np.nansum(block, axis=1) / np.maximum(count, 1), np.nan)


@dataclasses.dataclass
class SeedMeanMap:
    """Per bucket: the seeds' mAPs, the bootstrap samples of their mean; and each seed's full report."""

    groups: dict[str, np.ndarray]
    per_seed: dict[str, list[float]]
    boot: dict[str, np.ndarray]
    reports: list[dict[str, Any]]

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per bucket: ``mean``, ``sd`` (across seeds, 0 for one seed), ``ci`` (95 %), ``per_seed``, ``n_classes``."""
        out = {}
        for g, members in self.groups.items():
            values = np.array(self.per_seed[g])
            lo, hi = percentile_interval(self.boot[g])
            out[g] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "ci": [float(lo), float(hi)],
                "per_seed": values.tolist(),
                "n_classes": int(members.sum()),
            }
        return out


def seed_mean_map(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    train_labels: np.ndarray,
    n_boot: int,
    seed: int = 0,
) -> SeedMeanMap:
    """The seed-mean mAP of ``runs`` (one (scores, labels) pair of (N, C) arrays per training seed) per bucket."""
    groups = bucket_groups(train_labels, classes)
    per_seed: dict[str, list[float]] = {g: [] for g in groups}
    boot = {g: np.zeros(n_boot) for g in groups}
    reports = []
    for scores, labels in runs:
        report = compute_report(labels, scores, list(classes))
        reports.append(report)
        ap = np.array([report["per_class"][c]["ap"] for c in classes], dtype=float)
        samples = bootstrap_average_precision(labels, scores, n_boot, seed=seed, class_names=list(classes))
        for g, members in groups.items():
            per_seed[g].append(float(bucket_map(ap[None, :], members)[0]))
            boot[g] += bucket_map(samples, members) / len(runs)
    return SeedMeanMap(groups, per_seed, boot, reports)


def format_figure(figure: dict[str, Any]) -> str:
    """A :meth:`SeedMeanMap.figures` entry as a table cell: ``mean [low–high] ±sd``."""
    return f"{figure['mean']:.3f} [{figure['ci'][0]:.3f}–{figure['ci'][1]:.3f}] ±{figure['sd']:.3f}"
