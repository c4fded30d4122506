"""benchmarks/ablation_demo.py: the cells it trains, their recipes, the bucket means, and one tiny end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from cxrlt_core.config import load_recipe
from cxrlt_core.paths import REPO_ROOT


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation_demo", REPO_ROOT / "benchmarks" / "ablation_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablation_demo"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("ablation_demo", None)


def _args(ablation, *argv):
    import argparse

    ns = argparse.Namespace(design="factorial", losses=["bce", "asl", "db"], samplers=[True, False],
                            heads=["mlp", "csra"])  # fmt: skip
    for key, value in zip(argv[::2], argv[1::2]):
        setattr(ns, key, value)
    return ns


def test_factorial_design_has_every_combination_once(ablation):
    cells = ablation.cells_for(_args(ablation))
    assert len(cells) == 12 == len({c.name for c in cells})


def test_axes_design_changes_one_factor_of_the_demo_recipe(ablation):
    cells = ablation.cells_for(_args(ablation, "design", "axes"))
    base = ablation.Cell(*ablation.BASE)
    assert cells[0] == base and len(cells) == 5
    for cell in cells[1:]:
        changed = [cell.loss != base.loss, cell.sampler != base.sampler, cell.head != base.head]
        assert sum(changed) == 1, cell


def test_every_cell_loads_as_a_recipe_with_only_its_factors_changed(ablation):
    base = load_recipe(ablation.RECIPE)
    for cell in ablation.cells_for(_args(ablation)):
        recipe = load_recipe(ablation.RECIPE, cell.overrides(seed=2))
        assert (recipe.model.head, recipe.loss.name, recipe.sampler.enabled) == (cell.head, cell.loss, cell.sampler)
        assert recipe.loss.params == ablation.LOSS_PARAMS[cell.loss]
        assert recipe.optim.seed == 2
        assert recipe.data == base.data and recipe.model.backbone == base.model.backbone
        assert recipe.optim.phase2 == base.optim.phase2 and recipe.optim.ema == base.optim.ema


@pytest.mark.slow
def test_two_seed_run_on_the_tiny_workspace_summarises(tiny_workspace, tmp_path, monkeypatch, capsys, ablation):
    out = tmp_path / "abl"
    argv = ["ablation_demo.py", "--workspace", str(tiny_workspace.root), "--out-dir", str(out), "--losses", "db",
            "--heads", "csra", "--samplers", "on", "--seeds", "0", "1", "--bootstrap", "20", "--quiet",
            "--json-out", str(tmp_path / "abl.json"), "--override", "data.image_size=64", "optim.phase2.epochs=1",
            "optim.max_steps_per_epoch=1", "optim.batch_size=8", "optim.num_workers=0"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert ablation.main() == 0
    summary = json.loads((tmp_path / "abl.json").read_text())["cells"][0]
    assert summary["cell"] == "csra-db-rfs" and summary["seeds"] == [0, 1]
    overall = summary["mAP"]["all"]
    assert len(overall["per_seed"]) == 2 and summary["head"] == "csra"
    lo, hi = overall["ci"]
    assert 0.0 <= lo <= hi <= 1.0
    assert overall["mean"] == pytest.approx(np.mean(overall["per_seed"]))
    assert set(summary["mAP"]) == {"all", "head", "medium", "tail"}
    assert "| CSRA | DB | repeat-factor |" in capsys.readouterr().out
    # A second call reuses the finished seeds (no retraining): the result files are untouched.
    stamp = (out / "csra-db-rfs" / "seed0" / "result.json").stat().st_mtime_ns
    assert ablation.main() == 0
    assert (out / "csra-db-rfs" / "seed0" / "result.json").stat().st_mtime_ns == stamp
