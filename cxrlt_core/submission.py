"""Challenge submission files: write them so they cannot be rejected, and validate any file before upload.

CXR-LT 2026: Task 1 is ``ImageID`` + the 30 in-distribution classes, Task 2 is ``ImageID`` + the 6 unseen classes,
in label-space order, spelled as the label space's output names (e.g. ``goiter``), one row per test image (no
missing, repeated or extra id), finite probabilities in [0, 1], no index column. A write goes to a temporary file
that is validated before it is renamed into place, so an invalid submission is never left where an upload expects
it. Missing prediction rows are an error, never filled with zeros (the winning code's export silently dropped rows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from cxrlt_core.atomic import atomic_path
from cxrlt_core.data.manifest import ID_COLUMNS, find_column, id_problems, read_csv_table
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import LabelSpace, get_label_space
from cxrlt_core.predictions import (
    Predictions,
    canonical_classes,
    parse_score_cells,
    score_problems,
    write_score_csv,
)

ID_COLUMN = "ImageID"
TASKS = {1: "id", 2: "unseen"}
INDEX_NAMES = ("", "index", "unnamed: 0")
# Spellings accepted besides a class's own name and its output name: the winning CXR-LT 2026 code wrote "goiter".
EXTRA_SPELLINGS = {"Goiter": ("goiter",)}


def _space(label_space: LabelSpace | str) -> LabelSpace:
    return get_label_space(label_space) if isinstance(label_space, str) else label_space


def task_classes(label_space: LabelSpace | str, task: int) -> tuple[str, ...]:
    """Canonical classes of a task: 1 → in-distribution, 2 → unseen, in label-space order."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose 1 (in-distribution classes) or 2 (unseen classes)")
    space = _space(label_space)
    classes = space.subset(TASKS[task])
    if not classes:
        raise InputError(f"label space {space.name!r} has no classes for task {task}")
    return classes


def submission_columns(label_space: LabelSpace | str, task: int) -> list[str]:
    """The exact header of a submission: ``ImageID`` then the task's classes in their output spelling."""
    space = _space(label_space)
    return [ID_COLUMN, *(space.output_name(c) for c in task_classes(space, task))]


def _few(values: Sequence[str] | np.ndarray, k: int = 3) -> str:
    values = list(values)
    return ", ".join(repr(str(v)) for v in values[:k]) + (", ..." if len(values) > k else "")


def load_test_ids(ids: str | os.PathLike[str] | Sequence[str] | np.ndarray) -> np.ndarray:
    """Test ids from a CSV (its ``ImageID``-like column) or from a sequence; blank or repeated ids are an error."""
    if isinstance(ids, (str, os.PathLike)):
        path = Path(ids)
        frame = read_csv_table(path, "test ids file")
        column = find_column(list(frame.columns), ID_COLUMNS)
        if column is None:
            raise InputError(f"{path}: no id column; expected one of {', '.join(ID_COLUMNS)}")
        values = frame[column].str.strip().to_numpy(dtype=object)
        problems = id_problems(path, values, column)
        if problems:
            raise ValidationError(f"{path}: bad test ids", problems)
        return values
    values = np.asarray([str(i).strip() for i in ids], dtype=object)
    problems = id_problems(Path("test ids"), values, ID_COLUMN, row=lambda i: int(i) + 1)
    if problems:
        raise ValidationError("bad test ids", problems)
    return values


def _header_problems(name: str, header: list[str], space: LabelSpace, task: int, strict_spelling: bool) -> list[str]:
    expected = task_classes(space, task)
    problems: list[str] = []
    if header[0].strip().lower() in INDEX_NAMES:
        problems.append(f"{name}: column 1 {header[0]!r} looks like an index column (write with index=False)")
    if ID_COLUMN not in header:
        problems.append(f"{name}: no {ID_COLUMN!r} column")
    elif header[0] != ID_COLUMN:
        problems.append(f"{name}: {ID_COLUMN!r} must be column 1, it is column {header.index(ID_COLUMN) + 1}")
    found: list[str] = []
    for position, column in enumerate(header, start=1):
        if column == ID_COLUMN or (position == 1 and column.strip().lower() in INDEX_NAMES):
            continue
        canonical = space.resolve(column)
        if canonical is None or canonical not in expected:
            why = (
                f"is not a class of task {task} (misspelt or extra column?)"
                if canonical is None
                else f"is a class of the other task, not of task {task}"
            )
            problems.append(f"{name}: column {position} {column!r} {why}")
        elif canonical in found:
            problems.append(f"{name}: column {position} {column!r} repeats class {canonical!r}")
        else:
            spellings = {space.output_name(canonical)}
            if not strict_spelling:
                aliases = {alias for alias, target in space.aliases.items() if target == canonical}
                spellings |= {canonical, *aliases, *EXTRA_SPELLINGS.get(canonical, ())}
            if column not in spellings:
                problems.append(
                    f"{name}: column {position} {column!r} should be spelled {space.output_name(canonical)!r}"
                )
            found.append(canonical)
    missing = [space.output_name(c) for c in expected if c not in found]
    if missing:
        problems.append(f"{name}: {len(missing)} class columns missing: {_few(missing, 6)}")
    elif found != list(expected):
        first = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
        problems.append(
            f"{name}: class columns out of label-space order from column {first + 2}: "
            f"expected {space.output_name(expected[first])!r}, found {space.output_name(found[first])!r}"
        )
    return problems


