"""Patient-grouped train / validation splits: no patient has images on both sides.

Two ways. :func:`patient_shuffle_split` is the winning CXR-LT 2026 code's: scikit-learn's ``GroupShuffleSplit`` with
``test_size = val_fraction`` takes that share of the *patients* (``ceil(f · n_patients)``, drawn with
``RandomState(seed).permutation`` over the sorted patient ids). :func:`patient_grouped_split` aims at that share of the
*images* instead: groups are shuffled with a seeded
generator and added to validation while they fit under the target image count, so the split is deterministic for a
seed and within one patient's images of ``val_fraction``. With ``labels`` given, several seeded candidates are drawn
and the one whose validation prevalence best matches the whole set is kept (fewest classes with training positives
but no validation positive first, then the smallest L1 prevalence gap): a cheap stratification for long tails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxrlt_core.data.manifest import Manifest
from cxrlt_core.errors import InputError


def _group_keys(
    ids: Sequence[str] | np.ndarray, patients: Sequence[str | None] | np.ndarray | None, patient_prefix: str
) -> np.ndarray:
    """Text group key per row: ``patient_prefix`` + its patient id, or ``image:<id>`` where the patient is blank."""
    ids = np.asarray(ids, dtype=object)
    own = np.array(["image:" + str(i) for i in ids], dtype=object)
    if patients is None:
        return own
    patients = np.asarray(patients, dtype=object)
    if len(patients) != len(ids):
        raise InputError(f"{len(ids)} ids but {len(patients)} patient ids")
    blank = pd.isna(patients) | (patients == "")
    return np.where(blank, own, patient_prefix + patients.astype(str))


def _split_rows(
    data: Manifest | tuple[Sequence[str], Sequence[str | None] | None], val_fraction: float
) -> tuple[Sequence[str], Sequence[str | None] | None]:
    """``(ids, patients)`` of a manifest or pair, after checking ``0 < val_fraction < 1``."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if isinstance(data, Manifest):
        return data.ids, data.patients
    return data


def patient_groups(ids: Sequence[str] | np.ndarray, patients: Sequence[str | None] | np.ndarray | None) -> np.ndarray:
    """Integer group per row: its patient, or its own image id where the patient is blank or unknown."""
    codes, _ = pd.factorize(_group_keys(ids, patients, "patient:"))
    return codes


def _draw(group_of_row: np.ndarray, val_size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean validation mask: groups in a random order, each taken while the total stays within ``val_size``."""
    sizes = np.bincount(group_of_row)
    order = rng.permutation(len(sizes))
    taken = np.zeros(len(sizes), dtype=bool)
    total = 0
    for group in order:
        if total + sizes[group] <= val_size:
            taken[group] = True
            total += sizes[group]
            if total == val_size:
                break
    if not taken.any():
        # Every group is larger than the target: take the smallest one rather than an empty validation set.
        taken[order[np.argmin(sizes[order])]] = True
    return taken[group_of_row]


def _stratification_cost(labels: np.ndarray, val: np.ndarray) -> tuple[int, float]:
    known = ~np.isnan(labels)
    positive = np.where(known, labels > 0.5, False)
    overall = positive.sum(0) / np.maximum(known.sum(0), 1)
    val_prev = positive[val].sum(0) / np.maximum(known[val].sum(0), 1)
    train_pos = positive[~val].sum(0)
    val_pos = positive[val].sum(0)
    lonely = int(((train_pos > 0) & (val_pos == 0) & (positive.sum(0) >= 2)).sum())
    gap = float(np.abs(val_prev - overall).sum() / np.maximum(overall, 1e-12).sum())
    return lonely, gap


def patient_grouped_split(
    data: Manifest | tuple[Sequence[str], Sequence[str | None] | None],
    val_fraction: float = 0.1,
    seed: int = 0,
    labels: np.ndarray | None = None,
    candidates: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into train and validation so that no patient is on both sides.

    Args:
        data: a :class:`Manifest` or a pair ``(ids, patients)``; ``patients`` may be ``None`` or hold blanks,
            and those rows are grouped by image id.
        val_fraction: target share of images in validation (0 < f < 1).
        seed: seeds the shuffle; the same seed always gives the same split.
        labels: optional (n, C) label matrix (NaN unknown): choose the best of ``candidates`` seeded draws.
        candidates: draws compared when ``labels`` is given.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 row indices.
    """
    ids, patients = _split_rows(data, val_fraction)
    groups = patient_groups(ids, patients)
    n = len(groups)
    if groups.max(initial=-1) < 1:
        raise InputError(f"cannot split {n} images of {groups.max(initial=-1) + 1} patient(s) into two groups")
    val_size = max(1, int(round(val_fraction * n)))
    rng = np.random.default_rng(seed)
    if labels is None:
        val = _draw(groups, val_size, rng)
    else:
        labels = np.asarray(labels, dtype=float)
        if labels.shape[0] != n:
            raise InputError(f"labels have {labels.shape[0]} rows, expected {n}")
        draws = [_draw(groups, val_size, rng) for _ in range(max(1, candidates))]
        val = min(draws, key=lambda mask: _stratification_cost(labels, mask))
    if val.all():
        raise InputError("validation split took every image; lower val_fraction")
    return np.flatnonzero(~val).astype(np.int64), np.flatnonzero(val).astype(np.int64)


def patient_shuffle_split(
    data: Manifest | tuple[Sequence[str], Sequence[str | None] | None], val_fraction: float = 0.1, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """``val_fraction`` of the patients to validation, as the winning code did (``GroupShuffleSplit``, one split).

    Groups are the patient ids as text (rows without one are their own group, keyed by image id), so the sorted
    group order — and with it the draw — is the one scikit-learn makes from the CSV's ``PatientID`` column.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 row indices.
    """
    from sklearn.model_selection import GroupShuffleSplit

    ids, patients = _split_rows(data, val_fraction)
    # Bare patient ids (no prefix): scikit-learn sorts the group labels, so the draw matches one made from the CSV.
    keys = _group_keys(ids, patients, "")
    if len(set(keys.tolist())) < 2:
        raise InputError(f"cannot split {len(ids)} images of fewer than two patients into two groups")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(ids)), groups=keys.astype(str)))
    return np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)
