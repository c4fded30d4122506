"""Training pipelines: recipes run one after another, a later stage starting from an earlier stage's weights.

The winning method trains in two stages: Stage 1 learns 14 findings on a large public set (MIMIC-CXR there; NIH
ChestX-ray14 is the public stand-in here), Stage 2 fine-tunes that model on the challenge's 30 classes, keeping the
Stage 1 hidden layers of the MLP head (``transfer: keep_hidden``) or a fresh CSRA head (``reinit_head``). A pipeline
file says so::

    name: cxrlt2026_two_stage
    description: ...
    stages:
      - name: stage1                 # run <pipeline name>-stage1 in the workspace
        recipe: nih14_stage1         # a shipped recipe's name or a YAML file
        overrides: [optim.phase2.epochs=10]
      - name: mlp
        recipe: cxrlt2026_mlp_asl
        pretrained: stage1           # an earlier stage (its best checkpoint), run:NAME or a checkpoint file
        transfer: keep_hidden        # auto | keep_hidden | reinit_head

``cxrlt pipeline run FILE`` (or the Train page) runs the stages in order. It is resumable per stage: a stage whose
run finished is skipped, one that stopped part-way resumes from its last epoch, and the rest start fresh.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cxrlt_core import runs
from cxrlt_core.atomic import write_text
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import InputError
from cxrlt_core.jobs import display_command
from cxrlt_core.lifeline import child_env
from cxrlt_core.models.classifier import TRANSFERS
from cxrlt_core.recipes import recipe_dirs, resolve_recipe
from cxrlt_core.training.entry import write_end_of_run_predictions
from cxrlt_core.training.loop import train
from cxrlt_core.workspace import Workspace, check_name

__all__ = [
    "Pipeline",
    "Stage",
    "launch_pipeline",
    "load_pipeline",
    "display_pipeline_command",
    "pipeline_names",
    "run_pipeline",
    "stage_states",
    "stage_table",
]

PIPELINE_FOLDER = "pipelines"
_TOP_KEYS = ("name", "description", "stages")
_STAGE_KEYS = ("name", "recipe", "overrides", "pretrained", "transfer")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training run of a pipeline."""

    name: str
    recipe: str
    overrides: tuple[str, ...] = ()
    pretrained: str | None = None
    transfer: str | None = None


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Stages in order; ``source`` is the file it was read from (recipe paths are relative to its folder)."""

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    source: Path | None = None

    def run_name(self, stage: Stage) -> str:
        """The workspace run of ``stage``: ``<pipeline>-<stage>``."""
        return f"{self.name}-{stage.name}"

    def recipe_file(self, stage: Stage) -> Path:
        """The recipe of ``stage``: a file next to the pipeline file, any file, or a shipped recipe by name."""
        if self.source is not None and (self.source.parent / stage.recipe).is_file():
            return self.source.parent / stage.recipe
        return resolve_recipe(stage.recipe)

    def overrides(self, stage: Stage) -> list[str]:
        """The stage's recipe overrides, with ``model.pretrained`` / ``model.transfer`` from its own keys."""
        out = list(stage.overrides)
        if stage.pretrained:
            earlier = {s.name for s in self.stages}
            weights = f"run:{self.run_name(self.stage(stage.pretrained))}" if stage.pretrained in earlier else None
            out.append(f"model.pretrained={weights or stage.pretrained}")
        if stage.transfer:
            out.append(f"model.transfer={stage.transfer}")
        return out

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise InputError(f"pipeline {self.name!r} has no stage {name!r}")


# ------------------------------------------------------------------------------------------------------ reading
def pipeline_names() -> list[str]:
    """Names of the shipped pipelines (``train_jobs/pipelines/*.yaml``)."""
    return sorted({p.stem for folder in recipe_dirs() for p in (folder / PIPELINE_FOLDER).glob("*.yaml")})


def _pipeline_path(name_or_path: str | os.PathLike[str]) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in recipe_dirs():
        candidate = folder / PIPELINE_FOLDER / f"{path.stem}.yaml"
        if os.sep not in str(name_or_path) and candidate.is_file():
            return candidate
    raise InputError(f"{name_or_path}: no such pipeline file or shipped pipeline ({', '.join(pipeline_names())})")


