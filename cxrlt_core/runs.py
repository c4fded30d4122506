"""Run directories: ``<workspace>/runs/<run_id>/`` with a run's config, status, metrics, log and checkpoints.

Layout (docs/design.md)::

    config.yaml                  the resolved recipe
    status.json                  state, pid / job id, progress, epoch, heartbeat (written atomically)
    metrics.jsonl                one JSON object per finished epoch
    train.log                    the training log
    skipped_images.csv           images that could not be read, when the recipe skips them
    STOP                         present = the user asked the run to stop (checked between steps)
    checkpoints/best.safetensors + best.json, last.safetensors + last.json, last.state.pt (resumable)
    predictions/<split>.parquet

States: ``queued`` → ``running`` → ``finished`` | ``failed`` | ``stopped``. A ``running`` run whose heartbeat is
older than ``STALE_AFTER_S`` (or whose local process is gone) is reported as stale: it crashed or was killed and
can be resumed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from cxrlt_core.atomic import json_safe, write_json, write_text
from cxrlt_core.errors import InputError
from cxrlt_core.workspace import Workspace, check_name

STATES = ("queued", "running", "finished", "failed", "stopped")
STALE_AFTER_S = 180.0
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
LOG_FILE = "train.log"
STOP_FILE = "STOP"
SKIPPED_FILE = "skipped_images.csv"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "last.state.pt"  # beside checkpoints/last.safetensors (models.checkpoint.training_state_path)


def new_run_name(prefix: str = "run") -> str:
    """``<prefix>-YYYYmmdd-HHMMSS`` (a safe folder name)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in prefix).strip("-._") or "run"
    return f"{safe}-{stamp}"


def create_run(workspace: str | os.PathLike[str] | Workspace, name: str | None = None, exist_ok: bool = False) -> Path:
    """Make ``<workspace>/runs/<name>/`` (name checked: letters, digits, ``._-``; no ``..`` or ``/``).

    Args:
        workspace: the workspace folder (created if needed) or a :class:`Workspace`.
        name: the run id; default ``run-<timestamp>``.
        exist_ok: allow an existing folder (resume); otherwise an existing run is an error.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    name = check_name(name, "run name") if name is not None else new_run_name()
    run_dir = ws.run(name)
    # A folder holding only a launcher's "queued" status (cxrlt_core.jobs) is this run's own placeholder.
    placeholder = (read_status(run_dir) or {}).get("state") == "queued" and not (run_dir / METRICS_FILE).exists()
    if run_dir.exists() and not exist_ok and not placeholder:
        raise InputError(f"run {name!r} already exists in {ws.runs_dir}; pick another --run-name or resume it")
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    return run_dir


def run_dir_of(workspace: str | os.PathLike[str] | Workspace, name: str) -> Path:
    """The folder of the existing run ``name`` (an ``InputError`` if there is none)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace, create=False)
    run_dir = ws.run(name)
    if not run_dir.is_dir():
        raise InputError(f"no run {name!r} in {ws.runs_dir}")
    return run_dir


def list_runs(workspace: str | os.PathLike[str] | Workspace) -> list[dict[str, Any]]:
    """Every run of the workspace, newest first: ``{"name", "path", "state", "stale", "status"}``."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace, create=False)
    runs = []
    for name in ws.list_runs():
        run_dir = ws.runs_dir / name
        status = read_status(run_dir) or {}
        runs.append(
            {
                "name": name,
                "path": run_dir,
                "state": status.get("state", "unknown"),
                "stale": is_stale(status),
                "status": status,
                "mtime": run_dir.stat().st_mtime,
            }
        )
    return sorted(runs, key=lambda r: r["mtime"], reverse=True)


# ------------------------------------------------------------------------------------------------------ status file
def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``status.json``, or ``None`` if it has none (or it cannot be parsed)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_status(run_dir: str | os.PathLike[str], state: str | None = None, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` (and ``state``) into ``status.json`` atomically; stamps ``heartbeat`` with the time now.

    Returns:
        the new status.
    """
    if state is not None and state not in STATES:
        raise ValueError(f"unknown run state {state!r}; one of {STATES}")
    status = read_status(run_dir) or {}
    status.update(fields)
    if state is not None:
        status["state"] = state
    now = time.time()
    status["heartbeat"] = now
    status["heartbeat_iso"] = _dt.datetime.fromtimestamp(now).isoformat(timespec="seconds")
    status.setdefault("host", socket.gethostname())
    write_json(Path(run_dir) / STATUS_FILE, status)
    return status


def heartbeat_age(status: dict[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds since the last heartbeat, or ``None`` if the status has none."""
    if not status or "heartbeat" not in status:
        return None
    return (time.time() if now is None else now) - float(status["heartbeat"])


def is_stale(status: dict[str, Any] | None, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> bool:
    """A ``running`` run whose heartbeat is older than ``max_age_s`` or whose process (on this host) is gone."""
    if not status or status.get("state") != "running":
        return False
    age = heartbeat_age(status, now)
    if age is not None and age > max_age_s:
        return True
    pid = status.get("pid")
    if pid and status.get("host") == socket.gethostname():
        return not _pid_alive(int(pid))
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------------------------- metrics
def append_metrics(run_dir: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one epoch's record to ``metrics.jsonl`` (rewritten atomically, so a kill never leaves half a line)."""
    path = Path(run_dir) / METRICS_FILE
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, old + json.dumps(json_safe(record), allow_nan=False) + "\n")


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every epoch record of ``metrics.jsonl`` in order (an unparsable line is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: str | os.PathLike[str], before_epoch: int) -> None:
    """Keep only records of epochs < ``before_epoch`` (on resume, drop epochs that will be trained again)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [r for r in read_metrics(run_dir) if int(r.get("epoch", -1)) < before_epoch]
    write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))


# -------------------------------------------------------------------------------------------------------------- stop
def request_stop(run_dir: str | os.PathLike[str]) -> None:
    """Ask a running run to stop: it finishes its current step, saves nothing new and exits as ``stopped``.

    The run can be resumed from its last end-of-epoch state.
    """
    write_text(Path(run_dir) / STOP_FILE, f"stop requested {_dt.datetime.now().isoformat(timespec='seconds')}\n")


def stop_requested(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / STOP_FILE).exists()


def clear_stop(run_dir: str | os.PathLike[str]) -> None:
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------- checkpoints
def checkpoint_path(run_dir: str | os.PathLike[str], which: str) -> Path:
    """``checkpoints/<which>.safetensors`` (``which``: ``best`` or ``last``)."""
    if which not in ("best", "last"):
        raise InputError(f"unknown checkpoint {which!r}; choose best or last")
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.safetensors"


def training_state_path(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
