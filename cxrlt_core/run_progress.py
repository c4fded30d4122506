"""A run's progress as people read it: phase, epoch, step, time left, whether it can be resumed.

Read from the files a run keeps (``status.json``, ``metrics.jsonl``, ``checkpoints/``) by the Train and Overview
pages and by ``cxrlt runs``-style tables; nothing here talks to the training process.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from cxrlt_core.jobs import process_alive
from cxrlt_core.runs import heartbeat_age, is_stale, list_runs, read_metrics, read_status, training_state_path
from cxrlt_core.workspace import Workspace

LIVE_STATES = ("queued", "running")


def resumable(run_dir: str | os.PathLike[str], status: dict[str, Any] | None = None) -> bool:
    """A run can be resumed when it is not live and its end-of-epoch training state exists.

    A run stopped or crashed before its first epoch ended has no state: resuming it would start over.
    """
    status = read_status(run_dir) if status is None else status
    live = (status or {}).get("state") in LIVE_STATES and not is_stale(status)
    return not live and training_state_path(run_dir).is_file()


def mean_epoch_seconds(metrics: list[dict[str, Any]]) -> float | None:
    """Mean wall time of the finished epochs (``epoch_seconds`` of ``metrics.jsonl``), or ``None``."""
    seconds = [float(m["epoch_seconds"]) for m in metrics if isinstance(m.get("epoch_seconds"), (int, float))]
    return sum(seconds) / len(seconds) if seconds else None


def eta_seconds(status: dict[str, Any], metrics: list[dict[str, Any]], now: float | None = None) -> float | None:
    """Seconds left in a running run, or ``None`` when unknown.

    ETA = (1 − progress) × epochs × mean epoch time, with ``progress`` the fraction of all epochs done (steps of the
    current epoch included). Before any epoch has finished: ETA = elapsed × (1 − progress) / progress, from the
    process's start time.
    """
    if status.get("state") != "running":
        return None
    progress = float(status.get("progress") or 0.0)
    epochs = status.get("epochs")
    per_epoch = mean_epoch_seconds(metrics)
    if per_epoch is not None and isinstance(epochs, int) and epochs > 0:
        return max(0.0, (1.0 - progress) * epochs * per_epoch)
    started = status.get("started")
    if not isinstance(started, (int, float)) or progress <= 0:
        return None
    elapsed = (time.time() if now is None else now) - float(started)
    return max(0.0, elapsed * (1.0 - progress) / progress)


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_label(status: dict[str, Any], eta: float | None = None) -> str:
    """``phase 2 · epoch 3/5 · step 12/40 · ETA 1 min 20 s`` for a live run; the state (and why) otherwise.

    ``epoch`` in ``status.json`` counts finished epochs, so a running run is in epoch ``epoch + 1``.
    """
    state = status.get("state", "unknown")
    done, total = status.get("epoch"), status.get("epochs")
    if is_stale(status):
        state = "stale: the process is gone or silent"
    if state != "running":
        parts = [state]
        if isinstance(done, int) and isinstance(total, int):
            parts.append(f"{done}/{total} epochs done")
        if status.get("message"):
            parts.append(str(status["message"]))
        return " · ".join(parts)
    parts = []
    if status.get("phase") is not None:
        parts.append(f"phase {status['phase']}")
    if isinstance(total, int):
        current = min((done or 0) + 1, total)
        parts.append(f"epoch {current}/{total}")
    if status.get("steps"):
        parts.append(f"step {status.get('step', 0)}/{status['steps']}")
    parts.append(f"ETA {format_duration(eta)}")
    return " · ".join(parts)


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One run of :func:`cxrlt_core.runs.list_runs` as a table row."""
    status: dict[str, Any] = run["status"]
    run_dir = Path(run["path"])
    metrics = read_metrics(run_dir) if status.get("state") == "running" else []
    state = ("stale " if run["stale"] else "") + run["state"]
    if resumable(run_dir, status) and run["state"] != "finished":
        state += " (resumable)"
    age = heartbeat_age(status)
    return {
        "run": run["name"],
        "state": state,
        "progress": float(status.get("progress") or 0.0),
        "where": progress_label(status, eta_seconds(status, metrics)),
        "val mAP": status.get("val_mAP"),
        "best val mAP": status.get("best_mAP"),
        "heartbeat": f"{age:.0f} s ago" if age is not None else "–",
    }


def run_table(workspace: Workspace) -> list[dict[str, Any]]:
    """Every run of the workspace as a row (newest first)."""
    return [run_row(run) for run in list_runs(workspace)]


def busy(status: dict[str, Any]) -> bool:
    """The run can still change: queued or running (not stale), or its process on this host is still at work (a
    finished run writing its predictions)."""
    if status.get("state") in LIVE_STATES and not is_stale(status):
        return True
    return status.get("host") == socket.gethostname() and process_alive(status)


def any_live(workspace: Workspace) -> bool:
    """Some run of the workspace can still change (:func:`busy`)."""
    return any(busy(run["status"]) for run in list_runs(workspace))
