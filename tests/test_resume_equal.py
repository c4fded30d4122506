"""A stopped and resumed run ends with exactly the weights and losses of an uninterrupted run with the same seed
(augmentation reseeded per epoch from (seed, epoch, worker); sampler seeded per epoch), with 0 and 1 loader workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cxrlt_core import runs
from cxrlt_core.data.augment import apply_augment
from cxrlt_core.data.dataset import CxrDataset
from cxrlt_core.data.images import Preprocess
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.paths import REPO_ROOT
from tests.test_training import make_tiny_dataset, tiny_recipe


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("resume_equal"), n=20, size=48)


def _recipe(data: Path, workers: int, path: Path) -> Path:
    recipe = tiny_recipe(
        data,
        num_workers=workers,
        threads=1,
        phase1={"epochs": 1, "lr": 1e-3},
        phase2={"epochs": 2, "backbone_lr": 1e-3, "head_lr": 1e-3, "warmup_epochs": 0},
    )
    path.write_text(recipe.to_yaml())
    return path


def _train(*args: object, cwd: Path) -> subprocess.Popen:
    """``cxrlt train ARGS`` in a fresh process (loader workers are forked from a process that trained nothing yet)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "cxrlt_core.cli", "train", *map(str, args), "--no-progress"]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _final(run_dir: Path) -> tuple[dict[str, torch.Tensor], list[float]]:
    weights = load_file(str(runs.checkpoint_path(run_dir, "last")))
    losses = [float(r["train_loss"]) for r in runs.read_metrics(run_dir)]
    return weights, losses


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(data: Path, tmp_path: Path, workers: int):
    recipe = _recipe(data, workers, tmp_path / "recipe.yaml")
    ws = tmp_path / "ws"
    straight = _train("--config", recipe, "--workspace", ws, "--run-name", "straight", cwd=tmp_path)
    assert straight.wait(600) == 0, straight.stdout.read()

    stopped = _train("--config", recipe, "--workspace", ws, "--run-name", "stopped", cwd=tmp_path)
    run_dir = ws / "runs" / "stopped"
    while stopped.poll() is None:  # two epochs done: ask it to stop inside the third
        if len(runs.read_metrics(run_dir)) >= 2:
            runs.request_stop(run_dir)
            break
        time.sleep(0.05)
    stopped.wait(600)  # a stopped run exits with its own status; the run's state is what counts
    assert runs.read_status(run_dir)["state"] == "stopped" and len(runs.read_metrics(run_dir)) == 2
    resumed = _train("--workspace", ws, "--run-name", "stopped", "--resume", cwd=tmp_path)
    assert resumed.wait(600) == 0, resumed.stdout.read()
    assert runs.read_status(run_dir)["state"] == "finished"

    (w1, l1), (w2, l2) = _final(ws / "runs" / "straight"), _final(run_dir)
    assert len(l1) == len(l2) == 3 and l1 == l2
    assert w1.keys() == w2.keys()
    for key in w1:
        assert torch.equal(w1[key], w2[key]), key


def test_augmentation_depends_on_seed_and_epoch_only(data: Path):
    """Epoch e's draws are the same whatever came before (what makes a resume exact), and differ between epochs."""
    manifest = read_manifest(data / "train.csv", data / "images")
    dataset = CxrDataset(manifest, Preprocess(48), train=True, seed=3)
    images = [dataset.read(i) for i in range(6)]

    def draws(epochs: list[int]) -> list[bytes]:
        out = []
        for epoch in epochs:
            dataset.set_epoch(epoch)
            dataset._reseed_for_epoch()
            out.append(b"".join(apply_augment(dataset.augment, image).tobytes() for image in images))
        return out

    direct = draws([2])[0]
    after_others = draws([0, 1, 2])[2]
    assert direct == after_others
    assert len(set(draws([0, 1, 2, 3]))) == 4
