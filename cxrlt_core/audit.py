"""Subgroup audit: for whom does the model fail? Figures per sex, age band, view and site, with clustered intervals.

For every group of every attribute (canonical manifest metadata, :mod:`cxrlt_core.data.metadata`): its size
(images, patients, images with a finding), per-class AP and ROC AUC, TPR and FPR at the chosen thresholds
(``score >= t`` is a positive call), their macro means, and the **underdiagnosis rate**: the share of images with
at least one finding that the model calls normal (Seyyed-Kalantari et al., Nature Medicine 2021), where "called
normal" is the Normal class scored at or above its threshold, or, in a label space without a Normal class, no
finding called positive.

Intervals resample patients (images when no patient is known) of the whole set: every group sees the same drawn
patients, so the *gap* of a group to the rest of its attribute (group - rest) is a paired difference with its own
95 % interval. A gap is flagged only when that interval excludes 0. Macro means run over the classes with at least
5 positives and 5 negatives in both the group and the rest, so a gap never compares different class sets (a
resample where one of them has no positive has no macro figure). A gap is never flagged for a side with fewer than
5 patients, nor when it is undefined in more than 5 % of the resamples (a group with one image with a finding is
missed by a third of them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.bootstrap import (
    ResampleDesign,
    bootstrap_figures,
    count_blocks,
    nan_mean,
    percentile_interval,
    plural,
    resample_design,
)
from cxrlt_core.errors import InputError
from cxrlt_core.metrics import per_class_metrics

ATTRIBUTES = ("sex", "age", "view", "site")
AGE_EDGES = (0, 20, 40, 60, 80)  # bands 0-19, 20-39, 40-59, 60-79, 80+ (Seyyed-Kalantari et al. 2021)
CLASS_FIGURES = ("ap", "auc", "tpr", "fpr")
MACRO_FIGURES = {"ap": "mAP", "auc": "mAUC", "tpr": "mean TPR", "fpr": "mean FPR"}
UNDERDIAGNOSIS = "underdiagnosis"
MIN_PATIENTS = 5
MIN_DEFINED = 0.95  # share of resamples in which a gap must be defined to be flagged
MIN_CLASS_COUNT = 5  # positives and negatives a class needs on both sides to enter the macro means


def age_band(age: pd.Series, edges: Sequence[float] = AGE_EDGES) -> pd.Series:
    """Band label per age (``"40-59"``, ``"80+"``), ``None`` where the age is unknown."""
    edges = list(edges)
    labels = [f"{int(lo)}-{int(hi) - 1}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"{int(edges[-1])}+"]
    index = np.searchsorted(np.asarray(edges, float), age.to_numpy(float), side="right") - 1
    out = [labels[i] if (not math.isnan(a) and i >= 0) else None for a, i in zip(age.to_numpy(float), index)]
    return pd.Series(out, dtype=object)


def subgroups(meta: pd.DataFrame, by: Sequence[str]) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(attribute, group, mask of the group, mask of the rest of the attribute) for every group with a value."""
    out = []
    for attribute in by:
        if attribute not in ATTRIBUTES:
            raise InputError(f"unknown audit attribute {attribute!r}; choose from {', '.join(ATTRIBUTES)}")
        values = age_band(meta["age"]) if attribute == "age" else meta[attribute]
        known = values.notna().to_numpy()
        for group in sorted(values.dropna().unique(), key=str):
            mask = (values == group).to_numpy()
            out.append((attribute, str(group), mask, known & ~mask))
    return out


@dataclasses.dataclass
class _Samples:
    """Point figures and bootstrap samples of one set of rows."""

    point: dict[str, np.ndarray]  # figure -> (C,) or scalar underdiagnosis
    boot: dict[str, np.ndarray]  # figure -> (B, C) or (B,)


def _sub_design(design: ResampleDesign, mask: np.ndarray) -> ResampleDesign:
    # Same cluster codes and count: the same seed draws the same patients for every group.
    return ResampleDesign(design.cluster_of_row[mask], design.n_clusters, design.unit)


def _rates(y: np.ndarray, s: np.ndarray, weights: np.ndarray, thresholds: np.ndarray, normal: int | None):
    """(tpr (B, C), fpr (B, C), underdiagnosis (B,)) with image weights (n, B); NaN where undefined."""
    known = ~np.isnan(y)
    pos = (known & (y == 1)).astype(np.float32)
    neg = (known & (y == 0)).astype(np.float32)
    called = (s >= thresholds).astype(np.float32)
    w = weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = (w @ (pos * called)) / (w @ pos)
        fpr = (w @ (neg * called)) / (w @ neg)
        findings = np.delete(pos, normal, axis=1) if normal is not None else pos
        has_finding = (findings.sum(1) > 0).astype(np.float32)
        called_normal = called[:, normal] if normal is not None else (called.sum(1) == 0).astype(np.float32)
        underdiagnosis = (w @ (has_finding * called_normal)) / (w @ has_finding)
    return tpr, fpr, underdiagnosis


