"""Training phases beyond the method's two: cRT (phase 3), SWA beside EMA, the loss epoch hook (LDAM-DRW)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrlt_core import runs
from cxrlt_core.config import Recipe
from cxrlt_core.data.balanced import ClassBalancedSampler, class_balanced_probabilities
from cxrlt_core.errors import InputError
from cxrlt_core.training import loop as loop_module
from tests.test_training import make_tiny_dataset, tiny_recipe


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny_phases"))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _checkpoint(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "checkpoints" / "last.safetensors"))


def test_class_balanced_probabilities_by_hand():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [np.nan, 1, 0]])
    # n = (2, 3, 0): two classes present; class first (1/2 each), then an image of it (1/n_c)
    expected = [1 / 4, 1 / 4 + 1 / 6, 1 / 6, 0.0, 1 / 6]
    assert class_balanced_probabilities(labels).tolist() == pytest.approx(expected)
    sampler = ClassBalancedSampler(labels, seed=3, batch_size=1)
    counts = sampler.repeats(0)
    assert counts.sum() == 5 and counts[3] == 0
    assert len(sampler.epoch_indices(0)) == 5 and not np.array_equal(sampler.repeats(0), sampler.repeats(7))
    with pytest.raises(InputError, match="positive"):
        class_balanced_probabilities(np.zeros((3, 2)))


@pytest.mark.slow
def test_crt_freezes_the_backbone_bit_for_bit_and_reinitialises_the_head(tiny_data, tmp_path, monkeypatch):
    from cxrlt_core.training import train

    seen: dict[str, object] = {}
    enter = loop_module.Trainer._enter_crt

    def spy(self, state):
        seen["head_before"] = _state(self.eval_model.head)
        enter(self, state)
        seen["backbone"] = _state(self.model.backbone)
        seen["head_after"] = _state(self.model.head)
        seen["sampler"] = self.sampler

    monkeypatch.setattr(loop_module.Trainer, "_enter_crt", spy)
    recipe = tiny_recipe(tiny_data, crt={"epochs": 2, "lr": 1e-2})
    run_dir = runs.create_run(tmp_path / "ws", "crt")
    result = train(recipe, run_dir, show_progress=False)
    assert result.state == "finished" and result.epochs_done == 4
    assert [r["phase"] for r in runs.read_metrics(run_dir)] == [1, 2, 3, 3]
    assert isinstance(seen["sampler"], ClassBalancedSampler)
    # the head starts again from a fresh initialisation ...
    assert any(not torch.equal(seen["head_before"][k], seen["head_after"][k]) for k in seen["head_after"])
    final = _checkpoint(run_dir)
    # ... and is trained, while every backbone tensor (weights and buffers) stays bit-identical
    assert any(not torch.equal(final[f"head.{k}"], v) for k, v in seen["head_after"].items())
    for key, value in seen["backbone"].items():
        assert torch.equal(final[f"backbone.{key}"], value), key


@pytest.mark.slow
def test_swa_averages_the_last_epochs_weights(tiny_data, tmp_path, monkeypatch):
    from cxrlt_core.training import train

    snapshots: list[dict[str, torch.Tensor]] = []
    average = loop_module.Trainer._average_weights

    def spy(self, epoch):
        if self.phase == 2 and epoch >= 2:
            snapshots.append(_state(self.model))
        average(self, epoch)

    monkeypatch.setattr(loop_module.Trainer, "_average_weights", spy)
    recipe = tiny_recipe(
        tiny_data,
        phase2={"epochs": 3, "backbone_lr": 1e-3, "head_lr": 1e-3, "warmup_epochs": 0},
        ema={"enabled": False},
        swa={"enabled": True, "epochs": 2},
    )
    run_dir = runs.create_run(tmp_path / "ws", "swa")
    assert train(recipe, run_dir, show_progress=False).state == "finished"
    assert len(snapshots) == 2
    final = _checkpoint(run_dir)
    for key, first in snapshots[0].items():
        if first.is_floating_point():
            expected = (first + snapshots[1][key]) / 2
            torch.testing.assert_close(final[key], expected, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(final[k], snapshots[1][k]) for k in snapshots[1] if snapshots[1][k].is_floating_point())


def test_swa_and_crt_settings_are_checked():
    base = {"data": {"train_csv": "x.csv"}}
    phase2 = {"epochs": 2, "warmup_epochs": 0}
    with pytest.raises(InputError, match="swa.epochs"):
        Recipe.from_dict({**base, "optim": {"phase2": phase2, "swa": {"enabled": True, "epochs": 3}}})
    with pytest.raises(InputError, match="crt"):
        Recipe.from_dict({**base, "optim": {"crt": {"epochs": -1}}})
    recipe = Recipe.from_dict({**base, "optim": {"phase1": {"epochs": 1}, "phase2": phase2, "crt": {"epochs": 3}}})
    assert recipe.total_epochs == 6


@pytest.mark.slow
def test_the_loop_tells_the_loss_each_epoch(tiny_data, tmp_path, monkeypatch):
    from cxrlt_core.losses import LDAMDRWLoss
    from cxrlt_core.training import train

    epochs: list[int] = []
    original = LDAMDRWLoss.set_epoch
    monkeypatch.setattr(LDAMDRWLoss, "set_epoch", lambda self, e: (epochs.append(e), original(self, e))[1])
    recipe = tiny_recipe(tiny_data)
    recipe.loss.name, recipe.loss.params = "ldam_drw", {"drw_epoch": 1}
    assert train(recipe, runs.create_run(tmp_path / "ws", "ldam"), show_progress=False).state == "finished"
    assert epochs == [0, 1]
