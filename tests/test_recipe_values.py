"""Recipe values: NaN / infinite numbers and mistyped head or loss parameters are one error line at load, naming the
key; nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlt_core.cli import main
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT

RECIPE = REPO_ROOT / "train_jobs" / "demo_csra.yaml"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.phase1.lr=nan", "optim.phase1.lr must be a finite number, got 'nan'"),
        ("optim.phase2.head_lr=inf", "optim.phase2.head_lr must be a finite number, got 'inf'"),
        ("optim.phase2.backbone_lr=-.inf", "optim.phase2.backbone_lr must be"),
        ("optim.phase1.wd=.nan", "optim.phase1.wd must be a finite number"),
        ("optim.ema.decay=.inf", "optim.ema.decay must be a finite number"),
        ("model.head_params.lam=abc", "model.head_params.lam must be a number, got 'abc'"),
        ("model.head_params.lam=nan", "model.head_params.lam must be a finite number"),
        ("loss.params.nonexistent=1", "loss.params.nonexistent:"),
    ],
)
def test_bad_recipe_values_are_one_error_line(tmp_path: Path, capsys, override: str, message: str):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_recipe(RECIPE, [override])
    workspace = tmp_path / "ws"
    workspace.mkdir()
    code = main(["train", "--config", str(RECIPE), override, "--workspace", str(workspace), "--run-name", "r"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert list(workspace.rglob("*")) == []  # no run folder, nothing written


def test_finite_values_still_load():
    recipe = load_recipe(RECIPE, ["optim.phase1.lr=1e-3", "optim.phase2.head_lr=2", "model.head_params.lam=0.2"])
    assert recipe.optim.phase1.lr == 1e-3 and recipe.optim.phase2.head_lr == 2.0