def _stage(entry: Any, index: int, source: str) -> Stage:
    where = f"{source}: stages[{index}]"
    if not isinstance(entry, Mapping):
        raise InputError(f"{where} must be a mapping with name and recipe")
    unknown = sorted(set(entry) - set(_STAGE_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown keys {unknown}; known: {', '.join(_STAGE_KEYS)}")
    name, recipe = entry.get("name"), entry.get("recipe")
    if not isinstance(name, str) or not isinstance(recipe, str):
        raise InputError(f"{where}: name and recipe are required texts")
    try:
        check_name(name, "stage name")
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    overrides = entry.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise InputError(f"{where}: overrides must be a list of key=value texts")
    transfer = entry.get("transfer")
    if transfer is not None and transfer not in TRANSFERS:
        raise InputError(f"{where}: transfer {transfer!r}; choose one of: {', '.join(TRANSFERS)}")
    pretrained = entry.get("pretrained")
    if pretrained is not None and not isinstance(pretrained, str):
        raise InputError(f"{where}: pretrained must be a stage name, run:NAME or a file")
    return Stage(name, recipe, tuple(overrides), pretrained, transfer)


def load_pipeline(name_or_path: str | os.PathLike[str]) -> Pipeline:
    """Read and check a pipeline file (``yaml.safe_load``), or a shipped pipeline by name.

    Every stage's recipe is loaded with its overrides (errors name the stage); ``pretrained`` may only name an
    earlier stage.

    Raises:
        InputError: a missing or malformed file, unknown keys, repeated or unknown stage names, bad recipes.
    """
    path = _pipeline_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the pipeline ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise InputError(f"{path}: a pipeline is a mapping with a non-empty 'stages' list")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}; known: {', '.join(_TOP_KEYS)}")
    name = str(data.get("name") or path.stem)
    check_name(name, "pipeline name")
    stages = tuple(_stage(entry, i, str(path)) for i, entry in enumerate(data["stages"]))
    pipeline = Pipeline(name, stages, str(data.get("description") or ""), path)
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise InputError(f"{path}: stage {stage.name!r} appears twice")
        names = {s.name for s in stages}
        if stage.pretrained in names and stage.pretrained not in seen:
            raise InputError(
                f"{path}: stage {stage.name!r} starts from {stage.pretrained!r}, which does not run before it"
            )
        seen.add(stage.name)
        try:
            load_recipe(pipeline.recipe_file(stage), _without_weights(pipeline.overrides(stage)))
        except InputError as exc:
            raise InputError(f"{path}: stage {stage.name!r}: {exc}") from None
    return pipeline


def _without_weights(overrides: list[str]) -> list[str]:
    """Overrides to check a recipe before the earlier stages ran (their weights do not exist yet)."""
    return [o for o in overrides if not o.startswith("model.pretrained=run:")]


# ------------------------------------------------------------------------------------------------------ running
def stage_states(pipeline: Pipeline, workspace: str | os.PathLike[str] | None) -> list[tuple[Stage, str]]:
    """Each stage with the state of its run: ``not started``, or the run's status (``finished``, ``stopped``, ...)."""
    ws = Workspace.open(workspace, create=False)
    out = []
    for stage in pipeline.stages:
        run_dir = ws.run(pipeline.run_name(stage))
        status = runs.read_status(run_dir) if run_dir.is_dir() else None
        out.append((stage, str((status or {}).get("state") or "not started")))
    return out


def stage_table(pipeline: Pipeline, workspace: str | os.PathLike[str] | None) -> list[dict[str, str]]:
    """One row per stage for a table: stage, recipe, what it starts from, transfer, run and its state."""
    return [
        {
            "stage": stage.name,
            "recipe": stage.recipe,
            "starts from": stage.pretrained or "—",
            "transfer": stage.transfer or ("auto" if stage.pretrained else "—"),
            "run": pipeline.run_name(stage),
            "state": state,
        }
        for stage, state in stage_states(pipeline, workspace)
    ]


def run_pipeline(
    pipeline: Pipeline,
    workspace: str | os.PathLike[str] | None = None,
    show_progress: bool = True,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Run the stages in order (resumable: finished stages are skipped, stopped ones resumed); returns run folders.

    Raises:
        InputError: a stage did not finish (run the pipeline again to resume it) or a recipe is bad.
    """
    ws = Workspace.open(workspace)
    done: list[Path] = []
    for index, stage in enumerate(pipeline.stages, 1):
        run_name = pipeline.run_name(stage)
        run_dir = ws.run(run_name)
        status = runs.read_status(run_dir) if run_dir.is_dir() else None
        if (status or {}).get("state") == "finished":
            say(f"stage {index}/{len(pipeline.stages)} {stage.name}: run {run_name} finished earlier, skipped")
            done.append(run_dir)
            continue
        recipe = load_recipe(pipeline.recipe_file(stage), pipeline.overrides(stage))
        resume = run_dir.is_dir() and runs.training_state_path(run_dir).is_file()
        if not run_dir.is_dir():
            run_dir = runs.create_run(ws, run_name)
        write_text(run_dir / runs.CONFIG_FILE, recipe.to_yaml())
        say(f"stage {index}/{len(pipeline.stages)} {stage.name}: {'resuming' if resume else 'training'} {run_name}")
        result = train(recipe, run_dir, resume=resume, workspace=str(ws.root), show_progress=show_progress)
        if result.state != "finished":
            raise InputError(
                f"stage {stage.name!r} (run {run_name}) ended {result.state}; run the pipeline again to resume it"
            )
        write_end_of_run_predictions(run_dir, str(ws.root), show_progress)
        done.append(run_dir)
    return done


def pipeline_command(pipeline: Pipeline, workspace: Workspace) -> list[str]:
    """``cxrlt pipeline run FILE --workspace W`` with this interpreter."""
    source = str(pipeline.source) if pipeline.source is not None else pipeline.name
    return [sys.executable, "-m", "cxrlt_core.cli", "pipeline", "run", source, "--workspace", str(workspace.root)]


def display_pipeline_command(pipeline: Pipeline, workspace: Workspace) -> str:
    """The command as a person types it: ``cxrlt pipeline run NAME --workspace W``."""
    return display_command(pipeline_command(pipeline, workspace))


def launch_pipeline(pipeline: Pipeline, workspace: Workspace) -> Path:
    """Start ``cxrlt pipeline run`` in the background (own session, ends with this process); returns its log file."""
    log_path = workspace.runs_dir / f"{pipeline.name}.pipeline.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = pipeline_command(pipeline, workspace)
    with open(log_path, "ab") as log:
        subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=child_env({**os.environ, "PYTHONUNBUFFERED": "1"}),
        )
    return log_path
