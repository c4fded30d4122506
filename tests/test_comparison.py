"""Paired comparison: a file against itself, a clearly better file, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt_core.cli import main
from cxrlt_core.comparison import compare_files, format_comparison, sorted_deltas

CLASSES = ["Mass", "Nodule", "Hernia"]


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    n = 240
    y = (rng.random((n, 3)) < [0.3, 0.2, 0.1]).astype(int)
    ids = [f"img{i}.png" for i in range(n)]
    labels = pd.DataFrame(y, columns=CLASSES)
    labels.insert(0, "PatientID", [f"p{i // 3}" for i in range(n)])
    labels.insert(0, "ImageID", ids)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    paths = []
    for name, strength in (("a", 0.1), ("b", 0.6)):
        scores = np.clip(strength * y + (1 - strength) * rng.random((n, 3)), 0, 1)
        frame = pd.DataFrame(scores, columns=CLASSES)
        frame.insert(0, "ImageID", ids)
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    return paths[0], paths[1], tmp_path / "labels.csv"


def test_a_file_against_itself_is_zero_with_a_zero_width_interval(tmp_path: Path) -> None:
    a, _, labels = _files(tmp_path)
    result = compare_files(a, a, labels, bootstrap=100)
    for table in (result.table, result.macro):
        defined = table.dropna(subset=["delta"])
        assert (defined["delta"] == 0).all() and (defined["low"] == 0).all() and (defined["high"] == 0).all()
        assert (defined["p"] == 1.0).all() and not defined["distinguishable"].any()
    assert result.bootstrap["unit"] == "patient" and result.bootstrap["clusters"] == 80


def test_a_clearly_better_file_is_distinguishable(tmp_path: Path) -> None:
    a, b, labels = _files(tmp_path)
    result = compare_files(a, b, labels, bootstrap=200)
    macro = result.macro.set_index("figure")
    assert macro.loc["mAP", "delta"] > 0 and macro.loc["mAP", "distinguishable"]
    assert macro.loc["mAP", "low"] > 0 and macro.loc["mAP", "p"] < 0.01
    ap = sorted_deltas(result, "ap")
    assert list(ap["delta"]) == sorted(ap["delta"], reverse=True)
    assert result.name_a.endswith("a.csv") and result.name_b.endswith("b.csv")


def test_compare_cli(tmp_path: Path, capsys) -> None:
    a, b, labels = _files(tmp_path)
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--labels", str(labels), "--bootstrap", "50", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"A = {a}" in text and f"B = {b}" in text and "mAP" in text and "resamples of patients" in text
    assert out.is_file()
    assert main(["compare", str(a), str(tmp_path / "missing.csv"), "--labels", str(labels)]) == 1
    assert "error:" in capsys.readouterr().err


def test_without_patients_whole_studies_are_resampled(tmp_path: Path) -> None:
    a, _, labels = _files(tmp_path)
    frame = pd.read_csv(labels)
    frame.rename(columns={"PatientID": "StudyID"}).to_csv(labels, index=False)  # 3 images per study
    result = compare_files(a, a, labels, bootstrap=20)
    assert result.bootstrap["unit"] == "study" and result.bootstrap["clusters"] == 80
    assert any("whole studies" in note for note in result.notes)
    frame.drop(columns=["PatientID"]).to_csv(labels, index=False)
    assert compare_files(a, a, labels, bootstrap=20).bootstrap["unit"] == "image"


def test_buckets_from_training_labels_get_paired_rows(tmp_path: Path) -> None:
    """Training prevalences 30 % / 5 % / 0.5 % put Mass in head, Nodule in medium, Hernia in tail. B differs from A
    only in Hernia's column (B is a's file with Hernia taken from b): head and medium deltas are exactly 0 on every
    resample; the tail delta is Hernia's AP difference, with the same interval as Hernia's per-class row."""
    a, b, labels = _files(tmp_path)
    train = pd.DataFrame(np.zeros((200, 3), int), columns=CLASSES)
    train.loc[:59, "Mass"], train.loc[:9, "Nodule"], train.loc[:0, "Hernia"] = 1, 1, 1
    train.insert(0, "ImageID", [f"t{i}.png" for i in range(200)])
    train.to_csv(tmp_path / "train.csv", index=False)
    mixed = pd.read_csv(a)
    mixed["Hernia"] = pd.read_csv(b)["Hernia"]
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    result = compare_files(a, tmp_path / "mixed.csv", labels, tmp_path / "train.csv", bootstrap=100)
    macro = result.macro.set_index("figure")
    for bucket in ("head", "medium"):
        assert macro.loc[f"{bucket} mAP", ["delta", "low", "high"]].tolist() == [0.0, 0.0, 0.0]
    hernia = result.table[(result.table["class"] == "Hernia") & (result.table["figure"] == "ap")].iloc[0]
    tail = macro.loc["tail mAP"]
    assert tail["delta"] == hernia["delta"] > 0 and (tail["low"], tail["high"]) == (hernia["low"], hernia["high"])
    assert "tail mAP" in format_comparison(result)
