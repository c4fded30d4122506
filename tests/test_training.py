"""The training loop end to end on a tiny generated data set: files of a run, checkpoints, stop, resume, errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cxrlt_core import runs
from cxrlt_core.config import Recipe, load_recipe
from cxrlt_core.data.dataset import CxrDataset, collate_batch
from cxrlt_core.data.images import Preprocess
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.training.schedule import WarmupCosineSchedule, warmup_cosine_factor

CLASSES = ("Normal", "Nodule", "Mass")


def make_tiny_dataset(root: Path, n: int = 24, size: int = 64, seed: int = 0) -> Path:
    """``n`` 16-bit PNG "radiographs" of ``size`` px (a bright disc = Nodule, a large square = Mass), 2 per patient,
    with ``train.csv`` (ImageID, PatientID + classes) in ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        nodule, mass = int(rng.random() < 0.4), int(rng.random() < 0.25)
        image = rng.normal(20000, 3000, (size, size)).clip(0, 65535)
        if nodule:
            cv2.circle(image, (int(rng.integers(12, size - 12)), int(rng.integers(12, size - 12))), 5, 60000, -1)
        if mass:
            image[8:30, 30:52] = 55000
        name = f"img{i:03d}.png"
        assert cv2.imwrite(str(images / name), image.astype(np.uint16))
        rows.append(f"{name},P{i // 2:03d},{int(not (nodule or mass))},{nodule},{mass}")
    (root / "train.csv").write_text("ImageID,PatientID," + ",".join(CLASSES) + "\n" + "\n".join(rows) + "\n")
    return root


