"""The embedded demo workspace: everything cxrlt shows, built offline on a CPU from nothing.

``cxrlt demo [--workspace W]`` (and the dashboard on first start) builds, step by step:

1. ``data``        the synthetic phantom CXR-LT 2026-style data set → ``W/datasets/demo``;
2. ``demo_csra``   the CSRA-head recipe (``train_jobs/demo_csra.yaml``) → ``W/runs/demo_csra``;
3. ``demo_mlp``    the MLP-head recipe → ``W/runs/demo_mlp`` (on a multi-core CPU, steps 2 and 3 train side by
                   side, one process each);
4. ``predictions`` val and test predictions of both runs (TTA, no gating: the Gating page applies it live);
5. ``clip``        a small CLIP trained with open_clip on the demo images and reports → ``W/models/demo_clip``;
6. ``prompts``     the demo prompt set for the six unseen findings → ``W/prompts/demo``;
7. ``embeddings``  the CLIP image embeddings of the val and test images → ``W/cache``.

Each finished step leaves a marker in ``W/.build/``, so a rebuild skips it and an interrupted build resumes (a
training step resumes from its last epoch). Progress goes to ``W/.build/progress.json`` (written atomically) for
the dashboard to poll.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrlt_core import runs
from cxrlt_core.atomic import write_json
from cxrlt_core.config import load_recipe
from cxrlt_core.data.demo import generate_demo_dataset
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import CxrltError, InputError
from cxrlt_core.lifeline import bind_to_parent, child_env, identity
from cxrlt_core.runlock import RunLock, describe_holder, live_holder
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.workspace import Workspace
from cxrlt_core.zeroshot.cache import EmbeddingCache
from cxrlt_core.zeroshot.prompts import PromptStore, demo_prompt_set

BUILD_DIR = ".build"
DATASET = "demo"
RUNS = ("demo_csra", "demo_mlp")
CLIP_MODEL = "demo_clip"
PROMPT_SET = "demo"
STEPS = ("data", "demo_csra", "demo_mlp", "predictions", "clip", "prompts", "embeddings")
# Share of the build time each step takes on 2 CPU cores (for one progress bar across steps), measured with the two
# runs training side by side: data 19 s, both runs 246 s, predictions 30 s, CLIP ~115 s (10 epochs), embeddings 5 s.
STEP_WEIGHTS = {"data": 0.05, "demo_csra": 0.30, "demo_mlp": 0.29, "predictions": 0.07, "clip": 0.28,
                "prompts": 0.0, "embeddings": 0.01}  # fmt: skip

Progress = Callable[[str, float, str], None]


@dataclasses.dataclass(frozen=True)
class DemoProfile:
    """Sizes of a demo build: ``default`` for people, ``tiny`` for tests (seconds)."""

    n_train: int
    n_val: int
    n_test: int
    image_size: int
    train_overrides: tuple[str, ...] = ()
    clip_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    tta: str = "flip"


PROFILES = {
    # The demo CLIP trains for as many epochs as `cxrlt zeroshot train-demo` (10, ~2 min): at 4 epochs its unseen
    # mAP was 1.7x chance, at 10 epochs 1.9x and 2.0x (seeds 0 and 1; pos_neg_softmax, demo test split).
    "default": DemoProfile(n_train=2000, n_val=400, n_test=600, image_size=256, clip_options={"epochs": 10}),
    "tiny": DemoProfile(
        n_train=64,
        n_val=24,
        n_test=24,
        image_size=64,
        train_overrides=(
            "data.image_size=64",
            "optim.phase1.epochs=1",
            "optim.phase2.epochs=1",
            "optim.max_steps_per_epoch=2",
            "optim.batch_size=8",
            "optim.num_workers=0",
        ),
        clip_options={"epochs": 1, "image_size": 64, "batch_size": 16, "text_draws": 1},
        tta="none",
    ),
}


# ------------------------------------------------------------------------------------------------------- status
def build_dir(workspace: Workspace) -> Path:
    return workspace.root / BUILD_DIR


def log_path(workspace: Workspace) -> Path:
    return build_dir(workspace) / "build.log"


def _marker(workspace: Workspace, step: str) -> Path:
    return build_dir(workspace) / f"{step}.done"


def done_steps(workspace: Workspace) -> list[str]:
    """Steps already finished, in build order."""
    return [step for step in STEPS if _marker(workspace, step).exists()]


def is_complete(workspace: Workspace) -> bool:
    """Every step has finished."""
    return len(done_steps(workspace)) == len(STEPS)


def read_progress(workspace: Workspace) -> dict[str, Any] | None:
    """The last progress record of a build (``state``, ``step``, ``fraction``, ``message``, ``done``), if any."""
    try:
        return json.loads((build_dir(workspace) / "progress.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def build_running(workspace: Workspace) -> bool:
    """A build process for this workspace is alive."""
    progress = read_progress(workspace)
    if not progress or progress.get("state") != "running":
        return False
    pid = progress.get("pid")
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


class _ProgressFile:
    """Writes ``progress.json`` (throttled) and forwards to a callback."""

    def __init__(self, workspace: Workspace, callback: Progress | None):
        self.workspace = workspace
        self.callback = callback
        self.record: dict[str, Any] = {"state": "running", "pid": os.getpid(), "started": time.time()}
        self._last_write = 0.0

    def update(self, step: str, step_fraction: float, message: str, force: bool = False) -> None:
        self.update_many({step: step_fraction}, message, force)

    def update_many(self, fractions: dict[str, float], message: str, force: bool = False) -> None:
        """Progress of one or more steps running at once (the first one is reported as the current step)."""
        done = done_steps(self.workspace)
        step = next(iter(fractions))
        fraction = sum(STEP_WEIGHTS[s] for s in done if s not in fractions)
        for running, step_fraction in fractions.items():
            if running in STEP_WEIGHTS and running not in done:
                fraction += STEP_WEIGHTS[running] * min(max(step_fraction, 0.0), 1.0)
        self.record.update(step=step, fraction=round(min(fraction, 1.0), 4), message=message, done=done)
        self.record["updated"] = time.time()
        if force or time.monotonic() - self._last_write > 0.5:
            write_json(build_dir(self.workspace) / "progress.json", self.record)
            self._last_write = time.monotonic()
        if self.callback is not None:
            self.callback(step, self.record["fraction"], message)

    def finish(self, state: str, error: str | None = None) -> None:
        self.record.update(state=state, error=error, done=done_steps(self.workspace), updated=time.time())
        if state == "finished":
            self.record.update(fraction=1.0, message="demo workspace ready")
        write_json(build_dir(self.workspace) / "progress.json", self.record)


# -------------------------------------------------------------------------------------------------------- steps
def _dataset_dir(workspace: Workspace) -> Path:
    return workspace.dataset(DATASET)


def _step_data(ws: Workspace, profile: DemoProfile, report: Callable[[float, str], None]) -> None:
    generate_demo_dataset(
        _dataset_dir(ws),
        n_train=profile.n_train,
        n_val=profile.n_val,
        n_test=profile.n_test,
        image_size=profile.image_size,
        seed=0,
        progress=lambda done, total: report(done / max(total, 1), f"rendering radiographs {done}/{total}"),
    )


def _step_train(
    ws: Workspace, profile: DemoProfile, run: str, report: Callable[[float, str], None], threads: int | None = None
) -> None:
    from cxrlt_core.training import train

    # Side by side, each process owns one share of the cores: a loader worker would only contend with the other run
    # (measured on 2 cores: 279 s for both runs with one worker each vs 212 s without).
    side_by_side = [f"optim.threads={threads}", "optim.num_workers=0"] if threads else []
    overrides = list(profile.train_overrides) + side_by_side
    recipe = load_recipe(run, overrides)  # a shipped recipe, by name
    run_dir = runs.create_run(ws, run, exist_ok=True)
    resume = runs.training_state_path(run_dir).exists()

    def on_progress(info: dict[str, Any]) -> None:
        report(float(info.get("fraction", 0.0)), f"training {run}: {info.get('message', '')}".strip())

    train(recipe, run_dir, resume=resume, progress=on_progress, workspace=ws.root, show_progress=False)
    status = runs.read_status(run_dir) or {}
    if status.get("state") != "finished":
        raise CxrltError(f"training {run} ended {status.get('state', 'unknown')}: {status.get('error', '')}")


def _train_child(root: str, profile: DemoProfile, run: str, threads: int, parent: str | None = None) -> None:
    """Entry point of a spawned process that trains one demo run (progress goes to the run's status.json).

    It ends when the build process ends (parent-death signal + heartbeat, :mod:`cxrlt_core.lifeline`).
    """
    bind_to_parent(parent, death_signal=True)
    _step_train(Workspace.open(root), profile, run, lambda fraction, message: None, threads=threads)


def _parallel_cores() -> int:
    """CPU cores for training the demo runs side by side; 0 when they should train one after the other."""
    import torch

    if torch.cuda.is_available():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores >= 2 else 0


def _train_side_by_side(ws: Workspace, profile: DemoProfile, pending: list[str], tracker: _ProgressFile) -> None:
    """Train the pending demo runs at once, one process each with an equal share of the cores.

    Two small CPU trainings at one thread each finish sooner than one after the other at two threads (the
    second thread of a small convolution network adds far less than a second process does). Each run keeps
    its own folder, log and resumable state; a failure names the run and its log.
    """
    context = multiprocessing.get_context("spawn")
    threads = max(1, _parallel_cores() // len(pending))
    args = {run: (str(ws.root), profile, run, threads, identity()) for run in pending}
    processes = {run: context.Process(target=_train_child, args=args[run], name=f"cxrlt-{run}") for run in pending}
    for process in processes.values():
        process.start()
    try:
        while any(p.is_alive() for p in processes.values()):
            fractions = {run: float((runs.read_status(ws.run(run)) or {}).get("progress") or 0.0) for run in pending}
            shown = ", ".join(f"{run} {100 * f:.0f} %" for run, f in fractions.items())
            tracker.update_many(fractions, f"training {shown} (side by side)")
            time.sleep(1.0)
    finally:
        for process in processes.values():
            if process.is_alive():
                process.terminate()
            process.join()
    failed = [run for run, process in processes.items() if process.exitcode != 0]
    for run in pending:
        if run not in failed:
            _marker(ws, run).write_text(f"{time.time()}\n", encoding="utf-8")
    if failed:
        logs = ", ".join(str(ws.run(run) / "train.log") for run in failed)
        raise CxrltError(f"training {', '.join(failed)} failed; see {logs}")


def _step_predictions(ws: Workspace, profile: DemoProfile, report: Callable[[float, str], None]) -> None:
    from cxrlt_core.inference.predict import predict

    data = _dataset_dir(ws)
    splits = (("val", data / "val.csv"), ("test", data / "test.csv"))
    jobs = [(run, split, csv) for run in RUNS for split, csv in splits]
    for i, (run, split, csv) in enumerate(jobs):
        manifest = read_manifest(csv, image_root=data / "images", require_labels=False)
        out = ws.run(run) / "predictions" / f"{split}.parquet"
        report(i / len(jobs), f"predicting {run} {split}")
        predict(
            [checkpoint_path(ws.run(run), "best")],
            manifest,
            out,
            tta=profile.tta,
            gating_alpha=0.0,
            num_workers=0,
            show_progress=False,
        )


def _step_clip(ws: Workspace, profile: DemoProfile, report: Callable[[float, str], None]) -> None:
    from cxrlt_core.zeroshot.demo_clip import DemoClipConfig, train_demo_clip

    train_demo_clip(
        _dataset_dir(ws),
        ws.models_dir / CLIP_MODEL,
        config=DemoClipConfig(**profile.clip_options),
        progress=lambda stage, fraction: report(fraction, f"training the demo CLIP: {stage}"),
        log=None,
    )


def clip_spec(workspace: Workspace) -> str:
    """The model spec of the demo CLIP."""
    return f"local-dir:{workspace.models_dir / CLIP_MODEL}"


def _step_prompts(ws: Workspace, profile: DemoProfile, report: Callable[[float, str], None]) -> None:
    store = PromptStore(ws.prompts_dir)
    if PROMPT_SET not in store.names():
        prompt_set = dataclasses.replace(demo_prompt_set(), model=clip_spec(ws))
        store.save(PROMPT_SET, prompt_set, note="demo prompt set (built with the demo workspace)")


def _step_embeddings(ws: Workspace, profile: DemoProfile, report: Callable[[float, str], None]) -> None:
    from cxrlt_core.zeroshot.loading import load_model
    from cxrlt_core.zeroshot.predict import ZeroShotScorer

    data = _dataset_dir(ws)
    model = load_model(clip_spec(ws), device="cpu")
    paths = []
    for csv in (data / "val.csv", data / "test.csv"):
        manifest = read_manifest(csv, image_root=data / "images", require_labels=False)
        paths += [manifest.image_path(i) for i in range(len(manifest))]
    ZeroShotScorer.from_paths(
        model,
        paths,
        cache=EmbeddingCache(ws.cache_dir),
        progress=lambda done, total: report(done / max(total, 1), f"embedding images {done}/{total}"),
        show_progress=False,
    )


STEP_FUNCTIONS = {
    "data": _step_data,
    "demo_csra": lambda ws, p, r: _step_train(ws, p, "demo_csra", r),
    "demo_mlp": lambda ws, p, r: _step_train(ws, p, "demo_mlp", r),
    "predictions": _step_predictions,
    "clip": _step_clip,
    "prompts": _step_prompts,
    "embeddings": _step_embeddings,
}


def build_demo_workspace(
    workspace: str | os.PathLike[str] | Workspace | None = None,
    profile: str = "default",
    progress: Progress | None = None,
    force: bool = False,
) -> Workspace:
    """Build (or finish building) the demo workspace; finished steps are skipped unless ``force``.

    Args:
        workspace: the folder (default ``$CXRLT_WORKSPACE`` or ``./workspace/demo``).
        profile: ``default`` or ``tiny`` (:data:`PROFILES`).
        progress: ``progress(step, overall_fraction, message)``.
        force: rebuild every step.
    """
    if profile not in PROFILES:
        raise InputError(f"unknown demo profile {profile!r}; choose one of: {', '.join(PROFILES)}")

    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    build_dir(ws).mkdir(parents=True, exist_ok=True)
    # One build per workspace; runs still trained by a killed build's orphans are refused by their own locks.
    with RunLock(build_dir(ws), "demo build"):
        _check_runs_free(ws)
        return _build(ws, profile, progress, force)


def _check_runs_free(ws: Workspace) -> None:
    """A demo run still being trained (by a process of an earlier build) is never trained a second time."""
    for run in RUNS:
        holder = live_holder(ws.run(run))
        if holder is not None and not _marker(ws, run).exists():
            raise CxrltError(
                f"run {run!r} of {ws.root} is still being trained ({describe_holder(holder)}); "
                "wait for it to end or stop it, then build again"
            )


def _build(ws: Workspace, profile: str, progress: Progress | None, force: bool) -> Workspace:
    if force:
        for step in STEPS:
            _marker(ws, step).unlink(missing_ok=True)
    tracker = _ProgressFile(ws, progress)
    step = STEPS[0]
    try:
        for step in STEPS:
            if _marker(ws, step).exists():
                continue
            pending = [run for run in RUNS if not _marker(ws, run).exists()]
            if step in RUNS and len(pending) > 1 and _parallel_cores():
                tracker.update_many(dict.fromkeys(pending, 0.0), "training " + " and ".join(pending), force=True)
                _train_side_by_side(ws, PROFILES[profile], pending, tracker)
                continue
            tracker.update(step, 0.0, f"{step}: starting", force=True)
            STEP_FUNCTIONS[step](ws, PROFILES[profile], lambda f, m, s=step: tracker.update(s, f, m))
            _marker(ws, step).write_text(f"{time.time()}\n", encoding="utf-8")
            tracker.update(step, 1.0, f"{step}: done", force=True)
    except BaseException as exc:
        tracker.finish("failed", error=f"step {step}: {type(exc).__name__}: {exc}")
        raise
    tracker.finish("finished")
    return ws


def start_background_build(workspace: Workspace, profile: str = "default") -> int:
    """Start ``cxrlt demo`` for ``workspace`` as a detached process; returns its pid (logs in ``.build/build.log``)."""
    if build_running(workspace):
        return int((read_progress(workspace) or {}).get("pid", 0))
    holder = live_holder(build_dir(workspace))
    if holder is not None:  # a build started elsewhere (a terminal's `cxrlt demo`)
        return int(holder.get("pid") or 0)
    build_dir(workspace).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cxrlt_core.cli", "demo", "--workspace", str(workspace.root), "--profile", profile]
    with open(log_path(workspace), "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env(),  # it ends with the dashboard (heartbeat, cxrlt_core.lifeline)
        )
    write_json(
        build_dir(workspace) / "progress.json",
        {"state": "running", "pid": process.pid, "step": "starting", "fraction": 0.0, "message": "starting…",
         "done": done_steps(workspace), "started": time.time()},
    )  # fmt: skip
    return process.pid


def format_failure(exc: BaseException) -> str:
    """A short account of a failed build for the log."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
