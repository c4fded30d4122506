"""Build challenge submissions from a workspace: Task 1 (ensemble of runs) and Task 2 (zero-shot), validated.

The Export page and scripts call these; each returns the files it wrote and the equivalent CLI commands, so that
what the dashboard did can be reproduced from a terminal.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.export_plan import export_files
from cxrlt_core.labels import list_label_spaces
from cxrlt_core.predictions import read_predictions
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.submission import submission_from_predictions, validate_submission, write_submission
from cxrlt_core.workspace import Workspace
from cxrlt_core.workspace_summary import csv_label_space

Progress = Callable[[int, int], None]


@dataclasses.dataclass
class ExportResult:
    """What an export wrote: the predictions, the validated submission, and how to reproduce it."""

    predictions: Path
    submission: Path
    rows: int
    problems: list[str]
    commands: list[str]


def _test_manifest(test_csv: str | os.PathLike[str], images: str | os.PathLike[str] | None):
    test_csv = Path(test_csv)
    root = Path(images) if images else (test_csv.parent / "images")
    return read_manifest(test_csv, image_root=root, label_space=None, require_labels=False), root


def _label_space(test_csv: str | os.PathLike[str], goiter_spelling: str = "Goiter"):
    """The label space of the test CSV's data set (:func:`~cxrlt_core.workspace_summary.csv_label_space`), with
    the submission spelling of ``Goiter`` when the space has that class."""
    space = csv_label_space(test_csv)
    if goiter_spelling not in ("Goiter", "goiter"):
        raise InputError(f"goiter spelling must be 'Goiter' or 'goiter', got {goiter_spelling!r}")
    return space.with_output_names({"Goiter": goiter_spelling}) if "Goiter" in space.classes else space


def _refuse_overwrite(workspace: Workspace, name: str, overwrite: bool) -> None:
    """An export never replaces earlier files silently: an existing name is an error unless ``overwrite``."""
    existing = export_files(workspace, name)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists; choose another export name or allow overwriting it")


def _write_and_validate(pred_path: Path, test_csv: Path, out: Path, task: int, space) -> tuple[int, list[str]]:
    rows = submission_from_predictions(read_predictions(pred_path, label_space=space), test_csv, space, task)
    write_submission(out, rows.ids, rows.scores, space, task, test_ids=rows.ids)
    return len(rows.ids), validate_submission(out, task, test_csv, space, strict_spelling=True)


def export_task1(
    workspace: Workspace,
    runs: Sequence[str],
    test_csv: str | os.PathLike[str],
    name: str,
    weights: Sequence[float] | None = None,
    images: str | os.PathLike[str] | None = None,
    tta: str = "medium",
    merge: str = "mean",
    gating_alpha: float = 0.5,
    gating_form: str = "power",
    calibration: str | os.PathLike[str] | None = None,
    checkpoint: str = "best",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Predict ``test_csv`` with the weighted ensemble of ``runs``' checkpoints and write a Task 1 submission.

    Files: ``W/exports/<name>.predictions.parquet`` and ``W/exports/<name>.csv``.
    """
    from cxrlt_core.inference.predict import predict

    _refuse_overwrite(workspace, name, overwrite)
    if not runs:
        raise InputError("choose at least one run for the ensemble")
    checkpoints = [checkpoint_path(workspace.run(run), checkpoint) for run in runs]
    missing = [str(c) for c in checkpoints if not c.exists()]
    if missing:
        raise InputError(f"no {checkpoint} checkpoint: {', '.join(missing)}")
    manifest, root = _test_manifest(test_csv, images)
    pred_path = workspace.exports_dir / f"{name}.predictions.parquet"
    out = workspace.exports_dir / f"{name}.csv"
    predict(
        checkpoints, manifest, pred_path, weights=weights, tta=tta, merge=merge, gating_alpha=gating_alpha,
        gating_form=gating_form, calibration=calibration, num_workers=0, progress=progress, show_progress=False,
    )  # fmt: skip
    space = _label_space(test_csv)
    rows, problems = _write_and_validate(pred_path, Path(test_csv), out, 1, space)
    command = ["cxrlt", "predict"]
    for ckpt in checkpoints:
        command += ["--checkpoint", str(ckpt)]
    if weights:
        command += ["--weights", *[str(w) for w in weights]]
    command += ["--labels", str(test_csv), "--images", str(root), "--tta", tta, "--merge", merge]
    command += ["--gating-alpha", str(gating_alpha), "--gating-form", gating_form]
    if calibration:
        command += ["--calibration", str(calibration)]
    command += ["--out", str(pred_path)]
    write = ["cxrlt", "submission", "write", "--pred", str(pred_path), "--task", "1", "--ids", str(test_csv)]
    write += ["--out", str(out)] + (["--label-space", space.name] if space.name in list_label_spaces() else [])
    return ExportResult(pred_path, out, rows, problems, [shlex.join(command), shlex.join(write)])


def export_task2(
    workspace: Workspace,
    model_spec: str,
    prompt_set: str | None,
    test_csv: str | os.PathLike[str],
    name: str,
    images: str | os.PathLike[str] | None = None,
    goiter_spelling: str = "Goiter",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Score ``test_csv`` zero-shot with ``model_spec`` and a saved prompt set; write a Task 2 submission.

    Args:
        prompt_set: a prompt set saved in ``W/prompts`` (its current version), or ``None`` for the set saved with
            the model, else the built-in set for the six unseen findings.
        goiter_spelling: the submission's column spelling (``goiter`` is what the winning code wrote).
    """
    from cxrlt_core.zeroshot.predict import predict_zero_shot
    from cxrlt_core.zeroshot.prompts import PromptStore

    _refuse_overwrite(workspace, name, overwrite)
    space = _label_space(test_csv, goiter_spelling)
    manifest, root = _test_manifest(test_csv, images)
    prompts_path = None
    if prompt_set is not None:
        store = PromptStore(workspace.prompts_dir)
        prompts_path = next(v.path for v in store.versions(prompt_set) if v.current)
    pred_path = workspace.exports_dir / f"{name}.predictions.parquet"
    out = workspace.exports_dir / f"{name}.csv"
    predict_zero_shot(
        model_spec, manifest, pred_path, prompts=prompts_path, cache_dir=workspace.cache_dir, progress=progress,
        label_space=space,
    )  # fmt: skip
    rows, problems = _write_and_validate(pred_path, Path(test_csv), out, 2, space)
    command = ["cxrlt", "zeroshot", "predict", "--model", model_spec]
    if prompts_path is not None:
        command += ["--prompts", str(prompts_path)]
    command += ["--labels", str(test_csv), "--images", str(root), "--cache", str(workspace.cache_dir)]
    command += ["--out", str(pred_path)]
    write = ["cxrlt", "submission", "write", "--pred", str(pred_path), "--task", "2", "--ids", str(test_csv)]
    write += ["--out", str(out), "--goiter-spelling", goiter_spelling]
    return ExportResult(pred_path, out, rows, problems, [shlex.join(command), shlex.join(write)])
