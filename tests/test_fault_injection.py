"""Fault injection (no root needed): ``kill -9`` at seeded random points of ``cxrlt train``, ``cxrlt predict``, the
embedding cache of ``cxrlt zeroshot predict`` and the demo build; after each, no process of the killed command is
left, and a rerun completes with the outputs of an undisturbed run.

Full and read-only disks are in ``test_os_errors.py`` (``RLIMIT_FSIZE`` in a child, ``/dev/full``, EROFS shims),
corrupt caches in ``test_cache_corruption.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cxrlt_core import runs
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.predictions import read_predictions
from tests.hostile_world import leftovers, predict_args, world  # noqa: F401
from tests.test_bad_input import tiny_clip
from tests.test_resume_equal import _recipe
from tests.test_training import make_tiny_dataset

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
SEED = 13


def start(argv: list[object], cwd: Path) -> subprocess.Popen:
    """``cxrlt ARGV`` in its own process group (so that every process it starts can be found afterwards)."""
    command = [sys.executable, "-m", "cxrlt_core.cli", *map(str, argv)]
    return subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_to_end(argv: list[object], cwd: Path, timeout_s: float = 600) -> float:
    """Run to completion (exit 0); returns the seconds it took."""
    began = time.monotonic()
    process = start(argv, cwd)
    output = process.communicate(timeout=timeout_s)[0]
    assert process.returncode == 0, output[-3000:]
    return time.monotonic() - began


def kill_at(argv: list[object], cwd: Path, delay_s: float) -> None:
    """Start, ``kill -9`` the command after ``delay_s`` seconds, then check that none of its processes is left."""
    process = start(argv, cwd)
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30  # loader workers notice a dead parent within seconds
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = group_alive(process.pid)
    if left:
        os.killpg(process.pid, signal.SIGKILL)
    assert not left, "a process of the killed command outlived it"


def kill_points(duration_s: float, n: int, salt: int) -> list[float]:
    """``n`` seeded kill times spread over the middle of a run of ``duration_s`` seconds."""
    rng = random.Random(SEED * 1000 + salt)
    return sorted(rng.uniform(0.15 * duration_s, 0.9 * duration_s) for _ in range(n))


# ------------------------------------------------------------------------------------------------------------ train
def test_kill_train_then_resume_equals_undisturbed(tmp_path: Path):
    data = make_tiny_dataset(tmp_path / "data", n=20, size=48)
    recipe = _recipe(data, 1, tmp_path / "recipe.yaml")  # one forked loader worker, to be left behind if it could
    ws = tmp_path / "ws"
    duration = run_to_end(
        ["train", "--config", recipe, "--workspace", ws, "--run-name", "calm", "--no-progress"], tmp_path
    )
    reference = load_file(str(runs.checkpoint_path(ws / "runs" / "calm", "last")))
    for i, delay in enumerate(kill_points(duration, 3, salt=1)):
        name = f"killed{i}"
        kill_at(["train", "--config", recipe, "--workspace", ws, "--run-name", name, "--no-progress"], tmp_path, delay)
        run_dir = ws / "runs" / name
        if (run_dir / runs.CONFIG_FILE).exists():
            again = ["train", "--workspace", ws, "--run-name", name, "--resume", "--no-progress"]
        else:  # killed before the run folder was made: start it again
            again = ["train", "--config", recipe, "--workspace", ws, "--run-name", name, "--no-progress"]
        run_to_end(again, tmp_path)
        assert runs.read_status(run_dir)["state"] == "finished"
        final = load_file(str(runs.checkpoint_path(run_dir, "last")))
        assert all(torch.equal(final[k], reference[k]) for k in reference), f"kill at {delay:.1f} s"
        assert [r["train_loss"] for r in runs.read_metrics(run_dir)] == [
            r["train_loss"] for r in runs.read_metrics(ws / "runs" / "calm")
        ]
        assert leftovers(run_dir) == []


# ---------------------------------------------------------------------------------------------------------- predict
def test_kill_predict_then_rerun_equals_undisturbed(world: dict[str, Path], tmp_path: Path):  # noqa: F811
    csv = world["data"] / "val.csv"
    calm = tmp_path / "calm.parquet"
    duration = run_to_end(predict_args(world, csv, calm, "--tta", "flip"), tmp_path)
    reference = read_predictions(calm)
    out = tmp_path / "pred.parquet"
    for delay in kill_points(duration, 3, salt=2):
        kill_at(predict_args(world, csv, out, "--tta", "flip", "--num-workers", 1), tmp_path, delay)
        run_to_end(predict_args(world, csv, out, "--tta", "flip"), tmp_path)
        again = read_predictions(out)
        assert list(again.ids) == list(reference.ids)
        np.testing.assert_array_equal(again.scores, reference.scores)
        assert leftovers(tmp_path) == []  # the killed run's temporaries were removed by the rerun
        out.unlink()


# ------------------------------------------------------------------------------------------------ embedding cache
def test_kill_zeroshot_caching_then_rerun_equals_undisturbed(world: dict[str, Path], tmp_path: Path):  # noqa: F811
    model = tiny_clip(tmp_path)
    base = ["zeroshot", "predict", "--model", model, "--labels", world["data"] / "val.csv", "--images", world["images"]]
    calm = tmp_path / "calm.csv"
    duration = run_to_end([*base, "--out", calm, "--cache", tmp_path / "calm_cache"], tmp_path)
    reference = read_predictions(calm)
    cache = tmp_path / "cache"
    for i, delay in enumerate(kill_points(duration, 3, salt=3)):
        out = tmp_path / f"z{i}.csv"
        kill_at([*base, "--out", out, "--cache", cache], tmp_path, delay)
        run_to_end([*base, "--out", out, "--cache", cache], tmp_path)
        again = read_predictions(out)
        assert list(again.ids) == list(reference.ids)
        np.testing.assert_allclose(again.scores, reference.scores, rtol=0, atol=1e-6)
    assert leftovers(cache) == []


# ------------------------------------------------------------------------------------------------------- demo build
def test_kill_demo_build_then_rebuild_completes(tmp_path: Path):
    from cxrlt_core.demo_workspace import RUNS, is_complete
    from cxrlt_core.workspace import Workspace

    calm = tmp_path / "calm"
    duration = run_to_end(["demo", "--workspace", calm, "--profile", "tiny"], tmp_path, timeout_s=1200)
    for i, delay in enumerate(kill_points(duration, 2, salt=4)):
        ws = tmp_path / f"ws{i}"
        kill_at(["demo", "--workspace", ws, "--profile", "tiny"], tmp_path, delay)  # its trainers end with it
        run_to_end(["demo", "--workspace", ws, "--profile", "tiny"], tmp_path, timeout_s=1200)
        assert is_complete(Workspace.open(ws))
        for name in ("train.csv", "val.csv", "test.csv", "test_labels.csv"):
            data = Path("datasets") / "demo" / name
            assert (ws / data).read_bytes() == (calm / data).read_bytes()
        for run in RUNS:
            assert runs.read_status(ws / "runs" / run)["state"] == "finished"
            assert len(runs.read_metrics(ws / "runs" / run)) == len(runs.read_metrics(calm / "runs" / run))
        assert leftovers(ws) == []