def _figures(y, s, design, thresholds, normal, n_resamples, seed) -> _Samples:
    metrics = per_class_metrics(y, s, threshold=thresholds)
    tpr, fpr, under = _rates(y, s, np.ones((len(y), 1), np.float32), thresholds, normal)
    point = {"ap": metrics.ap, "auc": metrics.auc, "tpr": tpr[0], "fpr": fpr[0], UNDERDIAGNOSIS: under[0],
             "n_pos": metrics.n_pos, "n_neg": metrics.n_neg}  # fmt: skip
    boot: dict[str, Any] = {}
    if n_resamples:
        samples = bootstrap_figures(y, s, design, n_resamples, seed, thresholds)
        boot = {"ap": samples.ap, "auc": samples.auc}
        parts = [_rates(y, s, counts[design.cluster_of_row], thresholds, normal)
                 for counts in count_blocks(design, n_resamples, seed, 256)]  # fmt: skip
        boot["tpr"], boot["fpr"], boot[UNDERDIAGNOSIS] = (np.concatenate(p) for p in zip(*parts))
    return _Samples(point, boot)


@dataclasses.dataclass
class AuditResult:
    """``summary``: one row per group (sizes, macro figures, underdiagnosis, gaps); ``per_class``: one row per
    group, class and figure; ``bootstrap`` settings; ``notes``."""

    summary: pd.DataFrame
    per_class: pd.DataFrame
    bootstrap: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap, "notes": self.notes, "summary": self.summary.to_dict(orient="records"),
                "per_class": self.per_class.to_dict(orient="records")}  # fmt: skip


def _interval(samples: np.ndarray | None) -> tuple[float, float]:
    if samples is None:
        return math.nan, math.nan
    low, high = percentile_interval(samples)
    return float(low), float(high)


def _entry(prefix: str, value: float, rest: float, boot, boot_rest, can_flag: bool) -> dict[str, Any]:
    """Value, interval, gap to the rest, its paired interval and the flag, for one figure."""
    low, high = _interval(boot)
    gaps = None if boot is None else boot - boot_rest
    gap_low, gap_high = _interval(gaps)
    # A resample that misses the group (or all its positives) leaves the gap undefined; an interval over the rest
    # only is not trustworthy, so flag only gaps defined in at least 95 % of the resamples.
    can_flag = can_flag and gaps is not None and float(np.mean(~np.isnan(gaps))) >= MIN_DEFINED
    return {
        prefix: float(value), f"{prefix} low": low, f"{prefix} high": high, f"{prefix} gap": float(value - rest),
        f"{prefix} gap low": gap_low, f"{prefix} gap high": gap_high,
        f"{prefix} flagged": bool(can_flag and (gap_low > 0 or gap_high < 0)),
    }  # fmt: skip


def _defined(samples: _Samples, figure: str) -> np.ndarray:
    """Bootstrap values of a per-class figure, NaN where the class lacks a positive or a negative (AUC undefined)."""
    return np.where(np.isnan(samples.boot["auc"]), np.nan, samples.boot[figure])


def _strict_mean(values: np.ndarray) -> np.ndarray:
    """Row means, NaN where any value is NaN or there is no column."""
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    return values.mean(axis=1)


def _group_rows(
    attribute: str, group: str, group_s: _Samples, rest_s: _Samples, classes: list[str], sizes: dict, can_flag: bool
) -> tuple[dict, list[dict]]:
    # Classes with MIN_CLASS_COUNT positives and negatives on both sides: AUC defined (an all-positive class has AP 1
    # trivially) and present in nearly every resample, so the macro means average the same classes throughout.
    shared = np.ones(len(classes), bool)
    for side in (group_s, rest_s):
        shared &= (side.point["n_pos"] >= MIN_CLASS_COUNT) & (side.point["n_neg"] >= MIN_CLASS_COUNT)
    summary: dict[str, Any] = {"attribute": attribute, "group": group, **sizes, "classes in means": int(shared.sum())}
    boot = bool(group_s.boot)
    for figure, label in MACRO_FIGURES.items():
        value, rest = float(nan_mean(group_s.point[figure][shared])), float(nan_mean(rest_s.point[figure][shared]))
        # Strict means: a resample where one of the classes is undefined has no macro figure (same classes always).
        samples = _strict_mean(_defined(group_s, figure)[:, shared]) if boot else None
        samples_rest = _strict_mean(_defined(rest_s, figure)[:, shared]) if boot else None
        summary.update(_entry(label, value, rest, samples, samples_rest, can_flag))
    summary.update(
        _entry(UNDERDIAGNOSIS, group_s.point[UNDERDIAGNOSIS], rest_s.point[UNDERDIAGNOSIS],
               group_s.boot.get(UNDERDIAGNOSIS), rest_s.boot.get(UNDERDIAGNOSIS), can_flag)
    )  # fmt: skip
    rows = []
    for c, name in enumerate(classes):
        for figure in CLASS_FIGURES:
            entry = _entry(
                "value",
                group_s.point[figure][c],
                rest_s.point[figure][c],
                group_s.boot[figure][:, c] if boot else None,
                rest_s.boot[figure][:, c] if boot else None,
                can_flag,
            )
            rows.append({"attribute": attribute, "group": group, "class": name, "figure": figure, **entry})
    return summary, rows


