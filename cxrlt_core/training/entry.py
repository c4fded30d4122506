"""Entry points of a training run: ``cxrlt train``, ``python -m cxrlt_core.training`` and the torchrun children.

One code path for every scale:

* single process: ``cxrlt train --config RECIPE [key=value ...]``;
* N processes on this machine: ``cxrlt train --nproc N ...`` creates the run folder, then starts
  ``torchrun --standalone --nproc_per_node N -m cxrlt_core.training --run-dir DIR``;
* launched by torchrun directly (``torchrun --nproc_per_node N -m cxrlt_core.training --config ...``): rank 0
  creates the run folder and tells the others;
* SLURM: ``cxrlt train --slurm --partition P --gpus N --time 12:00:00 ...`` submits the same function with
  submitit (one task per GPU; requeued jobs resume).

Torch and friends are imported inside the functions so that ``cxrlt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import submitit

from cxrlt_core import distributed as dist_utils
from cxrlt_core import runs
from cxrlt_core.atomic import write_text
from cxrlt_core.config import Recipe, load_recipe, recipe_from_yaml
from cxrlt_core.distributed import launched_by_torchrun
from cxrlt_core.errors import CxrltError, InputError
from cxrlt_core.run_predictions import write_run_predictions
from cxrlt_core.runlock import describe_holder, live_holder
from cxrlt_core.runs import CONFIG_FILE
from cxrlt_core.training.arguments import add_arguments
from cxrlt_core.training.loop import train
from cxrlt_core.workspace import Workspace


def run_from_args(args: argparse.Namespace) -> int:
    """Do what the parsed arguments ask; returns an exit code."""
    if args.nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {args.nproc}")
    if launched_by_torchrun():
        return _run_as_rank(args)
    if args.slurm:
        return _submit_slurm(args)
    run_dir, recipe = prepare_run(args)
    if args.nproc > 1:
        write_text(run_dir / CONFIG_FILE, recipe.to_yaml())  # the children read the recipe, overrides included
        code = launch_torchrun(run_dir, args.nproc, workspace=args.workspace, resume=args.resume)
        if code == 0:
            write_end_of_run_predictions(run_dir, args.workspace, not args.no_progress)
        return code
    code = _train_here(recipe, run_dir, args.resume, args.workspace, not args.no_progress)
    if code == 0:
        write_end_of_run_predictions(run_dir, args.workspace, not args.no_progress)
    return code


def write_end_of_run_predictions(run_dir: Path, workspace: str | None, show_progress: bool) -> None:
    """Write a finished run's val / test predictions (:mod:`cxrlt_core.run_predictions`) so every page lists it.

    A failure here does not undo the training: it is printed, recorded in ``status.json`` and can be retried with
    ``cxrlt predict-run``.
    """
    runs.write_status(run_dir, message="writing the val / test predictions")
    try:
        written = write_run_predictions(run_dir, workspace, show_progress=show_progress)
    except Exception as exc:  # noqa: BLE001 - the run is trained; its predictions can be written again later
        why = str(exc) if isinstance(exc, (CxrltError, OSError)) else f"{type(exc).__name__}: {exc}"
        runs.write_status(run_dir, message=None, predictions_error=why)
        print(f"note: no predictions written ({why}); retry with cxrlt predict-run {run_dir.name}", file=sys.stderr)
        return
    runs.write_status(run_dir, message=None)
    for split, path in written.items():
        print(f"{split} predictions: {path}")


def prepare_run(args: argparse.Namespace) -> tuple[Path, Any]:
    """Load the recipe (+ overrides) and create (or, with --resume, find) the run folder; rank-0 work."""
    if args.run_dir:
        run_dir = Path(args.run_dir)
        config = args.config or run_dir / runs.CONFIG_FILE
        return run_dir, load_recipe(config, args.overrides)
    if not args.resume and args.config:
        load_recipe(args.config, args.overrides)  # a bad recipe is refused before the workspace is created
    workspace = Workspace.open(args.workspace)
    if args.resume:
        if not args.run_name:
            raise InputError("--resume needs --run-name (the run to continue)")
        run_dir = runs.run_dir_of(workspace, args.run_name)
        if args.config:
            recipe = load_recipe(args.config, args.overrides)
        else:
            config = run_dir / runs.CONFIG_FILE
            if not config.is_file():
                raise InputError(f"{config}: the run has no config.yaml; pass --config")
            recipe = recipe_from_yaml(config.read_text(encoding="utf-8"), str(config), args.overrides)

        holder = live_holder(run_dir)
        if holder is not None:
            raise InputError(f"run {args.run_name!r} is in use ({describe_holder(holder)}); stop it before resuming")
        status = runs.read_status(run_dir) or {}
        if status.get("state") == "running" and not runs.is_stale(status):
            raise InputError(f"run {args.run_name!r} is running (pid {status.get('pid')}); stop it before resuming")
        return run_dir, recipe
    if not args.config:
        raise InputError("--config RECIPE is required (a shipped recipe's name, e.g. demo_csra, or a YAML file)")
    recipe = load_recipe(args.config, args.overrides)
    run_dir = runs.create_run(workspace, args.run_name or runs.new_run_name(recipe.name))

    write_text(run_dir / runs.CONFIG_FILE, recipe.to_yaml())
    runs.write_status(run_dir, "queued", run_id=run_dir.name, recipe=recipe.name, progress=0.0)
    return run_dir, recipe


def _train_here(recipe: Any, run_dir: Path, resume: bool, workspace: str | None, show_progress: bool) -> int:
    result = train(recipe, run_dir, resume=resume, workspace=workspace, show_progress=show_progress)
    if result.state == "finished":
        best = "n/a" if result.best_map is None else f"{result.best_map:.4f}"
        print(
            f"run {run_dir.name}: finished {result.epochs_done} epochs, best val mAP {best} (epoch {result.best_epoch})"
        )
        print(f"checkpoints: {run_dir / 'checkpoints'}")
        return 0
    print(
        f"run {run_dir.name}: {result.state} after {result.epochs_done} epochs; "
        f"resume with --resume --run-name {run_dir.name}"
    )
    return 3


def _run_as_rank(args: argparse.Namespace) -> int:
    """Inside torchrun: rank 0 prepares the run folder, every rank trains."""
    info = dist_utils.init_distributed(_peek_device(args))
    try:
        prepared = None
        error = None
        if info.is_main:
            try:
                run_dir, recipe = prepare_run(args)
                prepared = (str(run_dir), recipe.to_yaml())
            except InputError as exc:
                error = str(exc)
        prepared, error = dist_utils.broadcast_object((prepared, error))
        if error is not None:
            raise InputError(error)
        run_dir_text, recipe_yaml = prepared
        recipe: Recipe = recipe_from_yaml(recipe_yaml, run_dir_text)
        return _train_here(recipe, Path(run_dir_text), args.resume, args.workspace, not args.no_progress)
    finally:
        dist_utils.cleanup_distributed()


def _peek_device(args: argparse.Namespace) -> str:
    """The recipe's ``optim.device`` (every rank reads it before the process group exists); ``auto`` if unknown."""
    config: str | Path | None = args.config or None
    if config is None and args.run_dir:
        config = Path(args.run_dir) / runs.CONFIG_FILE
    if config is None and args.run_name and args.resume:
        config = Workspace.open(args.workspace, create=False).runs_dir / args.run_name / runs.CONFIG_FILE
    try:
        return load_recipe(config, args.overrides).optim.device if config is not None else "auto"
    except InputError:
        return "auto"  # rank 0 reports the problem in prepare_run