def tiny_recipe(data: Path, **optim: object) -> Recipe:
    """convnextv2_atto at 64 px, 1 head-only epoch + 1 fine-tuning epoch of 2 steps each."""
    settings = {
        "phase1": {"epochs": 1, "lr": 1e-3},
        "phase2": {"epochs": 1, "backbone_lr": 1e-3, "head_lr": 1e-3, "warmup_epochs": 0},
        "batch_size": 4,
        "num_workers": 0,
        "max_steps_per_epoch": 2,
        "amp": "off",
        "channels_last": False,
        "ema": {"enabled": True, "decay": 0.9, "warmup": True},
        "seed": 0,
        "device": "cpu",
    }
    settings.update(optim)
    return Recipe.from_dict(
        {
            "name": "tiny",
            "description": "test",
            "data": {
                "train_csv": str(data / "train.csv"),
                "image_root": str(data / "images"),
                "val_fraction": 0.25,
                "image_size": 64,
                "cache_dir": str(data / "cache"),
            },
            "model": {"backbone": "convnextv2_atto", "head": "csra", "drop_path_rate": 0.0},
            "loss": {"name": "db", "params": {"variant": "code"}},
            "sampler": {"enabled": True, "T": 0.5, "frequency": "image_prevalence"},
            "optim": settings,
        }
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def test_schedule_warmup_then_cosine_with_floor():
    assert warmup_cosine_factor(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine_factor(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine_factor(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine_factor(55, 100, 10) == pytest.approx(0.5)  # half-way through the cosine
    assert warmup_cosine_factor(99, 100, 10, floor=0.01) == pytest.approx(0.01)
    assert warmup_cosine_factor(99, 100, 10, floor=0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": 2.0}])
    schedule = WarmupCosineSchedule(optimizer, total_steps=4, warmup_steps=2)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(3):
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1.0, 2.0, 2.0, 1.0])
    fresh = WarmupCosineSchedule(torch.optim.AdamW([{"params": [param], "lr": 2.0}]), 4, 2)
    fresh.load_state_dict(schedule.state_dict())
    assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(1.0)


def test_dataset_items_and_augmentation(tiny_data: Path):
    from cxrlt_core.data.manifest import read_manifest

    manifest = read_manifest(tiny_data / "train.csv", image_root=tiny_data / "images")
    preprocess = Preprocess(image_size=32)
    plain = CxrDataset(manifest, preprocess, train=False)
    image, target, index = plain[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    np.testing.assert_array_equal(target.numpy(), manifest.labels[3])
    assert index == 3
    # out[c] = (x / 255 - mean[c]) / std[c]: undoing it gives the same gray image, in 1/255 steps, in every channel
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    gray = (image * std[:, None, None] + mean[:, None, None]) * 255
    torch.testing.assert_close(gray, gray[:1].expand(3, -1, -1), atol=1e-3, rtol=0)
    torch.testing.assert_close(gray, gray.round(), atol=1e-3, rtol=0)
    augmented = CxrDataset(manifest, preprocess, train=True, seed=1)
    assert not all(torch.equal(augmented[3][0], image) for _ in range(5)), "train items are augmented"
    batch = collate_batch([plain[0], plain[1]])
    assert batch.images.shape == (2, 3, 32, 32) and batch.indices.tolist() == [0, 1] and batch.failed == []


def test_unreadable_image_raises_naming_the_file_or_is_skipped(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.data.manifest import read_manifest

    broken = tmp_path / "images"
    broken.mkdir()
    for path in (tiny_data / "images").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "img002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    manifest = read_manifest(tiny_data / "train.csv", image_root=broken)
    strict = CxrDataset(manifest, Preprocess(image_size=32), train=False)
    with pytest.raises(InputError, match="img002.png"):
        strict[2]
    lenient = CxrDataset(manifest, Preprocess(image_size=32), train=False, on_error="skip")
    batch = collate_batch([lenient[1], lenient[2], lenient[3]])
    assert batch.indices.tolist() == [1, 3]
    assert batch.failed[0][0] == 2 and "img002.png" in batch.failed[0][1]


def test_smoke_train_writes_a_complete_run(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.models import load_checkpoint
    from cxrlt_core.training import train

    seen: list[dict] = []
    run_dir = runs.create_run(tmp_path / "ws", "smoke")
    result = train(tiny_recipe(tiny_data), run_dir, progress=seen.append, show_progress=False)
    assert result.state == "finished" and result.epochs_done == 2
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["progress"] == 1.0 and status["pid"] == os.getpid()
    records = runs.read_metrics(run_dir)
    assert [(r["epoch"], r["phase"]) for r in records] == [(1, 1), (2, 2)]
    for record in records:
        assert record["steps"] == 2 and math.isfinite(record["train_loss"])
        assert 0.0 <= record["val"]["mAP"] <= 1.0 and set(record["val"]["per_class_ap"]) == set(CLASSES)
    assert records[0]["val"]["ema"] is False and records[1]["val"]["ema"] is True, "phase 2 validates the EMA"
    assert len(records[1]["lr"]) >= 2, "phase 2 has backbone and head parameter groups"
    assert seen and seen[-1]["fraction"] == pytest.approx(1.0)
    assert (run_dir / "train.log").read_text().count("epoch ") >= 2
    saved = load_recipe(run_dir / "config.yaml")
    assert saved.optim.max_steps_per_epoch == 2 and saved.model.head == "csra"
    for which in ("best", "last"):
        model, sidecar = load_checkpoint(run_dir / "checkpoints" / f"{which}.safetensors")
        assert sidecar["run_id"] == "smoke" and sidecar["model"]["class_names"] == list(CLASSES)
        contract = model.input_contract
        assert contract.image_size == (64, 64) and contract.label_space["classes"] == list(CLASSES)
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    last = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    assert last["epoch"] == 2 and last["metrics"]["mAP"] == pytest.approx(records[-1]["val"]["mAP"])
    assert (run_dir / "checkpoints" / "last.state.pt").exists()


def test_resume_a_finished_run_does_nothing_more(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.training import train

    run_dir = runs.create_run(tmp_path, "done")
    recipe = tiny_recipe(tiny_data, phase2={"epochs": 0}, max_val_batches=1)
    train(recipe, run_dir, show_progress=False)
    again = train(recipe, run_dir, resume=True, show_progress=False)
    assert again.state == "finished" and again.epochs_done == 1
    assert len(runs.read_metrics(run_dir)) == 1


def test_early_stop_and_resume_of_an_early_stopped_run(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.training import train

    # learning rates of 0 in phase 2: validation mAP cannot improve, so patience 1 stops after phase 2's first epoch
    frozen = {"epochs": 5, "backbone_lr": 0.0, "head_lr": 0.0, "warmup_epochs": 0}
    recipe = tiny_recipe(tiny_data, phase2=frozen, early_stop_patience=1, max_val_batches=1, ema={"enabled": False})
    run_dir = runs.create_run(tmp_path, "early")
    result = train(recipe, run_dir, show_progress=False)
    assert result.state == "finished" and result.early_stopped and result.epochs_done == 2
    assert runs.read_status(run_dir)["early_stopped"] is True
    again = train(recipe, run_dir, resume=True, show_progress=False)
    assert again.early_stopped and [r["epoch"] for r in runs.read_metrics(run_dir)] == [1, 2]


@pytest.mark.slow
def test_stop_request_ends_the_run_as_stopped(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.training import train

    run_dir = runs.create_run(tmp_path, "stop-me")

    def stop_after_first_epoch(info: dict) -> None:
        if info["epoch"] >= 1:
            runs.request_stop(run_dir)

    recipe = tiny_recipe(tiny_data, phase2={"epochs": 2, "warmup_epochs": 0})
    result = train(recipe, run_dir, progress=stop_after_first_epoch, show_progress=False)
    assert result.state == "stopped" and result.epochs_done == 1
    assert runs.read_status(run_dir)["state"] == "stopped"
    resumed = train(recipe, run_dir, resume=True, show_progress=False)
    assert resumed.state == "finished" and resumed.epochs_done == 3
    assert [r["epoch"] for r in runs.read_metrics(run_dir)] == [1, 2, 3]
    assert not runs.stop_requested(run_dir)


def test_non_finite_batches_are_skipped_and_counted(tiny_data: Path, tmp_path: Path, monkeypatch):
    from cxrlt_core.training import loop

    real = loop.Trainer._build_loss

    def poisoned(self):
        inner = real(self)

        class NanOnSecondCall(torch.nn.Module):
            calls = 0

            def forward(self, logits, targets):
                type(self).calls += 1
                value = inner(logits, targets)
                return value * float("nan") if self.training and type(self).calls == 2 else value

        return NanOnSecondCall()

    monkeypatch.setattr(loop.Trainer, "_build_loss", poisoned)
    run_dir = runs.create_run(tmp_path, "nan")
    result = loop.train(tiny_recipe(tiny_data, phase2={"epochs": 0}), run_dir, show_progress=False)
    assert result.state == "finished" and result.skipped_batches == 1
    record = runs.read_metrics(run_dir)[0]
    assert record["skipped_batches"] == 1 and math.isfinite(record["train_loss"])


def test_bad_run_inputs_fail_clearly(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.training import train

    run_dir = runs.create_run(tmp_path, "bad")
    recipe = tiny_recipe(tiny_data)
    recipe.loss.params = {"variant": "code", "gamma": 2}
    with pytest.raises(InputError, match="gamma"):
        train(recipe, run_dir, show_progress=False)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and "gamma" in status["error"]


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cxrlt_core.training", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _write_recipe(tiny_data: Path, path: Path, epochs: int) -> Path:
    recipe = tiny_recipe(tiny_data, phase2={"epochs": epochs, "warmup_epochs": 0}, max_steps_per_epoch=3)
    path.write_text(recipe.to_yaml())
    return path


@pytest.mark.slow
def test_kill_and_resume(tiny_data: Path, tmp_path: Path):
    """A run killed (SIGKILL) after its first checkpoint resumes from it and finishes with the right epoch count."""
    recipe = _write_recipe(tiny_data, tmp_path / "recipe.yaml", epochs=4)
    ws = tmp_path / "ws"
    process = _cli(
        "--config", str(recipe), "--workspace", str(ws), "--run-name", "killed", "--no-progress", cwd=tmp_path
    )
    run_dir = ws / "runs" / "killed"
    deadline = time.time() + 240
    while time.time() < deadline and not runs.training_state_path(run_dir).exists():
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    from cxrlt_core.models import load_training_state

    done_before = int(load_training_state(runs.training_state_path(run_dir))["next_epoch"])
    assert 1 <= done_before < 5, "killed after the first checkpoint, before the end"
    assert runs.read_status(run_dir)["state"] == "running"
    assert runs.is_stale(runs.read_status(run_dir)), "a killed run is seen as stale"
    resumed = _cli("--workspace", str(ws), "--run-name", "killed", "--resume", "--no-progress", cwd=tmp_path)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert f"resuming after epoch {done_before}" in (run_dir / "train.log").read_text()
    records = runs.read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in records] == [1, 2, 2, 2, 2]
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["epoch"] == 5


def test_cli_rejects_bad_names_and_missing_config(tiny_data: Path, tmp_path: Path):
    from cxrlt_core.training.entry import main

    recipe = _write_recipe(tiny_data, tmp_path / "recipe.yaml", epochs=1)
    assert main(["--config", str(recipe), "--workspace", str(tmp_path), "--run-name", "../evil"]) == 1
    assert not (tmp_path / "evil").exists()
    assert main(["--workspace", str(tmp_path)]) == 1
    assert main(["--workspace", str(tmp_path), "--resume"]) == 1
    assert main(["--config", str(recipe), "bad_override", "--workspace", str(tmp_path)]) == 1


def test_demo_recipes_point_at_the_demo_workspace():
    for name in ("demo_csra", "demo_mlp"):
        recipe = load_recipe(REPO_ROOT / "train_jobs" / f"{name}.yaml")
        assert recipe.data.train_csv.startswith("${workspace}/datasets/demo/")
        assert recipe.model.backbone == "convnextv2_atto" and recipe.data.image_size <= 160


@pytest.mark.slow
def test_slurm_submission_runs_the_same_entry_point(tiny_data: Path, tmp_path: Path):
    """``--slurm`` through submitit's local executor (same code path as SLURM, without a cluster)."""
    from cxrlt_core.training.entry import main

    recipe = _write_recipe(tiny_data, tmp_path / "recipe.yaml", epochs=0)
    ws = tmp_path / "ws"
    args = ["--config", str(recipe), "--workspace", str(ws), "--run-name", "sl", "--slurm", "--partition", "gpu"]
    assert main([*args, "--slurm-cluster", "local", "--gpus", "1", "--time", "0:10:00"]) == 0
    run_dir = ws / "runs" / "sl"
    deadline = time.time() + 300
    while time.time() < deadline and (runs.read_status(run_dir) or {}).get("state") not in ("finished", "failed"):
        time.sleep(0.5)
    status = runs.read_status(run_dir)
    assert status["state"] == "finished" and status["scheduler"] == "slurm" and status["job_id"]
    assert [r["epoch"] for r in runs.read_metrics(run_dir)] == [1]


def test_slurm_without_submitit_is_a_clear_error(tiny_data: Path, tmp_path: Path, monkeypatch):
    from cxrlt_core.training.entry import main, parse_time_minutes

    monkeypatch.setitem(sys.modules, "submitit", None)
    recipe = _write_recipe(tiny_data, tmp_path / "recipe.yaml", epochs=0)
    assert main(["--config", str(recipe), "--workspace", str(tmp_path), "--slurm"]) == 1
    assert [parse_time_minutes(t) for t in ("90", "2:30:00", "1-00:00:00")] == [90, 150, 1440]
    with pytest.raises(InputError):
        parse_time_minutes("soon")
