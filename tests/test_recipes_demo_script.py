"""benchmarks/recipes_demo.py: which runs it trains, and its scoring (perfect and calibrated predictions, table)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import numpy as np
import pytest

from cxrlt_core.data.demo.generate import generate_demo_dataset
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.predictions import write_predictions
from cxrlt_core.recipe_cards import find_card


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("recipes_demo", REPO_ROOT / "benchmarks" / "recipes_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["recipes_demo"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("recipes_demo", None)


def test_every_demo_twin_is_a_row_and_ensembles_train_each_member(bench):
    args = bench.parse_args(["--reference", "demo_csra"])
    names = [c.path.stem for c in bench.twins_and_references(args)]
    for twin in ("demo_chexfusion", "demo_cxrlt2024_team_f", "demo_cxrlt2024_team_a", "demo_cxrlt2026_3rd",
                 "demo_cxrlt2026_5th", "demo_csra"):  # fmt: skip
        assert twin in names
    assert "demo_stage1" not in names  # it trains on NIH images: not a row of the demo data's leaderboard
    assert bench.members_of(find_card("demo_cxrlt2024_team_a")) == [["data.image_size=64"], ["data.image_size=96"]]
    assert bench.members_of(find_card("demo_chexfusion")) == [[]]


def test_summary_of_perfect_and_calibrated_predictions(bench, tmp_path):
    data = generate_demo_dataset(
        tmp_path / "ws" / "datasets" / "demo", n_train=40, n_val=30, n_test=30, image_size=32, workers=1,
        progress=lambda d, t: None,
    )  # fmt: skip
    preds = {}
    trained = list(read_manifest(data / "train.csv", label_space="cxrlt2026").classes)  # a model's outputs
    for split in ("val", "test"):
        labels = read_manifest(data / f"{split}_labels.csv", label_space="cxrlt2026")
        columns = [list(labels.classes).index(c) for c in trained]
        perfect = np.nan_to_num(labels.labels[:, columns], nan=0.0) * 0.8 + 0.1  # right ranking, miscalibrated
        preds[split] = tmp_path / f"{split}.parquet"
        write_predictions(preds[split], labels.ids, perfect, trained)
    args = argparse.Namespace(workspace=tmp_path / "ws", bootstrap=20, seeds=[0])
    card = find_card("demo_cxrlt2026_5th")
    pred = {"test": str(preds["test"]), "val": str(preds["val"]), "calibration": "temperature"}
    summary = bench.summarise(card, [pred], [12.0], args)
    assert summary["mAP"]["all"]["mean"] == pytest.approx(1.0)  # calibration keeps the ranking
    uncalibrated = bench.summarise(card, [{**pred, "calibration": None}], [12.0], args)
    assert summary["mECE"] < uncalibrated["mECE"]
    test = read_manifest(data / "test_labels.csv", label_space="cxrlt2026")
    columns = [list(test.classes).index(c) for c in trained]
    expected = np.mean(np.nanmean(test.labels[:, columns], axis=0))
    assert summary["prevalence_baseline"] == pytest.approx(expected, abs=1e-9)
    table = bench.markdown([summary])
    assert "`demo_cxrlt2026_5th` | 1.000" in table and "prevalence baseline" in table