def launch_torchrun(run_dir: Path, nproc: int, workspace: str | None = None, resume: bool = False) -> int:
    """Run the training of ``run_dir`` in ``nproc`` local processes with torchrun; returns its exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "cxrlt_core.training",
        "--run-dir",
        str(run_dir),
    ]
    if workspace:
        command += ["--workspace", str(workspace)]
    if resume:
        command.append("--resume")
    env = dict(os.environ)
    # N processes on one CPU share its cores: one thread each unless the user set OMP_NUM_THREADS
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    print(" ".join(command), file=sys.stderr)
    return subprocess.call(command, env=env)


# -------------------------------------------------------------------------------------------------------------- SLURM
def parse_time_minutes(text: str) -> int:
    """SLURM-style time → minutes: ``90``, ``HH:MM:SS``, ``MM:SS`` or ``D-HH:MM:SS``."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise InputError(f"--time {text!r}: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = match.groups()
    if second is None and days is None:
        minutes = int(first)
    elif third is None and days is None:
        minutes = int(first) + int(second) / 60  # MM:SS
    else:
        hours, mins, secs = int(first), int(second or 0), int(third or 0)
        minutes = int(days or 0) * 1440 + hours * 60 + mins + secs / 60
    if minutes <= 0:
        raise InputError(f"--time {text!r} must be positive")
    return max(1, round(minutes))


