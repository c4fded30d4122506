"""Patient-grouped splits: no patient on both sides, close to the fraction, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.data.splits import patient_grouped_split, patient_groups
from cxrlt_core.errors import InputError


def _toy(n_patients: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_patient = rng.integers(1, 8, size=n_patients)
    patients = np.repeat([f"p{k}" for k in range(n_patients)], per_patient).astype(object)
    ids = np.array([f"img{k}" for k in range(len(patients))], dtype=object)
    return ids, patients


def test_no_patient_on_both_sides_and_fraction_close() -> None:
    ids, patients = _toy()
    train, val = patient_grouped_split((ids, patients), val_fraction=0.1, seed=0)
    assert set(patients[train]).isdisjoint(patients[val])
    assert len(train) + len(val) == len(ids) and len(np.intersect1d(train, val)) == 0
    assert abs(len(val) - 0.1 * len(ids)) <= 1  # groups of up to 7 images still land within one image
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    ids, patients = _toy()
    a = patient_grouped_split((ids, patients), 0.2, seed=3)
    b = patient_grouped_split((ids, patients), 0.2, seed=3)
    c = patient_grouped_split((ids, patients), 0.2, seed=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_blank_patients_group_by_image() -> None:
    groups = patient_groups(["a", "b", "c", "d", "e"], ["p1", None, "", "p1", "p2"])
    assert groups[0] == groups[3]
    assert len(set(groups.tolist())) == 4
    assert len(set(patient_groups(["a", "b"], None).tolist())) == 2


def test_split_from_a_manifest(tmp_path: Path) -> None:
    rows = "".join(f"i{k},{k // 3},{k % 2}\n" for k in range(60))
    csv = tmp_path / "labels.csv"
    csv.write_text("ImageID,PatientID,Mass\n" + rows)
    manifest = read_manifest(csv, label_space="cxrlt2026")
    train, val = patient_grouped_split(manifest, val_fraction=0.25, seed=0)
    assert len(val) == 15
    assert set(manifest.patients[train]).isdisjoint(manifest.patients[val])


def test_label_aware_draw_puts_rare_classes_on_both_sides() -> None:
    ids, patients = _toy(n_patients=200)
    labels = np.zeros((len(ids), 3), dtype=np.float32)
    rng = np.random.default_rng(0)
    labels[:, 0] = rng.random(len(ids)) < 0.3
    rare = rng.choice(len(ids), size=6, replace=False)
    labels[rare, 2] = 1
    train, val = patient_grouped_split((ids, patients), 0.1, seed=0, labels=labels, candidates=32)
    assert labels[val, 2].sum() > 0 and labels[train, 2].sum() > 0
    assert set(patients[train]).isdisjoint(patients[val])


def test_bad_arguments() -> None:
    ids, patients = _toy(10)
    with pytest.raises(InputError, match="val_fraction"):
        patient_grouped_split((ids, patients), val_fraction=1.0)
    with pytest.raises(InputError, match="1 patient"):
        patient_grouped_split((["a", "b"], ["p", "p"]))
    with pytest.raises(InputError, match="patient ids"):
        patient_grouped_split((["a", "b"], ["p"]))
