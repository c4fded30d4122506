"""Experiment tracking: TensorBoard and MLflow output of a tiny training run, read back with their own readers
(``EventAccumulator``, ``MlflowClient`` on a file store); resume continues the MLflow run; off = nothing imported."""

from __future__ import annotations

import csv
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlt_core import runs
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.tracking import TRACKING_FILE, epoch_metrics, flatten, read_tracking
from cxrlt_core.tracking.mlflow_tracker import mlflow_client, resolve_tracking_uri

_spec = importlib.util.spec_from_file_location("_tiny_training", Path(__file__).with_name("test_training.py"))
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
make_tiny_dataset, tiny_recipe = _tiny.make_tiny_dataset, _tiny.tiny_recipe


def test_epoch_metrics_names_and_values():
    record = {
        "epoch": 3,
        "train_loss": 0.25,
        "lr": [1e-4, 2e-3],
        "epoch_seconds": 10.0,
        "val": {"mAP": 0.5, "mAUC": 0.75, "mF1": None, "mECE": float("nan"), "loss": 0.3,
                "buckets": {"head": 0.6, "tail": 0.125}, "mean_of_buckets": 0.3625},
    }  # fmt: skip
    assert epoch_metrics(record) == {
        "train/loss": 0.25,
        "val/loss": 0.3,
        "val/mean_of_buckets": 0.3625,
        "time/epoch_seconds": 10.0,
        "val/mAP": 0.5,
        "val/mAUC": 0.75,
        "val/mAP_head": 0.6,
        "val/mAP_tail": 0.125,
        "lr/group0": 1e-4,
        "lr/group1": 2e-3,
    }


def test_flatten_dotted_keys():
    assert flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}, "f": None}) == {
        "a.b.c": 1,
        "a.d": [1, 2],
        "e": {},
        "f": None,
    }


def test_tracking_uri_default_is_a_file_store_in_the_workspace(tmp_path: Path):
    assert resolve_tracking_uri(None, tmp_path) == (tmp_path / "mlruns").resolve().as_uri()
    assert resolve_tracking_uri("${workspace}/elsewhere", tmp_path) == (tmp_path / "elsewhere").resolve().as_uri()
    assert resolve_tracking_uri("http://mlflow.example:5000") == "http://mlflow.example:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Any attempt to open an internet socket fails the test (local sockets stay allowed)."""
    attempts: list = []
    real_connect = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network blocked in this test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.mark.slow