class SlurmTask:
    """The function submitit runs on every SLURM task: set up torch.distributed's variables, then train.

    On pre-emption or time-out submitit calls :meth:`checkpoint`; the requeued job resumes from the last epoch.
    """

    def __init__(self, run_dir: str, workspace: str | None, resume: bool, show_progress: bool = False):
        self.run_dir = run_dir
        self.workspace = workspace
        self.resume = resume
        self.show_progress = show_progress

    def __call__(self) -> str:

        environment = submitit.JobEnvironment()
        if environment.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        recipe = load_recipe(Path(self.run_dir) / CONFIG_FILE)
        try:
            result = train(
                recipe, self.run_dir, resume=self.resume, workspace=self.workspace, show_progress=self.show_progress
            )
        finally:
            dist_utils.cleanup_distributed()
        return result.state

    def checkpoint(self) -> Any:
        return submitit.helpers.DelayedSubmission(SlurmTask(self.run_dir, self.workspace, True, self.show_progress))


def _submit_slurm(args: argparse.Namespace) -> int:
    try:
        import submitit
    except ImportError:
        raise InputError(
            "--slurm needs the submitit package: pip install submitit (or pip install 'cxrlt[slurm]')"
        ) from None

    if args.gpus < 1 or args.nodes < 1:
        raise InputError("--gpus and --nodes must be at least 1")
    timeout = parse_time_minutes(args.time)
    run_dir, _ = prepare_run(args)
    executor = submitit.AutoExecutor(folder=str(run_dir / "slurm"), cluster=args.slurm_cluster)
    params: dict[str, Any] = {
        "name": f"cxrlt-{run_dir.name}",
        "nodes": args.nodes,
        "tasks_per_node": args.gpus,
        "gpus_per_node": args.gpus,
        "cpus_per_task": args.cpus_per_task,
        "timeout_min": timeout,
    }
    if args.mem_gb:
        params["mem_gb"] = args.mem_gb
    if args.partition:
        params["slurm_partition"] = args.partition
    extra = {key: value for key, value in (("account", args.account), ("qos", args.qos)) if value}
    if extra:
        params["slurm_additional_parameters"] = extra
    executor.update_parameters(**params)
    workspace = str(Path(args.workspace).resolve()) if args.workspace else None
    job = executor.submit(SlurmTask(str(run_dir.resolve()), workspace, args.resume))
    # no state here: the job may already have started and written "running"
    runs.write_status(run_dir, job_id=str(job.job_id), scheduler="slurm", slurm_folder=str(run_dir / "slurm"))
    print(f"submitted SLURM job {job.job_id} for run {run_dir.name} ({run_dir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrlt_core.training`` (what torchrun starts); same arguments as ``cxrlt train``."""
    parser = argparse.ArgumentParser(prog="python -m cxrlt_core.training", description="train a recipe")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except CxrltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