def validate_submission(
    path: str | os.PathLike[str],
    task: int,
    ids: str | os.PathLike[str] | Sequence[str] | np.ndarray,
    label_space: LabelSpace | str,
    strict_spelling: bool = False,
) -> list[str]:
    """Every problem of a submission file, one line each; an empty list means the file is valid.

    Args:
        path: the submission CSV.
        task: 1 (in-distribution classes) or 2 (unseen classes).
        ids: the test ids: a CSV with an ``ImageID`` column, or a sequence of ids.
        label_space: the label space (name or object) giving classes, order and output spellings.
        strict_spelling: require the label space's output spelling; by default the canonical name, the label
            space's aliases and ``EXTRA_SPELLINGS`` pass too (``Goiter`` or ``goiter``). Other casings are reported
            (the challenge's column names are case-exact), and the order is always checked.

    Raises:
        InputError: the test ids themselves are unusable (missing file, no id column, repeated ids).
    """
    space = _space(label_space)
    test_ids = load_test_ids(ids)
    name = str(path)
    try:
        frame = read_csv_table(path, "submission file")
    except InputError as exc:
        return [str(exc)]
    header = list(frame.columns)
    problems = _header_problems(name, header, space, task, strict_spelling)
    if ID_COLUMN not in header:
        return problems
    sub_ids = frame[ID_COLUMN].str.strip().to_numpy(dtype=object)
    problems += id_problems(Path(name), sub_ids, ID_COLUMN)
    unique_sub = pd.unique(sub_ids)
    missing = test_ids[pd.Index(unique_sub).get_indexer(test_ids) < 0]
    extra = unique_sub[pd.Index(test_ids).get_indexer(unique_sub) < 0]
    extra = extra[extra != ""]
    if len(missing):
        problems.append(f"{name}: {len(missing)} test ids have no row ({_few(missing)})")
    if len(extra):
        problems.append(f"{name}: {len(extra)} rows have an id that is not a test id ({_few(extra)})")
    class_columns = [
        c for i, c in enumerate(header) if c != ID_COLUMN and not (i == 0 and c.strip().lower() in INDEX_NAMES)
    ]
    class_columns = [c for c in class_columns if space.resolve(c) is not None]
    if class_columns:
        scores, reported, cell_problems = parse_score_cells(name, frame, class_columns, sub_ids)
        problems += cell_problems + score_problems(name, sub_ids, scores, class_columns, reported=reported)
    return problems


def write_submission(
    path: str | os.PathLike[str],
    ids: Sequence[str] | np.ndarray,
    scores: np.ndarray,
    label_space: LabelSpace | str,
    task: int = 1,
    test_ids: str | os.PathLike[str] | Sequence[str] | np.ndarray | None = None,
) -> Path:
    """Write a submission CSV atomically, validated before it is renamed into place.

    Args:
        path: the ``.csv`` to write.
        ids: one id per row of ``scores``.
        scores: (n, C) probabilities for the task's classes in label-space order.
        label_space: its output names give the column spelling (see ``LabelSpace.with_output_names``).
        task: 1 or 2.
        test_ids: the ids the file must hold exactly (default: ``ids``).

    Raises:
        InputError: wrong shape or suffix; ValidationError: the file would be invalid (nothing is written).
    """
    path = Path(path)
    space = _space(label_space)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: a submission is a .csv file")
    columns = submission_columns(space, task)
    ids = np.asarray([str(i) for i in ids], dtype=object)
    scores = np.asarray(scores)
    if scores.shape != (len(ids), len(columns) - 1):
        raise InputError(
            f"{path}: scores have shape {scores.shape}, task {task} needs ({len(ids)}, {len(columns) - 1})"
        )
    with atomic_path(path) as tmp:
        write_score_csv(tmp, ID_COLUMN, ids, columns[1:], scores)
        problems = validate_submission(tmp, task, ids if test_ids is None else test_ids, space, strict_spelling=True)
        if problems:
            problems = [p.replace(str(tmp), str(path)) for p in problems]
            raise ValidationError(f"{path}: refusing to write an invalid submission", problems)
    return path


class SubmissionRows(NamedTuple):
    """Rows ready for :func:`write_submission`: test ids in test order and their task scores."""

    ids: np.ndarray
    scores: np.ndarray
    classes: tuple[str, ...]
    n_ignored: int  # prediction rows whose id is not a test id (dropped)


def submission_from_predictions(
    pred: Predictions,
    test_ids: str | os.PathLike[str] | Sequence[str] | np.ndarray,
    label_space: LabelSpace | str,
    task: int = 1,
) -> SubmissionRows:
    """Select and order the task's classes and the test rows from predictions.

    Prediction rows for ids outside the test set are dropped (counted in ``n_ignored``); a test id without a
    prediction, or a task class without a column, is an ``InputError``: rows are never zero-filled.
    """
    space = _space(label_space)
    wanted = task_classes(space, task)
    test = load_test_ids(test_ids)
    canonical = canonical_classes(pred.name, pred.classes, space)
    absent = [c for c in wanted if c not in canonical]
    if absent:
        raise InputError(f"{pred.name}: no column for {len(absent)} task {task} classes: {_few(absent, 6)}")
    position = pd.Index(pred.ids).get_indexer(test)
    if (position < 0).any():
        lost = test[position < 0]
        raise InputError(
            f"{pred.name}: {len(lost)} of {len(test)} test ids have no prediction ({_few(lost)}); "
            "a submission is never zero-filled"
        )
    columns = [canonical.index(c) for c in wanted]
    return SubmissionRows(
        ids=test,
        scores=pred.scores[position][:, columns],
        classes=wanted,
        n_ignored=len(pred.ids) - len(test),
    )
