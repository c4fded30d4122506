"""Runs side by side (cxrlt_core.runs_compare, ``cxrlt runs list/diff``) on hand-made run folders with known figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrlt_core import runs
from cxrlt_core.cli import main
from cxrlt_core.config import Recipe
from cxrlt_core.predictions import write_predictions
from cxrlt_core.runs_compare import (
    best_test_figures,
    curves_frame,
    find_labels,
    load_run,
    recipe_diff,
    summary_frame,
)

CLASSES = ["Alpha", "Beta"]


def _record(epoch: int, loss: float, val_map: float, head: float, best: bool) -> dict:
    return {"epoch": epoch, "phase": 1, "train_loss": loss, "lr": [1e-3], "best": best,
            "val": {"mAP": val_map, "buckets": {"head": head, "medium": None}, "per_class_ap": {}}}  # fmt: skip


def _make_run(ws: Path, name: str, lr: float, data: Path, with_predictions: bool) -> Path:
    run_dir = runs.create_run(ws, name)
    recipe = Recipe.from_dict({"name": "toy", "data": {"train_csv": str(data / "train.csv")},
                               "optim": {"phase1": {"lr": lr}}})  # fmt: skip
    (run_dir / runs.CONFIG_FILE).write_text(recipe.to_yaml())
    runs.write_status(run_dir, "finished", epochs=2)
    runs.append_metrics(run_dir, _record(1, 0.7, 0.4, 0.5, True))
    runs.append_metrics(run_dir, _record(2, 0.6, 0.3, 0.45, False))
    if with_predictions:
        best = runs.checkpoint_path(run_dir, "best")
        best.write_bytes(b"weights")
        scores = np.array([[0.9, 0.2], [0.8, 0.6], [0.7, 0.3], [0.1, 0.4]])
        meta = {"models": [{"checkpoint": str(best)}], "images": {"manifest": str(data / "test.csv")}}
        write_predictions(run_dir / "predictions" / "test.parquet", ["a", "b", "c", "d"], scores, CLASSES, meta)
    return run_dir


@pytest.fixture()
def two_runs(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_text("ImageID\na\nb\nc\nd\n")
    (data / "test_labels.csv").write_text("ImageID,Alpha,Beta\na,1,0\nb,0,1\nc,1,0\nd,0,1\n")
    # training prevalence: Alpha 10/20 (head, > 10 %), Beta 1/20 (medium, 1-10 %)
    rows = [f"t{i},{int(i < 10)},{int(i == 0)}" for i in range(20)]
    (data / "train.csv").write_text("ImageID,Alpha,Beta\n" + "\n".join(rows) + "\n")
    ws = tmp_path / "ws"
    _make_run(ws, "run_a", 1e-3, data, with_predictions=True)
    _make_run(ws, "run_b", 3e-3, data, with_predictions=False)
    return ws


def test_recipe_diff_shows_only_the_differing_key(two_runs: Path):
    a, b = load_run(two_runs, "run_a"), load_run(two_runs, "run_b")
    diff = recipe_diff({a.name: a.recipe, b.name: b.recipe})
    assert list(diff.index) == ["optim.phase1.lr"]
    assert diff.loc["optim.phase1.lr"].tolist() == ["0.001", "0.003"]
    assert recipe_diff({"x": {"a": {"b": 1}}, "y": {"a": {"b": 1}, "c": 2}}).to_dict("index") == {
        "c": {"x": "(absent)", "y": "2"}
    }


def test_curves_and_summary(two_runs: Path):
    records = [load_run(two_runs, "run_a"), load_run(two_runs, "run_b")]
    curves = curves_frame(records)
    val = curves[(curves.run == "run_a") & (curves.metric == "val/mAP")]
    assert val.epoch.tolist() == [1, 2] and val.value.tolist() == [0.4, 0.3]
    assert curves[curves.metric == "val/mAP_head"].value.tolist() == [0.5, 0.45, 0.5, 0.45]
    assert "val/mAP_medium" not in set(curves.metric)  # None is not a point
    summary = summary_frame(records).set_index("run")
    assert summary.loc["run_a", "best_epoch"] == 1 and summary.loc["run_a", "val_mAP"] == 0.4
    assert summary.loc["run_b", "state"] == "finished" and summary.loc["run_b", "epochs"] == "2/2"


def test_best_test_figures_known_values(two_runs: Path):
    figures = best_test_figures(load_run(two_runs, "run_a"))
    # Alpha: positives ranked 1st and 3rd -> AP (1 + 2/3) / 2; Beta: positives ranked 1st and 2nd -> AP 1
    assert figures["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert figures["mAP_head"] == pytest.approx(5 / 6) and figures["mAP_medium"] == pytest.approx(1.0)
    assert figures["n_images"] == 4 and figures["labels"].endswith("test_labels.csv")
    assert "no test predictions" in best_test_figures(load_run(two_runs, "run_b"))["note"]


def test_find_labels(tmp_path: Path):
    (tmp_path / "ids.csv").write_text("ImageID\na\n")
    (tmp_path / "full.csv").write_text("ImageID,Alpha\na,1\n")
    assert find_labels(tmp_path / "ids.csv") is None
    assert find_labels(tmp_path / "full.csv") == tmp_path / "full.csv"
    (tmp_path / "ids_labels.csv").write_text("ImageID,Alpha\na,1\n")
    assert find_labels(tmp_path / "ids.csv") == tmp_path / "ids_labels.csv"


def test_cli_list_and_diff(two_runs: Path, capsys: pytest.CaptureFixture):
    assert main(["runs", "list", "--workspace", str(two_runs)]) == 0
    out = capsys.readouterr().out
    assert "run_a" in out and "run_b" in out and "0.4000" in out
    assert main(["runs", "diff", "run_a", "run_b", "--workspace", str(two_runs)]) == 0
    out = capsys.readouterr().out
    assert "recipe keys that differ (1)" in out and "optim.phase1.lr" in out
    assert f"{(5 / 6 + 1) / 2:.4f}" in out and "no test predictions" in out


def test_cli_diff_errors(two_runs: Path, capsys: pytest.CaptureFixture):
    assert main(["runs", "diff", "run_a", "nope", "--workspace", str(two_runs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and len(err.strip().splitlines()) == 1
    assert main(["runs", "diff", "run_a", "--workspace", str(two_runs)]) == 1
    assert "at least two runs" in capsys.readouterr().err
    assert main(["runs", "list", "--workspace", str(two_runs / "missing")]) == 1


def test_runs_page_overlays_curves_and_lists_differences(two_runs: Path, monkeypatch: pytest.MonkeyPatch):

    from streamlit.testing.v1 import AppTest

    from cxrlt_core.paths import REPO_ROOT

    monkeypatch.setenv("CXRLT_WORKSPACE", str(two_runs))
    monkeypatch.chdir(REPO_ROOT)
    app = AppTest.from_file(str(REPO_ROOT / "pages" / "7_Runs.py"), default_timeout=60)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    chart = app.get("plotly_chart")[0]
    figure = json.loads(chart.proto.spec)
    assert {trace["name"] for trace in figure["data"]} == {"run_a", "run_b"}
    diff = next(df.value for df in app.dataframe if "optim.phase1.lr" in df.value.index)
    assert list(diff.index) == ["optim.phase1.lr"]
    tests = app.dataframe[-1].value
    assert tests.set_index("run").loc["run_a", "mAP"] == pytest.approx((5 / 6 + 1) / 2)
    assert not any("tensorboard --logdir" in c.value for c in app.code)  # nothing was tracked
    (two_runs / "runs" / "run_a" / "tracking.json").write_text('{"tensorboard": {"log_dir": "tensorboard"}}')
    app.run()
    assert any(f"tensorboard --logdir {two_runs.resolve() / 'runs'}" in c.value for c in app.code)
