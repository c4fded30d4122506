"""Subgroup audit on a tiny table whose counts and rates are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.audit import age_band, audit
from cxrlt_core.cli import main

CLASSES = ["Normal", "Mass", "Nodule"]
# patient, sex, age, view, labels (Normal, Mass, Nodule), scores
ROWS = [
    ("p1", "M", 30, "PA", (0, 1, 0), (0.7, 0.6, 0.1)),  # finding, called Normal: underdiagnosed; Mass caught
    ("p1", "M", 30, "PA", (0, 1, 0), (0.2, 0.4, 0.1)),  # finding, Mass missed
    ("p2", "F", 50, "AP", (1, 0, 0), (0.9, 0.1, 0.2)),
    ("p2", "F", 50, "AP", (0, 0, 1), (0.6, 0.2, 0.7)),  # finding, called Normal: underdiagnosed
    ("p3", "F", 70, "PA", (0, 1, 1), (0.1, 0.8, 0.3)),
    ("p3", "F", 70, "PA", (1, 0, 0), (0.8, 0.6, 0.1)),  # Mass false positive
    ("p4", "M", 85, "AP", (0, 0, 1), (0.3, 0.1, 0.9)),
    ("p4", "M", 85, "AP", (1, 0, 0), (0.9, 0.2, 0.4)),
]
LABELS = np.array([r[4] for r in ROWS], float)
SCORES = np.array([r[5] for r in ROWS], float)
META = pd.DataFrame({"sex": [r[1] for r in ROWS], "age": [float(r[2]) for r in ROWS], "view": [r[3] for r in ROWS],
                     "site": [None] * 8, "study": [None] * 8})  # fmt: skip
PATIENTS = np.array([r[0] for r in ROWS], dtype=object)


def test_subgroup_sizes_and_rates_by_hand() -> None:
    result = audit(LABELS, SCORES, CLASSES, META, patients=PATIENTS, normal="Normal", n_resamples=30, seed=1)
    summary = result.summary.set_index(["attribute", "group"])
    assert list(summary.index) == [("sex", "F"), ("sex", "M"), ("age", "20-39"), ("age", "40-59"), ("age", "60-79"),
                                   ("age", "80+"), ("view", "AP"), ("view", "PA")]  # fmt: skip
    assert summary.loc[("sex", "M"), ["images", "patients", "with a finding"]].tolist() == [4, 2, 3]
    assert summary.loc[("sex", "F"), ["images", "patients", "with a finding"]].tolist() == [4, 2, 2]
    assert summary.loc[("view", "PA"), "patients"] == 2 and summary.loc[("age", "80+"), "images"] == 2
    # Underdiagnosis: M 1 of 3 findings (row 0), F 1 of 2 (row 3); the gap is group - rest.
    assert summary.loc[("sex", "M"), "underdiagnosis"] == pytest.approx(1 / 3)
    assert summary.loc[("sex", "F"), "underdiagnosis"] == pytest.approx(1 / 2)
    assert summary.loc[("sex", "M"), "underdiagnosis gap"] == pytest.approx(1 / 3 - 1 / 2)
    per = result.per_class.set_index(["attribute", "group", "class", "figure"])["value"]
    assert per[("sex", "M", "Mass", "tpr")] == pytest.approx(1 / 2)  # rows 0 (0.6 caught), 1 (0.4 missed)
    assert per[("sex", "F", "Mass", "tpr")] == pytest.approx(1.0)
    assert per[("sex", "F", "Mass", "fpr")] == pytest.approx(1 / 3)  # 0.6 of row 5 among 0.1, 0.2, 0.6
    assert per[("sex", "M", "Mass", "fpr")] == 0.0
    assert any("site" in note for note in result.notes)
    assert result.bootstrap["unit"] == "patient" and result.bootstrap["clusters"] == 4
    # With 2 patients per side nothing is distinguishable from noise: no flag.
    assert not summary["underdiagnosis flagged"].any()


def test_a_real_gap_is_flagged() -> None:
    rng = np.random.default_rng(0)
    n = 600
    sex = np.where(np.arange(n) % 2 == 0, "F", "M")
    y = (rng.random((n, 2)) < 0.4).astype(float)
    y[:, 0] = (y[:, 1] == 0).astype(float)  # Normal when no Mass
    signal = np.where(sex == "F", 0.6, 0.05)  # the model barely sees Mass in men
    mass = np.clip(signal * y[:, 1] + (1 - signal) * rng.random(n), 0, 1)
    scores = np.stack([1 - mass, mass], axis=1)
    meta = pd.DataFrame({"sex": sex, "age": np.nan, "view": None, "site": None, "study": None})
    result = audit(y, scores, ["Normal", "Mass"], meta, by=["sex"], normal="Normal", n_resamples=200)
    men = result.summary.set_index("group").loc["M"]
    assert men["mAUC gap"] < 0 and men["mAUC flagged"] and men["underdiagnosis flagged"]


def test_age_bands() -> None:
    bands = age_band(pd.Series([0.5, 19.9, 20, 59, 80, 101, np.nan]))
    assert bands.tolist() == ["0-19", "0-19", "20-39", "40-59", "80+", "80+", None]


def test_audit_cli(tmp_path: Path, capsys) -> None:
    ids = [f"i{k}.png" for k in range(8)]
    labels = pd.DataFrame(LABELS.astype(int), columns=CLASSES)
    labels.insert(0, "PatientID", PATIENTS)
    labels.insert(0, "ImageID", ids)
    labels["PatientSex"], labels["PatientAge"], labels["Projection"] = META["sex"], [r[2] for r in ROWS], META["view"]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    pred = pd.DataFrame(SCORES, columns=CLASSES)
    pred.insert(0, "ImageID", ids)
    pred.to_csv(tmp_path / "pred.csv", index=False)
    args = ["audit", "--pred", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
            "--label-space", "cxrlt2026", "--bootstrap", "20", "--json", str(tmp_path / "a.json")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sex" in out and "80+" in out and "flagged gaps" in out and (tmp_path / "a.json").is_file()
    assert main([*args[:-2], "--by", "weight"]) == 1
    assert "unknown audit attribute 'weight'" in capsys.readouterr().err