def audit(
    labels: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    meta: pd.DataFrame,
    by: Sequence[str] = ATTRIBUTES,
    patients: Sequence[object] | np.ndarray | None = None,
    thresholds: float | np.ndarray = 0.5,
    normal: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    resample: str = "auto",
    min_patients: int = MIN_PATIENTS,
    cluster_kind: str = "patient",
) -> AuditResult:
    """Audit aligned ``labels``/``scores`` (n, C) by the canonical ``meta`` columns named in ``by``.

    A gap is flagged only when its interval excludes 0 and both sides hold ``min_patients`` patients (images when
    no patient is known): with fewer, a resample often misses the group and the interval is not trustworthy.
    """
    labels, scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    classes = list(classes)
    thresholds = np.broadcast_to(np.asarray(thresholds, np.float64), (len(classes),)).copy()
    normal_index = classes.index(normal) if normal in classes else None
    design = resample_design(len(labels), patients, resample, kind=cluster_kind)
    notes = []
    missing = [a for a in by if a in meta.columns and meta[a].isna().all()]
    if missing:
        notes.append(f"no metadata for {missing}: not audited (add the column or map it with --columns)")
    groups = subgroups(meta, [a for a in by if a not in missing])
    if not groups:
        raise InputError(f"nothing to audit: none of {list(by)} has a value in the metadata")
    summaries, rows = [], []
    for attribute, group, mask, rest in groups:
        if not rest.any():
            notes.append(f"{attribute}: only one group ({group}), no gap to measure")
        computed = [
            _figures(labels[m], scores[m], _sub_design(design, m), thresholds, normal_index, n_resamples, seed)
            for m in (mask, rest if rest.any() else mask)
        ]
        sizes = {
            "images": int(mask.sum()),
            "patients": int(np.unique(design.cluster_of_row[mask]).size),
            "with a finding": int(_has_finding(labels[mask], normal_index).sum()),
        }
        rest_patients = int(np.unique(design.cluster_of_row[rest]).size)
        can_flag = min(sizes["patients"], rest_patients) >= min_patients
        if not can_flag:
            notes.append(f"{attribute}={group}: fewer than {min_patients} patients on one side, gaps not flagged")
        summary, class_rows = _group_rows(attribute, group, computed[0], computed[1], classes, sizes, can_flag)
        summaries.append(summary)
        rows += class_rows
    boot = {"resamples": n_resamples, "seed": seed, "unit": design.unit, "clusters": design.n_clusters,
            "level": 0.95, "thresholds": dict(zip(classes, map(float, thresholds))), "normal": normal}  # fmt: skip
    return AuditResult(pd.DataFrame(summaries), pd.DataFrame(rows), boot, notes)


def _has_finding(labels: np.ndarray, normal: int | None) -> np.ndarray:
    findings = np.delete(labels, normal, axis=1) if normal is not None else labels
    return np.nan_to_num(findings, nan=0.0).max(axis=1) > 0 if findings.shape[1] else np.zeros(len(labels), bool)


def format_audit(result: AuditResult) -> str:
    """The summary table for the terminal: sizes, macro figures with intervals, gaps (* = interval excludes 0)."""
    lines = [
        f"95 % intervals over {result.bootstrap['resamples']} resamples of {plural(result.bootstrap['unit'])}; "
        "gap = group - rest of the attribute, * = gap interval excludes 0",
        f"{'attribute':<9} {'group':<10} {'images':>6} {'patients':>8} {'finding':>7}  "
        f"{'mAP [95% CI] gap':<30} {'mAUC [95% CI] gap':<30} {'mean TPR':<30} {'mean FPR':<30} {'underdiagnosis':<30}",
    ]
    for row in result.summary.to_dict(orient="records"):
        cells = [_summary_cell(row, key) for key in (*MACRO_FIGURES.values(), UNDERDIAGNOSIS)]
        lines.append(
            f"{row['attribute']:<9} {row['group']:<10} {row['images']:>6} {row['patients']:>8} "
            f"{row['with a finding']:>7}  " + " ".join(f"{cell:<30}" for cell in cells)
        )
    flagged = [f"{r['attribute']}={r['group']} {k}" for r in result.summary.to_dict(orient="records")
               for k in (*MACRO_FIGURES.values(), UNDERDIAGNOSIS) if r[f"{k} flagged"]]  # fmt: skip
    lines.append("flagged gaps: " + (", ".join(flagged) if flagged else "none (every gap interval includes 0)"))
    return "\n".join(lines)


def _summary_cell(row: dict[str, Any], key: str) -> str:
    def f(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"

    flag = "*" if row[f"{key} flagged"] else ""
    text = f"{f(row[key])} [{f(row[key + ' low'])}-{f(row[key + ' high'])}]"
    return text + (f" {row[key + ' gap']:+.3f}{flag}" if row[key + " gap"] == row[key + " gap"] else "")
