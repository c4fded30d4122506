"""Label maps: drop, rename and merge, by hand; registered maps name real classes; the evaluate CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.cli import main
from cxrlt_core.errors import InputError
from cxrlt_core.label_maps import LABEL_MAPS, LabelMap, load_label_map
from cxrlt_core.labels import NIH14

MAP = LabelMap("toy", "cxrlt2024", "cxrlt2026",
               {"pleural effusion": ("Pleural Effusion",), "fracture": ("Fracture", "Rib Fracture")})  # fmt: skip
SOURCE = ["Pleural Effusion", "Fracture", "Rib Fracture", "Pneumonia"]


def test_drop_rename_merge_scores() -> None:
    scores = np.array([[0.1, 0.2, 0.7, 0.9], [0.8, 0.5, 0.3, 0.0]])
    mapped, names = MAP.apply(scores, SOURCE)
    assert names == ["pleural effusion", "fracture"]  # Pneumonia dropped
    np.testing.assert_array_equal(mapped, [[0.1, 0.7], [0.8, 0.5]])  # renamed as is; merged = max of members
    assert MAP.dropped(SOURCE) == ["Pneumonia"]


def test_merged_labels_any_positive_all_negative_else_unknown() -> None:
    nan = np.nan
    labels = np.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, nan, 0, 0], [nan, nan, 1, 0]])
    mapped, _ = MAP.apply(labels, SOURCE, kind="labels")
    np.testing.assert_array_equal(mapped, [[0, 1], [1, 0], [0, nan], [nan, 1]])


def test_registered_maps_name_real_classes() -> None:
    for name in LABEL_MAPS.names():
        label_map = load_label_map(name)  # checks both spaces
        assert label_map.entries
    nih = load_label_map("nih14_to_cxrlt2026")
    assert nih.entries["pleural effusion"] == ("Effusion",) and nih.entries["Normal"] == ("No Finding",)
    assert "Pneumonia" in nih.dropped(list(NIH14))
    assert load_label_map("cxrlt2024_to_cxrlt2026").entries["fracture"] == ("Fracture", "Rib Fracture",
                                                                           "Clavicle Fracture")  # fmt: skip


def test_bad_maps(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="feeds both"):
        LabelMap("bad", "nih14", "cxrlt2026", {"Mass": ("Mass",), "Nodule": ("Mass",)})
    path = tmp_path / "m.yaml"
    path.write_text("source: nih14\ntarget: cxrlt2026\nmap:\n  Mass: [Masses]\n")
    with pytest.raises(InputError, match="not classes of 'nih14'"):
        load_label_map(path)
    with pytest.raises(InputError, match="unknown label map"):
        load_label_map("nih_to_mars")


def test_evaluate_an_nih_model_on_cxrlt2026_labels(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    n = 60
    ids = [f"i{k}.png" for k in range(n)]
    effusion = (rng.random(n) < 0.3).astype(int)
    labels = pd.DataFrame({"ImageID": ids, "pleural effusion": effusion, "Mass": (rng.random(n) < 0.2).astype(int)})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    pred = pd.DataFrame({"ImageID": ids, "Effusion": np.clip(0.5 * effusion + 0.5 * rng.random(n), 0, 1),
                         "Mass": rng.random(n), "Pneumonia": rng.random(n)})  # fmt: skip
    pred.to_csv(tmp_path / "pred.csv", index=False)
    args = ["evaluate", "--pred", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
            "--label-space", "cxrlt2026", "--label-map", "nih14_to_cxrlt2026"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "applied to predictions" in captured.err and "pleural effusion" in captured.out
    assert main(args[:-2]) == 1  # without the map, NIH columns are not cxrlt2026 classes
