"""What experiment tracking costs a training epoch: one run of a recipe with TensorBoard and MLflow on, every
tracker call timed inside that run, against the run's own epoch times.

    .venv/bin/python benchmarks/tracking_bench.py --config train_jobs/demo_csra.yaml --workspace /tmp/demo_ws \\
        optim.phase2.epochs=2

``--workspace`` must hold the recipe's data (``datasets/demo`` for the demo recipes; the run and the MLflow file
store are written to a temporary workspace beside it). Prints per epoch the seconds of the epoch and of the
trackers' ``log_epoch`` (TensorBoard scalars + an MLflow ``log_batch`` to the file store), the per-epoch ratio
(target: <= 2 %), and the one-off costs: opening the trackers (importing MLflow and TensorBoard, creating the run,
logging the recipe as params) and finishing (artifacts: per-class table, sidecars, config, metrics).
With tracking off the loop holds a ``NullTracker`` whose calls are timed here too (nothing is imported).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cxrlt_core import runs
from cxrlt_core.config import load_recipe
from cxrlt_core.tracking import NullTracker, Tracker


class TimedTracker(Tracker):
    """Wraps a tracker and adds up the seconds of each call."""

    def __init__(self, inner: Tracker, opened_s: float):
        self.inner = inner
        self.opened_s = opened_s
        self.epoch_s: list[float] = []
        self.finish_s = 0.0

    def log_epoch(self, record: Any) -> None:
        t0 = time.perf_counter()
        self.inner.log_epoch(record)
        self.epoch_s.append(time.perf_counter() - t0)

    def finish(self, state: str) -> None:
        t0 = time.perf_counter()
        self.inner.finish(state)
        self.finish_s = time.perf_counter() - t0


def null_call_seconds(calls: int = 100_000) -> float:
    tracker = NullTracker()
    record = {"epoch": 1}
    t0 = time.perf_counter()
    for _ in range(calls):
        tracker.log_epoch(record)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train_jobs/demo_csra.yaml")
    parser.add_argument("--workspace", required=True, help="workspace holding the recipe's data set")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. optim.phase2.epochs=2")
    args = parser.parse_args()

    from cxrlt_core.training import loop

    recipe = load_recipe(args.config, [*args.overrides, "tracking.tensorboard=true", "tracking.mlflow=true"])
    timed: list[TimedTracker] = []
    real_open = loop.open_tracker

    def open_timed(*a: Any, **k: Any) -> Tracker:
        t0 = time.perf_counter()
        tracker = real_open(*a, **k)
        timed.append(TimedTracker(tracker, time.perf_counter() - t0))
        return timed[-1]

    loop.open_tracker = open_timed
    with tempfile.TemporaryDirectory(prefix="tracking-bench-") as tmp:
        ws = Path(tmp) / "ws"
        (ws / "datasets").mkdir(parents=True)
        source = Path(args.workspace)
        (ws / "datasets" / "demo").symlink_to((source / "datasets" / "demo").resolve())
        if (source / "cache").is_dir():
            shutil.copytree(source / "cache", ws / "cache", dirs_exist_ok=True)
        run_dir = runs.create_run(ws, "bench")
        loop.train(recipe, run_dir, workspace=ws, show_progress=False)
        records = runs.read_metrics(run_dir)
    tracker = timed[0]
    print(f"{'epoch':>5} {'epoch s':>9} {'tracking s':>11} {'ratio':>8}")
    ratios = []
    for record, seconds in zip(records, tracker.epoch_s):
        ratio = seconds / record["epoch_seconds"]
        ratios.append(ratio)
        print(f"{record['epoch']:>5} {record['epoch_seconds']:>9.2f} {seconds:>11.4f} {100 * ratio:>7.3f}%")
    total = sum(r["epoch_seconds"] for r in records)
    print(f"per-epoch tracking overhead: median {100 * statistics.median(ratios):.3f} % of the epoch time "
          f"(max {100 * max(ratios):.3f} %; target <= 2 %)")  # fmt: skip
    print(f"one-off: open {tracker.opened_s:.2f} s, finish (artifacts) {tracker.finish_s:.2f} s = "
          f"{100 * (tracker.opened_s + tracker.finish_s) / total:.2f} % of the {total:.0f} s of epochs")  # fmt: skip
    print(f"tracking off: NullTracker.log_epoch {1e9 * null_call_seconds():.0f} ns per call")


if __name__ == "__main__":
    main()
