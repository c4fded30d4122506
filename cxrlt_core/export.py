"""Build challenge submissions from a workspace: Task 1 (ensemble of runs) and Task 2 (zero-shot), validated.

The Export page and scripts call these; each returns the files it wrote and the equivalent CLI commands, so that
what the dashboard did can be reproduced from a terminal.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.export_plan import export_files
from cxrlt_core.inference.ensemble_spec import load_ensemble_spec
from cxrlt_core.inference.predict import predict
from cxrlt_core.labels import LabelSpace, as_label_space, list_label_spaces
from cxrlt_core.pathguard import inside
from cxrlt_core.predictions import Predictions, read_predictions
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.submission import submission_from_predictions, validate_submission, write_submission
from cxrlt_core.workspace import Workspace
from cxrlt_core.workspace_summary import csv_label_space
from cxrlt_core.zeroshot.predict import predict_zero_shot
from cxrlt_core.zeroshot.prompts import PromptStore

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


def _refuse_overwrite(workspace: Workspace, name: str, overwrite: bool) -> None:
    """An export never replaces earlier files silently: an existing name is an error unless ``overwrite``."""
    existing = export_files(workspace, name)
    if existing and not overwrite:
        raise InputError(f"{existing[0]} already exists; choose another export name or allow overwriting it")


def _submission_space(
    pred: Predictions, test_csv: Path, output_names: Mapping[str, str], optional: Mapping[str, str]
) -> LabelSpace:
    """The label space the predictions name (their checkpoints', or their prompt set's), else the test data set's
    (:func:`~cxrlt_core.workspace_summary.csv_label_space`), with ``output_names`` spellings for its classes (and
    the ``optional`` ones for the classes it has)."""
    space = as_label_space(pred.metadata.get("label_space")) or csv_label_space(test_csv)
    output_names = {**{k: v for k, v in optional.items() if space.resolve(k) is not None}, **output_names}
    spellings = {}
    for name, spelling in output_names.items():
        if space.resolve(name) is None:
            raise InputError(f"label space {space.name!r} has no class {name!r} to spell {spelling!r}")
        spellings[space.resolve(name)] = spelling
    return space.with_output_names(spellings)


def _write_and_validate(
    pred_path: Path,
    test_csv: Path,
    out: Path,
    task: int,
    output_names: Mapping[str, str] | None = None,
    optional: Mapping[str, str] | None = None,
) -> tuple[int, list[str], LabelSpace]:
    space = _submission_space(read_predictions(pred_path), test_csv, output_names or {}, optional or {})
    rows = submission_from_predictions(read_predictions(pred_path, label_space=space), test_csv, space, task)
    write_submission(out, rows.ids, rows.scores, space, task, test_ids=rows.ids)
    return len(rows.ids), validate_submission(out, task, test_csv, space, strict_spelling=True), space


def export_task1(
    workspace: Workspace,
    runs: Sequence[str],
    test_csv: str | os.PathLike[str],
    name: str,
    weights: Sequence[float] | None = None,
    checkpoint: str = "best",
    **options: Any,
) -> ExportResult:
    """Predict ``test_csv`` with the weighted ensemble of ``runs``' checkpoints and write a Task 1 submission.

    ``options``: ``overwrite`` (replace an existing export) and :func:`_export_task1`'s (images, tta, merge, gating,
    calibration, progress).
    Files: ``W/exports/<name>.predictions.parquet`` and ``W/exports/<name>.csv``.
    """
    _refuse_overwrite(workspace, name, bool(options.pop("overwrite", False)))
    if not runs:
        raise InputError("choose at least one run for the ensemble")
    checkpoints = [checkpoint_path(workspace.run(run), checkpoint) for run in runs]
    missing = [str(c) for c in checkpoints if not c.exists()]
    if missing:
        raise InputError(f"no {checkpoint} checkpoint: {', '.join(missing)}")
    source = [arg for ckpt in checkpoints for arg in ("--checkpoint", str(ckpt))]
    if weights:
        source += ["--weights", *[str(w) for w in weights]]
    return _export_task1(workspace, checkpoints, weights, source, test_csv, name, **options)


def export_task1_ensemble(
    workspace: Workspace,
    spec: str | os.PathLike[str],
    test_csv: str | os.PathLike[str],
    name: str,
    allow_outside: bool = False,
    **options: Any,
) -> ExportResult:
    """Predict ``test_csv`` with the members of an ensemble spec file (``cxrlt_core.inference.ensemble_spec``: each
    member at its own input size, with its weight) and write a Task 1 submission.

    Unless ``allow_outside``, every member's checkpoint must lie inside the workspace (the dashboard reads nothing
    else without being told). ``options`` as :func:`export_task1`'s.
    """
    _refuse_overwrite(workspace, name, bool(options.pop("overwrite", False)))
    loaded = load_ensemble_spec(spec, workspace=workspace.root)
    if not allow_outside:
        outside = [m.checkpoint for m in loaded.members if not inside(m.checkpoint, workspace.root)]
        if outside:
            raise InputError(f"{spec}: checkpoint {outside[0]} is outside the workspace {workspace.root}")
    source = ["--ensemble", str(spec)]
    return _export_task1(workspace, loaded.checkpoints, loaded.weights, source, test_csv, name, **options)


def _export_task1(
    workspace: Workspace,
    checkpoints: Sequence[Path],
    weights: Sequence[float] | None,
    source: list[str],
    test_csv: str | os.PathLike[str],
    name: str,
    images: str | os.PathLike[str] | None = None,
    tta: str = "medium",
    merge: str = "mean",
    gating_alpha: float = 0.5,
    gating_form: str = "power",
    calibration: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Predict, write and validate (the callers have refused an existing ``name`` unless told to overwrite);
    ``source`` is the CLI's way of naming the same checkpoints and weights."""
    manifest, root = _test_manifest(test_csv, images)
    pred_path = workspace.exports_dir / f"{name}.predictions.parquet"
    out = workspace.exports_dir / f"{name}.csv"
    predict(
        list(checkpoints), manifest, pred_path, weights=weights, tta=tta, merge=merge, gating_alpha=gating_alpha,
        gating_form=gating_form, calibration=calibration, num_workers=0, progress=progress, show_progress=False,
    )  # fmt: skip
    rows, problems, space = _write_and_validate(pred_path, Path(test_csv), out, 1)
    command = ["cxrlt", "predict", *source]
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
    goiter_spelling: str | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
    output_names: Mapping[str, str] | None = None,
) -> ExportResult:
    """Score ``test_csv`` zero-shot with ``model_spec`` and a saved prompt set; write a Task 2 submission.

    Args:
        prompt_set: a prompt set saved in ``W/prompts`` (its current version), or ``None`` for the set saved with
            the model, else the built-in set for the six unseen findings.
        output_names: submission column spellings (class → spelling) over the label space's own.
        goiter_spelling: the spelling of ``Goiter`` when the label space has that class (``goiter`` is what the
            CXR-LT 2026 winning code wrote); ignored otherwise.

    The label space is the test data set's when it names unseen classes, else the prompt set's.
    """
    _refuse_overwrite(workspace, name, overwrite)
    try:
        data_space: LabelSpace | None = csv_label_space(test_csv)
    except InputError:  # a test CSV of ids only, in a folder that names no space: the prompt set's
        data_space = None
    space = data_space if data_space is not None and data_space.unseen else None
    optional = {"Goiter": goiter_spelling} if goiter_spelling is not None else {}
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
    rows, problems, space = _write_and_validate(pred_path, Path(test_csv), out, 2, output_names, optional)
    spellings = {name: space.output_name(name) for name in space.unseen if space.output_name(name) != name}
    command = ["cxrlt", "zeroshot", "predict", "--model", model_spec]
    if prompts_path is not None:
        command += ["--prompts", str(prompts_path)]
    command += ["--labels", str(test_csv), "--images", str(root), "--cache", str(workspace.cache_dir)]
    command += ["--out", str(pred_path)]
    write = ["cxrlt", "submission", "write", "--pred", str(pred_path), "--task", "2", "--ids", str(test_csv)]
    write += ["--out", str(out)] + (["--label-space", space.name] if space.name in list_label_spaces() else [])
    for cls, spelling in spellings.items():
        write += ["--output-name", f"{cls}={spelling}"]
    return ExportResult(pred_path, out, rows, problems, [shlex.join(command), shlex.join(write)])
