"""Two processes under torchrun on CPU (gloo): the training loader shards each repeated epoch across ranks exactly
once, and a whole training run works under DDP (rank 0 writes the run, metrics gathered from both ranks)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cxrlt_core import runs
from cxrlt_core.paths import REPO_ROOT

# the tiny generated data set and recipe of test_training.py (tests/ is not a package)
_spec = importlib.util.spec_from_file_location("_tiny_training", Path(__file__).with_name("test_training.py"))
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
make_tiny_dataset, tiny_recipe = _tiny.make_tiny_dataset, _tiny.tiny_recipe

pytestmark = pytest.mark.slow

SHARD_CHECK = textwrap.dedent(
    """
    import json, sys
    from collections import Counter

    import torch.distributed as dist

    from cxrlt_core import distributed
    from cxrlt_core.config import load_recipe
    from cxrlt_core.training.data import build_datasets, build_train_loader, prepare_data

    info = distributed.init_distributed("cpu")
    assert info.world_size == 2 and info.backend == "gloo"
    recipe = load_recipe(sys.argv[1])
    data = prepare_data(recipe.data)
    train_set, _ = build_datasets(data, recipe, None, None)
    loader, sampler = build_train_loader(train_set, recipe, info.rank, info.world_size, pin_memory=False)
    result = {}
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        seen = [i for batch in loader for i in batch.indices.tolist()]
        shards = distributed.all_gather_object(seen)
        expected = Counter(sampler.epoch_indices(epoch).tolist())
        union = Counter(i for shard in shards for i in shard)
        result[epoch] = {
            "lengths": [len(s) for s in shards],
            "missing": sum((expected - union).values()),
            "extra": sum((union - expected).values()),
            "epoch_size": sum(expected.values()),
            "batches": len(loader),
            "repeated": sum(1 for n in expected.values() if n > 1),
        }
    if info.is_main:
        with open(sys.argv[2], "w") as handle:
            json.dump(result, handle)
    distributed.cleanup_distributed()
    """
)


def _torchrun(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_see_each_repeated_index_once(tmp_path: Path):
    data = make_tiny_dataset(tmp_path / "data", n=30)
    recipe = tiny_recipe(data, batch_size=3, max_steps_per_epoch=None)
    recipe.sampler.T = 2.0  # f_c of 0.25-0.45: images are repeated 2-3 times
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(recipe.to_yaml())
    script = tmp_path / "shard_check.py"
    script.write_text(SHARD_CHECK)
    out = tmp_path / "result.json"
    done = _torchrun([str(script), str(recipe_path), str(out)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    for epoch in ("0", "1"):
        r = result[epoch]
        assert r["repeated"] > 0, "the tiny set must exercise repeats"
        assert r["lengths"][0] == r["lengths"][1], "both ranks take the same number of samples"
        assert r["missing"] == 0, "every repeated index of the epoch was served"
        # whole batches on both ranks: only the padding (fewer than ranks x batch size samples) repeats
        assert r["lengths"][0] == r["batches"] * 3
        assert r["extra"] == sum(r["lengths"]) - r["epoch_size"] < 2 * 3


def test_torchrun_training_run(tmp_path: Path):
    data = make_tiny_dataset(tmp_path / "data")
    recipe = tiny_recipe(data, phase2={"epochs": 1, "warmup_epochs": 0}, sync_bn=True)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(recipe.to_yaml())
    ws = tmp_path / "ws"
    args = ["-m", "cxrlt_core.training", "--config", str(recipe_path), "--workspace", str(ws), "--run-name", "ddp"]
    done = _torchrun([*args, "--no-progress"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = ws / "runs" / "ddp"
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["world_size"] == 2
    records = runs.read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2]
    # validation gathers both ranks' halves: every validation image is scored once
    from cxrlt_core.config import load_recipe
    from cxrlt_core.training.data import prepare_data

    n_val = len(prepare_data(load_recipe(recipe_path).data).val)
    assert all(r["val"]["n_images"] == n_val for r in records)
    assert (run_dir / "checkpoints" / "best.safetensors").exists()
    log = (run_dir / "train.log").read_text()
    assert "x 2 ranks" in log and "sync_bn needs CUDA" in log


def test_nproc_launches_torchrun_and_resumes(tmp_path: Path):
    """``--nproc 2`` creates the run, starts torchrun on it; ``--resume --nproc 2`` continues it."""
    data = make_tiny_dataset(tmp_path / "data")
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(tiny_recipe(data, phase2={"epochs": 0}, max_val_batches=1).to_yaml())
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "cxrlt_core.training", "--workspace", str(ws), "--run-name", "np", "--no-progress"]
    first = subprocess.run(
        [*base, "--config", str(recipe_path), "--nproc", "2"], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = ws / "runs" / "np"
    assert runs.read_status(run_dir)["world_size"] == 2 and len(runs.read_metrics(run_dir)) == 1
    more = [*base, "--resume", "--nproc", "2", "optim.phase2.epochs=1", "optim.phase2.warmup_epochs=0"]
    second = subprocess.run(more, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [r["epoch"] for r in runs.read_metrics(run_dir)] == [1, 2]
    assert runs.read_status(run_dir)["state"] == "finished"
