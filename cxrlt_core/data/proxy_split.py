"""Proxy validation splits that mimic a hidden test set: patient-disjoint, frontal only, every image with a label.

A random image split of a chest X-ray training set leaks: images of one patient land on both sides (in CXR-LT 2026
a team found 77 % of their validation images came from training patients), laterals are scored although the test
holds frontal films, and images without any positive label inflate nothing but the count. The proxy split draws
*patients* (seeded) among those with an eligible image (view PA or AP, at least ``min_labels`` positive labels)
until the validation set holds ``val_fraction`` of the eligible images; validation keeps those patients' eligible
images, training keeps every image of every other patient, and the drawn patients' other images (laterals, images
without a label) are left out of both. The report compares it with a random image split of the same size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt_core.atomic import write_text
from cxrlt_core.data.manifest import Manifest, read_csv_table
from cxrlt_core.data.metadata import is_frontal
from cxrlt_core.data.splits import patient_groups
from cxrlt_core.errors import InputError
from cxrlt_core.labels import prevalence


@dataclasses.dataclass
class ProxySplit:
    """Row indices of the manifest: ``train``, ``val`` and ``left_out``; ``report`` compares it to a random split."""

    train: np.ndarray
    val: np.ndarray
    left_out: np.ndarray
    report: dict[str, Any]


def eligible_rows(manifest: Manifest, min_labels: int = 1, frontal_only: bool = True) -> tuple[np.ndarray, list[str]]:
    """Boolean mask of rows a proxy validation set may hold, and notes on what could not be checked."""
    notes = []
    positives = np.nan_to_num(manifest.labels, nan=0.0).sum(axis=1)
    mask = positives >= min_labels
    if frontal_only:
        views = manifest.metadata()["view"]
        if views.isna().all():
            notes.append(f"{manifest.name} has no view column: frontal-only could not be applied")
        else:
            mask &= is_frontal(views)
    return mask, notes


def _describe(manifest: Manifest, train: np.ndarray, val: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Figures of one split: leakage, frontal share, labelled share, prevalence gap to the whole set."""
    views = manifest.metadata()["view"]
    positives = np.nan_to_num(manifest.labels, nan=0.0).sum(axis=1)
    leaked = np.isin(groups[val], np.unique(groups[train]))
    whole, val_prev = prevalence(manifest.labels), prevalence(manifest.labels[val])
    present = whole > 0
    return {
        "train images": int(train.size),
        "val images": int(val.size),
        "val patients": int(np.unique(groups[val]).size),
        "val images whose patient is in train": float(leaked.mean()) if val.size else float("nan"),
        "val frontal share": float(is_frontal(views.iloc[val]).mean()) if views.notna().any() else float("nan"),
        "val share with a positive label": float((positives[val] > 0).mean()) if val.size else float("nan"),
        "classes with no val positive": int(((val_prev == 0) & present).sum()),
        "prevalence L1 gap to the whole set": float(np.abs(val_prev - whole)[present].sum()),
    }


def proxy_split(
    manifest: Manifest, val_fraction: float = 0.1, seed: int = 0, min_labels: int = 1, frontal_only: bool = True
) -> ProxySplit:
    """The proxy split of ``manifest`` (module docstring) and its comparison with a random image split."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if manifest.patients is None:
        raise InputError(f"{manifest.name}: no patient column; a proxy split must keep patients apart")
    groups = patient_groups(manifest.ids, manifest.patients)
    eligible, notes = eligible_rows(manifest, min_labels, frontal_only)
    if not eligible.any():
        raise InputError(f"{manifest.name}: no image is eligible for validation (frontal with {min_labels}+ labels)")
    target = max(1, int(round(val_fraction * eligible.sum())))
    per_group = np.bincount(groups[eligible], minlength=groups.max() + 1)
    rng = np.random.default_rng(seed)
    chosen = np.zeros(per_group.size, bool)
    total = 0
    for group in rng.permutation(np.flatnonzero(per_group)):
        if total + per_group[group] <= target:
            chosen[group] = True
            total += per_group[group]
        if total >= target:
            break
    in_val_patient = chosen[groups]
    val = np.flatnonzero(in_val_patient & eligible)
    train = np.flatnonzero(~in_val_patient)
    left_out = np.flatnonzero(in_val_patient & ~eligible)
    if val.size == 0 or train.size == 0:
        raise InputError(f"{manifest.name}: the proxy split left one side empty; change val_fraction")
    random_val = np.sort(np.random.default_rng(seed).choice(len(manifest), size=val.size, replace=False))
    random_train = np.setdiff1d(np.arange(len(manifest)), random_val)
    report = {
        "seed": seed, "val_fraction": val_fraction, "min_labels": min_labels, "frontal_only": frontal_only,
        "eligible images": int(eligible.sum()), "left out": int(left_out.size),
        "proxy": _describe(manifest, train, val, groups),
        "random image split of the same size": _describe(manifest, random_train, random_val, groups),
        "notes": notes,
    }  # fmt: skip
    return ProxySplit(train, val, left_out, report)


def format_split_report(report: dict[str, Any]) -> str:
    """Proxy vs random split, one figure per line."""
    proxy, random = report["proxy"], report["random image split of the same size"]
    width = max(len(k) for k in proxy)
    lines = [f"{'':<{width}}  {'proxy':>10}  {'random':>10}"]
    for key in proxy:
        a, b = proxy[key], random[key]
        cell = (lambda v: f"{v:>10.3f}") if isinstance(a, float) else (lambda v: f"{v:>10}")
        lines.append(f"{key:<{width}}  {cell(a)}  {cell(b)}")
    lines.append(f"eligible images (frontal, {report['min_labels']}+ positive labels): {report['eligible images']}; "
                 f"left out (the drawn patients' other images): {report['left out']}")  # fmt: skip
    return "\n".join(lines + [f"note: {n}" for n in report["notes"]])


def write_split(manifest: Manifest, split: ProxySplit, out_dir: str) -> list[str]:
    """``train.csv`` and ``val.csv`` (the original rows, every column) in ``out_dir``; returns their paths."""
    if manifest.path is None:
        raise InputError("the manifest was not read from a file; nothing to copy rows from")
    table = read_csv_table(manifest.path)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create folder ({exc.strerror or exc})") from None
    written = []
    for name, rows in (("train.csv", split.train), ("val.csv", split.val)):
        write_text(out / name, table.iloc[rows].to_csv(index=False))
        written.append(str(out / name))
    return written
