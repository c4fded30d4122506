"""The saved recipes leaderboard read back as the Results page's table."""

from __future__ import annotations

import json

import pytest

from cxrlt_core.recipes_leaderboard import leaderboard_path, leaderboard_table


def _row(name: str, m: float) -> dict:
    figure = {"mean": m, "sd": 0.0, "ci": [m - 0.01, m + 0.02], "per_seed": [m], "n_classes": 2}
    return {"recipe": name, "mAP": {g: figure for g in ("all", "head", "medium", "tail")}, "mAUC": 0.7, "mECE": 0.1,
            "seeds": [0], "train_seconds": 12.0, "prevalence_baseline": 0.05}  # fmt: skip


def test_rows_sorted_by_map_with_intervals_and_the_baseline_last(tmp_path):
    path = leaderboard_path(tmp_path)
    path.parent.mkdir()
    path.write_text(json.dumps({"rows": [_row("a", 0.2), _row("b", 0.3)]}))
    table = leaderboard_table(path)
    assert table["recipe"].tolist() == ["b", "a", "prevalence baseline"]
    assert table.loc[0, "mAP 95% CI"] == "0.290–0.320" and table.loc[1, "tail mAP"] == pytest.approx(0.2)
    assert table.loc[2, "mAP"] == 0.05


def test_results_page_shows_the_leaderboard_of_a_workspace_without_predictions(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from cxrlt_core.paths import REPO_ROOT

    path = leaderboard_path(tmp_path / "demo")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"rows": [_row("demo_x", 0.2)]}))
    monkeypatch.setenv("CXRLT_WORKSPACE", str(tmp_path / "demo"))
    page = AppTest.from_file(str(REPO_ROOT / "pages" / "2_Results.py"), default_timeout=300)
    page.run()
    assert not page.exception
    assert [e.label for e in page.expander][0].startswith("Recipes on the demo data")
    assert page.dataframe[0].value["recipe"].tolist() == ["demo_x", "prevalence baseline"]
