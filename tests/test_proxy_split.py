"""Proxy validation split: patient-disjoint, frontal only, every image labelled; the report; the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt_core.cli import main
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.data.proxy_split import proxy_split


def _csv(tmp_path: Path, n_patients: int = 60) -> Path:
    rng = np.random.default_rng(3)
    rows = []
    for p in range(n_patients):
        for k in range(int(rng.integers(1, 5))):
            mass, nodule = (rng.random(2) < [0.3, 0.2]).astype(int)
            view = "L" if k == 1 else str(rng.choice(["PA", "AP"]))  # every second image of a patient is lateral
            rows.append({"ImageID": f"p{p}_{k}.png", "PatientID": f"p{p}", "Projection": view,
                         "Mass": mass, "Nodule": nodule})  # fmt: skip
    path = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_proxy_split_properties(tmp_path: Path) -> None:
    manifest = read_manifest(_csv(tmp_path), label_space="cxrlt2026")
    split = proxy_split(manifest, val_fraction=0.25, seed=1)
    assert split.val.size > 0 and split.train.size > 0
    train_patients, val_patients = set(manifest.patients[split.train]), set(manifest.patients[split.val])
    assert not train_patients & val_patients  # patient-disjoint
    views = manifest.metadata()["view"].to_numpy()
    assert set(views[split.val]) <= {"PA", "AP"}  # frontal only
    assert (np.nan_to_num(manifest.labels[split.val]).sum(axis=1) >= 1).all()  # every image has a finding
    # Every row is in exactly one of train, val, left out; left-out rows belong to validation patients.
    every = np.concatenate([split.train, split.val, split.left_out])
    assert sorted(every) == list(range(len(manifest)))
    assert set(manifest.patients[split.left_out]) <= val_patients
    proxy, random = split.report["proxy"], split.report["random image split of the same size"]
    assert proxy["val images whose patient is in train"] == 0.0
    assert random["val images whose patient is in train"] > 0.3
    assert proxy["val frontal share"] == 1.0 and random["val frontal share"] < 1.0


def test_split_cli(tmp_path: Path, capsys) -> None:
    csv = _csv(tmp_path)
    out = tmp_path / "out"
    args = ["data", "split", "--labels", str(csv), "--label-space", "cxrlt2026", "--proxy", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "val images whose patient is in train" in text and "random" in text
    val = pd.read_csv(out / "val.csv")
    train = pd.read_csv(out / "train.csv")
    assert set(val["Projection"]) <= {"PA", "AP"} and not set(val["PatientID"]) & set(train["PatientID"])
    assert (out / "split.json").is_file()
    no_patient = tmp_path / "np.csv"
    pd.read_csv(csv).drop(columns=["PatientID"]).to_csv(no_patient, index=False)
    assert main(["data", "split", "--labels", str(no_patient), "--proxy", "--out", str(out)]) == 1
    assert "no patient column" in capsys.readouterr().err
