"""Launch, watch and stop training runs: a local background process, ``torchrun`` with N processes, or SLURM.

Every launcher runs the same entry point as a person at a terminal (``cxrlt train``), so a run started from the
dashboard is reproducible from the command it records in ``status.json``. The launcher writes a ``queued`` status
before the process starts; the training loop takes over the status file from there (``cxrlt_core.runs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cxrlt_core.errors import InputError
from cxrlt_core.lifeline import child_env
from cxrlt_core.pathguard import check_override_paths
from cxrlt_core.runlock import describe_holder, live_holder
from cxrlt_core.runs import read_status, request_stop, write_status
from cxrlt_core.workspace import Workspace

FINAL_STATES = ("finished", "failed", "stopped")
LAUNCHER_LOG = "launcher.log"


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """What to run: a recipe, ``key=value`` overrides, where, and on how many processes."""

    recipe: Path
    run_name: str
    overrides: tuple[str, ...] = ()
    nproc: int = 1
    resume: bool = False
    slurm: bool = False
    slurm_args: tuple[str, ...] = ()
    allow_outside: bool = False  # paths in the overrides may leave the workspace (cxrlt_core.pathguard)


def train_command(spec: LaunchSpec, workspace: Workspace) -> list[str]:
    """The ``cxrlt train`` command line for ``spec`` (run with this interpreter, so the same venv is used)."""
    command = [sys.executable, "-m", "cxrlt_core.cli", "train", "--config", str(spec.recipe), *spec.overrides]
    command += ["--workspace", str(workspace.root), "--run-name", spec.run_name]
    if spec.resume:
        command.append("--resume")
    if spec.nproc > 1:
        command += ["--nproc", str(spec.nproc)]
    if spec.slurm:
        command += ["--slurm", *spec.slurm_args]
    return command


def display_command(command: Sequence[str]) -> str:
    """The command as a person would type it (``cxrlt ...`` instead of ``python -m cxrlt_core.cli``)."""
    words = list(command)
    if words[:3] == [sys.executable, "-m", "cxrlt_core.cli"]:
        words = ["cxrlt", *words[3:]]
    return shlex.join(words)


def launch(spec: LaunchSpec, workspace: Workspace) -> Path:
    """Start ``spec`` in the background and return its run folder.

    A new run may not reuse an existing run's name; ``resume`` needs a run that is not running. The process is
    started in its own session so that stopping it stops its DataLoader workers and torchrun children too.
    """
    if not spec.recipe.is_file():
        raise InputError(f"recipe {spec.recipe} not found")
    if spec.nproc < 1:
        raise InputError(f"number of processes must be at least 1, got {spec.nproc}")
    check_override_paths(spec.overrides, workspace.root, spec.allow_outside)
    run_dir = workspace.run(spec.run_name)
    status = read_status(run_dir)
    if spec.resume:
        if not run_dir.is_dir():
            raise InputError(f"no run {spec.run_name!r} to resume in {workspace.runs_dir}")
        holder = live_holder(run_dir)
        if holder is not None:
            raise InputError(f"run {spec.run_name!r} is in use ({describe_holder(holder)}); stop it before resuming")
        if status and status.get("state") in ("queued", "running") and process_alive(status):
            raise InputError(f"run {spec.run_name!r} is still {status['state']}; stop it before resuming")
    elif run_dir.exists():
        raise InputError(f"run {spec.run_name!r} already exists in {workspace.runs_dir}; pick another name")
    run_dir.mkdir(parents=True, exist_ok=True)
    command = train_command(spec, workspace)
    write_status(run_dir, "queued", launcher="slurm" if spec.slurm else "local", command=display_command(command))
    # The run ends with this process (the dashboard): heartbeat in the child, cxrlt_core.lifeline.
    env = child_env({**os.environ, "PYTHONUNBUFFERED": "1"})
    with open(run_dir / LAUNCHER_LOG, "ab") as log:
        log.write(f"$ {display_command(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
    write_status(run_dir, launcher_pid=process.pid)
    return run_dir


def process_alive(status: dict) -> bool:
    """Whether the run's training process (or, before it wrote its pid, the launcher's) is alive on this host."""
    for key in ("pid", "launcher_pid"):
        pid = status.get(key)
        if pid:
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                return True
            if not _is_zombie(int(pid)):
                return True
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop(run_dir: str | os.PathLike[str], grace_s: float = 20.0, poll_s: float = 0.2) -> str:
    """Ask a run to stop; after ``grace_s`` seconds without it stopping, terminate its process group.

    The training loop checks the stop request between steps and saves a resumable state. Returns the run's final
    state. Stopping a run that already ended is an ``InputError`` that says so.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status is None:
        raise InputError(f"{run_dir.name}: not a run (no status.json)")
    if status.get("state") in FINAL_STATES:
        raise InputError(f"run {run_dir.name!r} already {status['state']}; there is nothing to stop")
    request_stop(run_dir)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        status = read_status(run_dir) or {}
        if status.get("state") in FINAL_STATES or not process_alive(status):
            break
        time.sleep(poll_s)
    status = read_status(run_dir) or {}
    if process_alive(status):
        for key in ("pid", "launcher_pid"):
            if status.get(key):
                _terminate_group(int(status[key]))
    status = read_status(run_dir) or {}
    if status.get("state") not in FINAL_STATES:
        status = write_status(run_dir, "stopped", stopped_by="user")
    return str(status["state"])


def _terminate_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGTERM)


def tail(path: str | os.PathLike[str], lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a log file (reads at most ``max_bytes`` from its end)."""
    path = Path(path)
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def head_names() -> list[str]:
    """Registered classification heads (for pickers)."""
    from cxrlt_core.models.heads import HEADS

    return HEADS.names()


def loss_names() -> list[str]:
    """Registered losses (for pickers)."""
    from cxrlt_core.losses import LOSSES

    return LOSSES.names()


def check_recipe(recipe) -> None:
    """Catch, before a process is started, what the recipe parser cannot: an unknown backbone, head or loss."""
    import timm

    if not timm.is_model(recipe.model.backbone):
        close = timm.list_models(f"*{recipe.model.backbone.split('.')[0][:8]}*")[:5]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise InputError(f"unknown backbone {recipe.model.backbone!r}: not a timm model name{hint}")
    if recipe.model.head not in head_names():
        raise InputError(f"unknown head {recipe.model.head!r}; choose one of: {', '.join(head_names())}")
    if recipe.loss.name not in loss_names():
        raise InputError(f"unknown loss {recipe.loss.name!r}; choose one of: {', '.join(loss_names())}")
