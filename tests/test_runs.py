"""Run directories: safe names, atomic status with heartbeat and staleness, metrics lines, stop requests."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cxrlt_core import runs
from cxrlt_core.errors import InputError


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".", "", "x" * 200, "name with space", "/abs", "a\\b"])
def test_run_names_cannot_escape_the_workspace(tmp_path: Path, name: str):
    with pytest.raises(InputError, match="invalid run name"):
        runs.create_run(tmp_path, name)
    assert not (tmp_path.parent / "escape").exists()


def test_create_and_list_runs(tmp_path: Path):
    first = runs.create_run(tmp_path, "demo-1.a_b")
    assert first == (tmp_path / "runs" / "demo-1.a_b").resolve()
    assert (first / "checkpoints").is_dir()
    with pytest.raises(InputError, match="already exists"):
        runs.create_run(tmp_path, "demo-1.a_b")
    assert runs.create_run(tmp_path, "demo-1.a_b", exist_ok=True) == first
    runs.write_status(first, "queued")
    second = runs.create_run(tmp_path, runs.new_run_name("demo csra"))
    assert second.name.startswith("demo-csra-")
    runs.write_status(second, "running", pid=os.getpid())
    listed = runs.list_runs(tmp_path)
    assert {r["name"] for r in listed} == {first.name, second.name}
    assert {r["name"]: r["state"] for r in listed}[first.name] == "queued"
    assert runs.run_dir_of(tmp_path, first.name) == first
    with pytest.raises(InputError, match="no run"):
        runs.run_dir_of(tmp_path, "nope")


def test_status_merges_fields_and_is_atomic_json(tmp_path: Path):
    run = runs.create_run(tmp_path, "r")
    runs.write_status(run, "running", pid=123, epoch=0)
    status = runs.write_status(run, epoch=2, progress=0.5)
    assert status["state"] == "running" and status["pid"] == 123 and status["epoch"] == 2
    assert json.loads((run / "status.json").read_text()) == runs.read_status(run)
    assert not list(run.glob(".status.json.*")), "no temporary file left behind"
    with pytest.raises(ValueError):
        runs.write_status(run, "exploded")
    (run / "status.json").write_text("{half")
    assert runs.read_status(run) is None


def test_stale_heartbeat_and_dead_process(tmp_path: Path):
    run = runs.create_run(tmp_path, "r")
    status = runs.write_status(run, "running", pid=os.getpid())
    assert not runs.is_stale(status)
    assert runs.is_stale(status, now=time.time() + runs.STALE_AFTER_S + 1)
    assert runs.heartbeat_age(status, now=status["heartbeat"] + 7) == pytest.approx(7)
    dead = runs.write_status(run, pid=2**22 + 12345)  # no such process
    assert runs.is_stale(dead)
    finished = runs.write_status(run, "finished")
    assert not runs.is_stale(finished, now=time.time() + 1e6)


def test_metrics_append_read_truncate(tmp_path: Path):
    run = runs.create_run(tmp_path, "r")
    assert runs.read_metrics(run) == []
    for epoch in (1, 2, 3):
        runs.append_metrics(run, {"epoch": epoch, "val": {"mAP": 0.1 * epoch, "mAUC": float("nan")}})
    records = runs.read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[0]["val"]["mAUC"] is None, "NaN is written as null (valid JSON)"
    runs.truncate_metrics(run, before_epoch=3)
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1, 2]


def test_stop_request(tmp_path: Path):
    run = runs.create_run(tmp_path, "r")
    assert not runs.stop_requested(run)
    runs.request_stop(run)
    assert runs.stop_requested(run)
    runs.clear_stop(run)
    assert not runs.stop_requested(run)


def test_checkpoint_paths(tmp_path: Path):
    run = runs.create_run(tmp_path, "r")
    assert runs.checkpoint_path(run, "best") == run / "checkpoints" / "best.safetensors"
    assert runs.training_state_path(run) == run / "checkpoints" / "last.state.pt"
    with pytest.raises(InputError):
        runs.checkpoint_path(run, "worst")