def test_tracking_round_trip_and_resume(tmp_path: Path, no_network: list):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cxrlt_core.training.loop import train

    data = make_tiny_dataset(tmp_path / "data")
    recipe = tiny_recipe(data, phase2={"epochs": 1, "warmup_epochs": 0})
    recipe.tracking.tensorboard = True
    recipe.tracking.mlflow = True
    workspace = tmp_path / "ws"
    run_dir = runs.create_run(workspace, "tracked")
    train(recipe, run_dir, workspace=workspace, show_progress=False)
    records = runs.read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2]

    # MLflow: one run in the workspace's file store, named in tracking.json
    info = read_tracking(run_dir)["mlflow"]
    assert info["tracking_uri"] == (workspace / "mlruns").resolve().as_uri()
    client = mlflow_client(info["tracking_uri"])
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    params = run.data.params
    assert params["model.backbone"] == "convnextv2_atto"
    assert params["optim.batch_size"] == "4"
    assert params["tracking.mlflow"] == "true"
    assert json.loads(params["model.mean"]) is None
    history = client.get_metric_history(run.info.run_id, "val/mAP")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["val"]["mAP"])) for r in records]
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.value for m in loss] == [pytest.approx(r["train_loss"]) for r in records]
    buckets = {k for k in run.data.metrics if k.startswith("val/mAP_")}
    assert buckets == {f"val/mAP_{b}" for b, v in records[-1]["val"]["buckets"].items() if v is not None}
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"per_class.csv", "config.yaml", "metrics.jsonl", "checkpoints"} <= top
    sidecars = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert sidecars == {"checkpoints/best.json", "checkpoints/last.json"}
    local = Path(client.download_artifacts(run.info.run_id, "per_class.csv", str(tmp_path / "dl")))
    rows = list(csv.reader(local.open()))
    best = next(r for r in reversed(records) if r["best"])
    assert rows[0][1] == f"ap_best_epoch_{best['epoch']}"
    table = {row[0]: row[1] for row in rows[1:]}
    assert table.keys() == best["val"]["per_class_ap"].keys()
    for name, ap in best["val"]["per_class_ap"].items():
        assert table[name] == "" if ap is None else float(table[name]) == ap
    sidecar = Path(client.download_artifacts(run.info.run_id, "checkpoints/best.json", str(tmp_path / "dl2")))
    assert sidecar.read_bytes() == (run_dir / "checkpoints" / "best.json").read_bytes()

    # TensorBoard: the same scalars per epoch, read with TensorBoard's own reader
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"train/loss", "val/mAP", "lr/group0"} <= set(events.Tags()["scalars"])
    tb_map = [(e.step, e.value) for e in events.Scalars("val/mAP")]
    assert tb_map == [(r["epoch"], pytest.approx(r["val"]["mAP"], rel=1e-6)) for r in records]
    assert "recipe/text_summary" in events.Tags()["tensors"]

    # resume with one more epoch: the same MLflow run goes on, the changed key is recorded as a tag
    more = tiny_recipe(data, phase2={"epochs": 2, "warmup_epochs": 0})
    more.tracking.tensorboard = more.tracking.mlflow = True
    train(more, run_dir, resume=True, workspace=workspace, show_progress=False)
    assert read_tracking(run_dir)["mlflow"]["run_id"] == info["run_id"]
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.phase2.epochs"] == "1"
    assert run.data.tags["cxrlt.resumed_with.optim.phase2.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(info["run_id"], "val/mAP")] == [1, 2, 3]
    assert len(client.search_runs([run.info.experiment_id])) == 1
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert no_network == []


def test_tracking_off_imports_neither_library(tmp_path: Path):
    code = (
        "import sys\n"
        "from cxrlt_core.config import Recipe\n"
        "from cxrlt_core.training import loop\n"
        "from cxrlt_core.tracking import NullTracker, open_tracker\n"
        "recipe = Recipe.from_dict({'data': {'train_csv': 'x.csv'}})\n"
        f"tracker = open_tracker(recipe, {str(tmp_path)!r})\n"
        "assert isinstance(tracker, NullTracker)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'tensorboard')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    assert not (tmp_path / TRACKING_FILE).exists()


def test_only_rank_zero_tracks(tmp_path: Path):
    from cxrlt_core.config import Recipe
    from cxrlt_core.tracking import NullTracker, open_tracker

    recipe = Recipe.from_dict({"data": {"train_csv": "x.csv"}, "tracking": {"mlflow": True, "tensorboard": True}})
    assert isinstance(open_tracker(recipe, tmp_path, tmp_path, is_main=False), NullTracker)
    assert not (tmp_path / TRACKING_FILE).exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_torchrun_two_ranks_log_once(tmp_path: Path):
    """Two gloo processes train one run; only rank 0 opens an MLflow run and a TensorBoard writer."""
    import os

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_tiny_dataset(tmp_path / "data")
    recipe = tiny_recipe(data, phase2={"epochs": 1, "warmup_epochs": 0})
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(recipe.to_yaml())
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "cxrlt_core.training", "--config", str(recipe_path), "--workspace", str(ws), "--run-name", "ddp",
        "--no-progress", "tracking.mlflow=true", "tracking.tensorboard=true",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = ws / "runs" / "ddp"
    assert runs.read_status(run_dir)["world_size"] == 2
    client = mlflow_client((ws / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny")
    found = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in found] == [read_tracking(run_dir)["mlflow"]["run_id"]]
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "val/mAP")] == [1, 2]
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
