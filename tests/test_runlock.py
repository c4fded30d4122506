"""One writer per run folder (lock naming its holder, stale locks of dead holders taken over) and children that end
with their parent (parent-death signal, heartbeat)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxrlt_core.errors import CxrltError
from cxrlt_core.lifeline import PARENT_ENV, alive, identity, start_ticks
from cxrlt_core.runlock import LOCK_FILE, LockedError, RunLock, live_holder, read_lock

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _holder_process(folder: Path, what: str = "training") -> subprocess.Popen:
    """A separate process that takes the lock of ``folder`` and sleeps."""
    code = (
        "import sys, time; from cxrlt_core.runlock import RunLock; "
        f"RunLock(sys.argv[1], {what!r}).acquire(); print('held', flush=True); time.sleep(600)"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, env=ENV, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    ident = identity(pid)
    while time.monotonic() < deadline:
        if not alive(ident):
            return True
        time.sleep(0.1)
    return False


def test_lock_names_its_holder_and_is_taken_over_once_the_holder_is_killed(tmp_path: Path):
    run = tmp_path / "run"
    holder = _holder_process(run)
    try:
        record = read_lock(run)
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname() and record["what"] == "training"
        assert live_holder(run)["pid"] == holder.pid
        with pytest.raises(LockedError) as caught:
            RunLock(run).acquire()
        assert f"{run}: already in use (training by pid {holder.pid} on host {socket.gethostname()} since" in str(
            caught.value
        )
    finally:
        holder.kill()
        holder.wait()
    # kill -9 leaves the file behind; its holder is gone, so it is stale and taken over
    assert (run / LOCK_FILE).exists() and live_holder(run) is None
    with RunLock(run, "test") as lock:
        assert lock.held and read_lock(run)["pid"] == os.getpid() and live_holder(run)["what"] == "test"
    assert not (run / LOCK_FILE).exists()


def test_identity_tells_a_recycled_pid(tmp_path: Path):
    me = identity()
    assert alive(me) and me == f"{os.getpid()}:{start_ticks(os.getpid())}"
    assert not alive(f"{os.getpid()}:{start_ticks(os.getpid()) + 1}")  # same pid, another start time
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not alive(f"{int(done.stdout)}:1")


def test_a_second_trainer_of_the_same_run_is_refused(tmp_path: Path):
    from cxrlt_core.config import load_recipe
    from cxrlt_core.training import train

    run = tmp_path / "ws" / "runs" / "r1"
    holder = _holder_process(run)
    try:
        recipe = load_recipe(REPO / "train_jobs" / "demo_csra.yaml")
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(LockedError, match=f"pid {holder.pid}"):
            train(recipe, run, workspace=tmp_path / "ws", show_progress=False)
        assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_demo_build_refuses_runs_still_being_trained_and_a_second_build(tmp_path: Path):
    from cxrlt_core.demo_workspace import build_demo_workspace, build_dir
    from cxrlt_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "demo")
    orphan = _holder_process(ws.run("demo_csra"))
    try:
        with pytest.raises(CxrltError, match=f"run 'demo_csra' of .* is still being trained .*pid {orphan.pid}"):
            build_demo_workspace(ws, profile="tiny")
    finally:
        orphan.kill()
        orphan.wait()
    other = _holder_process(build_dir(ws), "demo build")
    try:
        with pytest.raises(LockedError, match=f"demo build by pid {other.pid}"):
            build_demo_workspace(ws, profile="tiny")
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("death_signal", [False, True])
def test_a_child_ends_when_its_parent_is_killed(tmp_path: Path, death_signal: bool):
    """parent -> child bound to it; kill -9 the parent: the child ends within seconds (SIGTERM, then for sure)."""
    child_code = (
        "import os, sys, time; from cxrlt_core.lifeline import bind_to_parent; "
        f"bind_to_parent(os.environ['{PARENT_ENV}'], death_signal={death_signal}, interval_s=0.2); "
        "print(os.getpid(), flush=True); time.sleep(600)"
    )
    parent_code = (
        "import subprocess, sys; from cxrlt_core.lifeline import child_env; "
        f"c = subprocess.Popen([sys.executable, '-c', {child_code!r}], env=child_env(), stdout=subprocess.PIPE, "
        "text=True); print(c.stdout.readline().strip(), flush=True); c.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, env=ENV, text=True)
    child_pid = int(parent.stdout.readline())
    child = identity(child_pid)
    assert alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    try:
        assert _wait_gone(child_pid, 10.0), "the child outlived its parent"
    finally:
        if alive(child):
            os.kill(child_pid, signal.SIGKILL)


def test_cli_child_started_with_child_env_ends_with_its_parent(tmp_path: Path):
    """``cxrlt`` itself binds to ``CXRLT_PARENT``: a dashboard-launched command ends when the dashboard dies."""
    code = (
        "import subprocess, sys; from cxrlt_core.lifeline import child_env; "
        "c = subprocess.Popen([sys.executable, '-c', 'import sys, time; from cxrlt_core.cli import main; "
        "import cxrlt_core.lifeline as l; l.bind_from_env(); print(1, flush=True); time.sleep(600)'], env=child_env(), "
        "stdout=subprocess.PIPE, text=True); c.stdout.readline(); print(c.pid, flush=True); c.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=ENV, text=True)
    child_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    try:
        assert _wait_gone(child_pid, 10.0)
    finally:
        if alive(identity(child_pid)):
            os.kill(child_pid, signal.SIGKILL)
