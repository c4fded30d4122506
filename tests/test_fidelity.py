"""Fidelity profiles: named choices, recipes, per-epoch learning rates and the patient split, by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrlt_core.config import load_recipe
from cxrlt_core.data.splits import patient_shuffle_split
from cxrlt_core.errors import InputError
from cxrlt_core.fidelity import PROFILES, resolve_profile
from cxrlt_core.training.schedule import EpochWarmupCosineSchedule, WarmupCosineSchedule

REPO = Path(__file__).resolve().parents[1]


def test_profiles_and_overrides():
    code = resolve_profile("winning_code")
    assert (code.interpolation, code.rounding, code.tta_geometry) == ("linear", "truncate", "winning_code")
    assert (code.lr_step, code.head_init, code.val_split) == ("epoch", "winning_code", "patients")
    mixed = resolve_profile("winning_code", {"rounding": "rint", "lr_step": None})
    assert mixed.rounding == "rint" and mixed.lr_step == "epoch"
    assert mixed.differs_from(PROFILES.get("winning_code")) == ["rounding"]
    assert len(PROFILES.get("cxrlt").differs_from(code)) == 6
    with pytest.raises(InputError, match="profile.rounding"):
        resolve_profile("cxrlt", {"rounding": "ceil"})
    with pytest.raises(InputError, match="unknown fidelity profile"):
        resolve_profile("paper_v2")


@pytest.mark.parametrize("name", ["cxrlt2026_csra_dbcas", "cxrlt2026_mlp_asl"])
def test_reproduction_recipes_default_to_the_winning_code_profile(name):
    recipe = load_recipe(REPO / "train_jobs" / f"{name}.yaml")
    assert recipe.profile.resolve() == PROFILES.get("winning_code")
    other = load_recipe(REPO / "train_jobs" / f"{name}.yaml", ["profile.name=cxrlt", "profile.rounding=truncate"])
    assert other.profile.resolve().rounding == "truncate" and other.profile.resolve().tta_geometry == "cxrlt"
    with pytest.raises(InputError, match="profile"):
        load_recipe(REPO / "train_jobs" / f"{name}.yaml", ["profile.lr_step=hourly"])


def _optimizer(peak: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)


def test_per_epoch_learning_rates_by_hand():
    opt = _optimizer()
    schedule = EpochWarmupCosineSchedule(opt, epochs=10, warmup_epochs=2, floor=0.01)
    # epoch 0, 1: (e + 1) / 2; epoch e >= 2: max(0.01, (1 + cos(pi (e - 2) / 8)) / 2)
    expected = [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 8)), 0.5 * (1 + math.cos(math.pi / 4))]
    expected += [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(3, 8)]
    assert expected[3] == pytest.approx(0.961940, abs=1e-6) and expected[9] == pytest.approx(0.038060, abs=1e-6)
    seen = []
    for epoch in range(10):
        schedule.start_epoch(epoch)
        for _ in range(3):  # steps within an epoch do not move the rate
            seen.append(opt.param_groups[0]["lr"])
            schedule.step()
    assert seen[::3] == pytest.approx(expected) and seen[1::3] == pytest.approx(expected)
    # the per-step schedule over the same 10 epochs of 3 steps has a different rate within epoch 3
    step_opt = _optimizer()
    per_step = WarmupCosineSchedule(step_opt, total_steps=30, warmup_steps=6)
    rates = []
    for _ in range(30):
        rates.append(step_opt.param_groups[0]["lr"])
        per_step.step()
    assert rates[10] == pytest.approx(0.5 * (1 + math.cos(math.pi / 6))) != pytest.approx(seen[10])
    # resuming restores the epoch
    again = EpochWarmupCosineSchedule(_optimizer(), epochs=10, warmup_epochs=2)
    again.load_state_dict(schedule.state_dict())
    assert again.epoch == 9 and again.optimizer.param_groups[0]["lr"] == pytest.approx(expected[9])


def test_patient_shuffle_split_takes_ten_percent_of_patients_as_group_shuffle_split():
    rng = np.random.default_rng(0)
    patients = [f"P{p:02d}" for p in rng.integers(0, 20, size=90)]
    patients += [f"P{p:02d}" for p in range(20)]  # every one of the 20 patients has an image
    ids = [f"img{i}" for i in range(len(patients))]
    train, val = patient_shuffle_split((ids, patients), 0.1, seed=42)
    # GroupShuffleSplit(test_size=0.1, random_state=42): ceil(0.1 * 20) = 2 patients, the first two of
    # RandomState(42).permutation(20) over the sorted patient ids
    order = np.random.RandomState(42).permutation(20)[:2]
    chosen = {sorted(set(patients))[i] for i in order}
    assert {patients[i] for i in val} == chosen
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(ids)))
    assert not {patients[i] for i in train} & chosen
    # blank patients are their own groups
    train2, val2 = patient_shuffle_split((["a", "b", "c"], ["X", None, ""]), 0.5, seed=0)
    assert len(train2) + len(val2) == 3
    with pytest.raises(InputError, match="fewer than two"):
        patient_shuffle_split((["a", "b"], ["X", "X"]), 0.1)
