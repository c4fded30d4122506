"""Launching and stopping runs: commands, recipe checks, name clashes, and stopping a finished run."""

from __future__ import annotations

import sys
import time

import pytest

from cxrlt_core import jobs
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.runs import read_status, write_status
from cxrlt_core.workspace import Workspace

RECIPE = REPO_ROOT / "train_jobs" / "demo_csra.yaml"


def test_train_command_and_its_display(tmp_path):
    ws = Workspace.open(tmp_path)
    spec = jobs.LaunchSpec(recipe=RECIPE, run_name="r1", overrides=("optim.batch_size=4",), nproc=2)
    command = jobs.train_command(spec, ws)
    assert command[:4] == [sys.executable, "-m", "cxrlt_core.cli", "train"]
    assert "optim.batch_size=4" in command and command[-2:] == ["--nproc", "2"]
    shown = jobs.display_command(command)
    assert shown.startswith("cxrlt train --config ") and "--run-name r1" in shown


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.backbone=convnextv9_tiny", "unknown backbone 'convnextv9_tiny'"),
        ("model.head=transformer", "unknown head 'transformer'"),
        ("loss.name=focal2", "unknown loss 'focal2'"),
    ],
)
def test_check_recipe_names_unknown_parts(override, message):
    with pytest.raises(InputError, match=message):
        jobs.check_recipe(load_recipe(RECIPE, [override]))


def test_check_recipe_accepts_every_shipped_recipe():
    for path in sorted((REPO_ROOT / "train_jobs").glob("*.yaml")):
        jobs.check_recipe(load_recipe(path))


def test_launch_refuses_bad_names_and_clashes(tmp_path):
    ws = Workspace.open(tmp_path)
    with pytest.raises(InputError, match="invalid run name"):
        jobs.launch(jobs.LaunchSpec(recipe=RECIPE, run_name="../escape"), ws)
    (ws.runs_dir / "taken").mkdir()
    with pytest.raises(InputError, match="already exists"):
        jobs.launch(jobs.LaunchSpec(recipe=RECIPE, run_name="taken"), ws)
    with pytest.raises(InputError, match="no run 'ghost' to resume"):
        jobs.launch(jobs.LaunchSpec(recipe=RECIPE, run_name="ghost", resume=True), ws)


def test_stopping_a_finished_run_says_so(tmp_path):
    run = Workspace.open(tmp_path).run("done")
    run.mkdir(parents=True)
    write_status(run, "finished")
    with pytest.raises(InputError, match="already finished"):
        jobs.stop(run)


def test_stop_terminates_a_process_that_ignores_the_request(tmp_path):
    import subprocess

    run = Workspace.open(tmp_path).run("sleepy")
    run.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    write_status(run, "running", pid=process.pid)
    started = time.monotonic()
    assert jobs.stop(run, grace_s=0.5) == "stopped"
    assert process.wait(timeout=10) != 0 and time.monotonic() - started < 10
    assert (read_status(run) or {})["state"] == "stopped"


def test_tail_reads_the_end_of_a_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert jobs.tail(log, 3) == "line 97\nline 98\nline 99"
    assert jobs.tail(tmp_path / "none.log") == ""
