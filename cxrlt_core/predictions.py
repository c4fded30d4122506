"""Predictions files: an id column and one probability column per class, with metadata.

``.parquet`` keeps the metadata (models, weights, TTA set, merge mode, gating, calibration, label space...) as JSON
in the schema metadata under the key ``cxrlt``; ``.csv`` keeps it in a ``<file>.meta.json`` sidecar. Writes are
atomic. Reading checks every cell: a blank, non-numeric, NaN, infinite or out-of-[0, 1] probability is an error
naming the file, the row (CSV: the line number, header = row 1; parquet: 1-based row), the id and the column.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cxrlt_core.atomic import atomic_path, json_safe, write_text
from cxrlt_core.csvsafety import warn_formula_ids
from cxrlt_core.data.manifest import (
    ID_COLUMNS,
    MAX_LISTED,
    Manifest,
    count_problems,
    csv_row,
    find_column,
    id_problems,
    read_csv_table,
)
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import LabelSpace, get_label_space

PARQUET_SUFFIXES = (".parquet", ".pq")
METADATA_KEY = b"cxrlt"
NAN_WORDS = ("nan", "na", "n/a", "null", "none")


@dataclasses.dataclass
class Predictions:
    """Per-image class probabilities.

    Attributes:
        ids: image ids (object array of str).
        scores: float64 (n, C) probabilities in [0, 1].
        classes: class names of the columns (canonical label-space names when read with a label space).
        metadata: free JSON metadata (models, weights, TTA, merge, gating, calibration, label space, ...).
        id_column: name of the id column in the file.
        path: the file it was read from, if any.
    """

    ids: np.ndarray
    scores: np.ndarray
    classes: tuple[str, ...]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    id_column: str = "ImageID"
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "predictions"

    def frame(self) -> pd.DataFrame:
        """The id column and one float column per class."""
        frame = pd.DataFrame(self.scores, columns=list(self.classes))
        frame.insert(0, self.id_column, self.ids)
        return frame


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where a CSV predictions file keeps its metadata: ``<file>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def _dump_metadata(id_column: str, metadata: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps(json_safe({"id_column": id_column, "metadata": dict(metadata or {})}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"predictions metadata cannot be written as JSON: {exc}") from None


def score_problems(
    name: str,
    ids: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    row: Callable[[int], int] = csv_row,
    reported: np.ndarray | None = None,
) -> list[str]:
    """One line per NaN, infinite or out-of-[0, 1] score (capped per kind), naming the row, id and column.

    ``reported`` masks cells already reported otherwise (blank or non-numeric text).
    """
    problems: list[str] = []
    finite = np.isfinite(scores)
    fresh = np.ones(scores.shape, dtype=bool) if reported is None else ~reported
    checks = (
        ("NaN", np.isnan(scores) & fresh),
        ("infinite value", np.isinf(scores)),
        ("value outside [0, 1]", finite & ((scores < 0) | (scores > 1))),
    )
    for kind, mask in checks:
        rows, cols = np.nonzero(mask)
        lines = [
            f"{name}: row {row(i)} (id {ids[i]!r}), column {classes[j]!r}: "
            + ("NaN" if kind == "NaN" else f"{kind} {float(scores[i, j])!r}")
            for i, j in zip(rows[:MAX_LISTED], cols[:MAX_LISTED])
        ]
        if len(rows) > MAX_LISTED:
            lines.append(f"... and {len(rows) - MAX_LISTED} more cells with a {kind}")
        problems += lines
    return problems


_CSV_SPECIAL = re.compile(r'[,"\r\n]|^\s|\s$')


def write_score_csv(
    path: str | os.PathLike[str], id_column: str, ids: np.ndarray, columns: Sequence[str], scores: np.ndarray
) -> None:
    """Write ``id_column`` + one column per class as plain CSV (no index, no quoting), fast.

    Floats are formatted by Arrow's shortest round-trip conversion (``float(text)`` gives the value back exactly),
    about 10x faster than ``DataFrame.to_csv``; names or ids that would need CSV quoting go through pandas instead.
    """
    warn_formula_ids(path, ids)
    names = [id_column, *columns]
    if any(_CSV_SPECIAL.search(str(n)) for n in names) or any(_CSV_SPECIAL.search(str(i)) for i in ids):
        frame = pd.DataFrame(scores, columns=list(columns))
        frame.insert(0, id_column, ids)
        frame.to_csv(path, index=False)
        return
    fields = [pa.array([str(i) for i in ids], type=pa.string())]
    fields += [pc.cast(pa.array(scores[:, j]), pa.string()) for j in range(scores.shape[1])]
    lines = pc.binary_join_element_wise(*fields, ",").to_pylist() if len(ids) else []
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(names) + "\n")
        if lines:
            handle.write("\n".join(lines) + "\n")


def write_predictions(
    path: str | os.PathLike[str],
    ids: Sequence[str] | np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
    id_column: str = "ImageID",
) -> Path:
    """Write predictions atomically as ``.parquet`` (metadata in the schema) or ``.csv`` (metadata sidecar).

    Raises:
        InputError: shapes disagree, a blank or repeated id, or a score that is not a probability.
    """
    path = Path(path)
    ids = np.asarray([str(i) for i in ids], dtype=object)
    scores = np.asarray(scores)
    class_names = [str(c) for c in class_names]
    if scores.ndim != 2 or scores.shape != (len(ids), len(class_names)):
        raise InputError(f"{path}: scores have shape {scores.shape}, expected ({len(ids)}, {len(class_names)})")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if len(set(class_names)) != len(class_names) or id_column in class_names:
        raise InputError(f"{path}: class names repeat or clash with the id column {id_column!r}: {class_names}")
    problems = id_problems(path, ids, id_column, row=lambda i: int(i) + 1)
    problems += score_problems(str(path), ids, scores, class_names, row=lambda i: int(i) + 1)
    if problems:
        raise ValidationError(f"{path}: refusing to write invalid predictions", problems)
    blob = _dump_metadata(id_column, metadata)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        columns = {id_column: pa.array(ids.tolist(), type=pa.string())}
        columns.update({name: pa.array(scores[:, j]) for j, name in enumerate(class_names)})
        table = pa.table(columns)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: blob.encode()})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    elif suffix == ".csv":
        write_text(sidecar_path(path), json.dumps(json.loads(blob), indent=2) + "\n")
        with atomic_path(path) as tmp:
            write_score_csv(tmp, id_column, ids, class_names, scores)
    else:
        raise InputError(f"{path}: predictions must be .parquet or .csv, not {suffix or 'no suffix'!r}")
    return path


def _load_metadata(blob: bytes | str | None, source: str) -> tuple[str | None, dict[str, Any]]:
    if not blob:
        return None, {}
    try:
        stored = json.loads(blob)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: metadata is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(stored, dict):
        raise InputError(f"{source}: metadata must be a JSON object")
    return stored.get("id_column"), dict(stored.get("metadata") or {})


def parse_score_cells(
    name: str, frame: pd.DataFrame, columns: Sequence[str], ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parse text cells to floats; blank or non-numeric cells are problems (``nan``, ``inf`` are checked later).

    Returns:
        ``(scores, reported, problems)``: float64 scores, the mask of cells reported as blank or non-numeric, and
        one line per such cell (capped).
    """
    scores = np.empty((len(frame), len(columns)), dtype=np.float64)
    reported = np.zeros(scores.shape, dtype=bool)
    problems: list[str] = []
    total = 0

    for j, column in enumerate(columns):
        text = frame[column].str.strip()
        try:  # Arrow's cast parses numbers, "nan" and "inf" ~10x faster than to_numeric; it refuses anything else
            scores[:, j] = pc.cast(pa.array(text, type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        values = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
        words_nan = text.str.lower().isin(NAN_WORDS).to_numpy()
        bad = np.isnan(values) & ~words_nan
        values[words_nan] = np.nan
        scores[:, j] = values
        reported[:, j] = bad
        for i in np.flatnonzero(bad)[: max(0, MAX_LISTED - len(problems))]:
            cell = text.iloc[i]
            kind = "blank probability" if cell == "" else f"non-numeric value {cell!r}"
            problems.append(f"{name}: row {csv_row(i)} (id {ids[i]!r}), column {column!r}: {kind}")
        total += int(bad.sum())
    if total > len(problems):
        problems.append(f"... and {total - len(problems)} more non-numeric cells")
    return scores, reported, problems


def read_predictions(path: str | os.PathLike[str], label_space: LabelSpace | str | None = None) -> Predictions:
    """Read and check a predictions file (``.parquet`` or ``.csv``).

    Args:
        path: the file.
        label_space: when given, every class column must name one of its classes (case-insensitive, aliases);
            ``classes`` are then the canonical names.

    Raises:
        InputError: missing file, unknown suffix, no id column, a class outside the label space.
        ValidationError: blank or repeated ids, blank, non-numeric, NaN, infinite or out-of-[0, 1] scores.
    """
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, ".csv"):
        raise InputError(f"{path}: predictions must be .parquet or .csv, not {suffix or 'no suffix'!r}")
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found")
    problems: list[str] = []
    if suffix == ".csv":
        frame = read_csv_table(path, "predictions file")
        sidecar = sidecar_path(path)
        stored_id, metadata = _load_metadata(sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None, name)
        row = csv_row
    else:
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{path}: not a readable parquet file: {' '.join(str(exc).split())}") from None
        stored_id, metadata = _load_metadata((table.schema.metadata or {}).get(METADATA_KEY), name)
        frame = table.to_pandas()

        def row(i: int) -> int:
            return int(i) + 1

    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    id_column = stored_id if stored_id in columns else find_column(columns, ID_COLUMNS)
    if id_column is None:
        raise InputError(f"{path}: no id column; expected one of {', '.join(ID_COLUMNS)} (found {columns[:8]})")
    class_columns = [c for c in columns if c != id_column]
    if not class_columns:
        raise InputError(f"{path}: no class columns besides the id column {id_column!r}")
    ids = frame[id_column].astype("str").str.strip().to_numpy(dtype=object)
    problems += id_problems(path, ids, id_column, row=row)
    if suffix == ".csv":
        scores, reported, cell_problems = parse_score_cells(name, frame, class_columns, ids)
        problems += cell_problems
    else:
        non_numeric = [c for c in class_columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise InputError(f"{path}: columns {non_numeric[:5]} are not numeric")
        scores = frame[class_columns].to_numpy(dtype=np.float64, na_value=np.nan)
        reported = None
    problems += score_problems(name, ids, scores, class_columns, row=row, reported=reported)
    if problems:
        raise ValidationError(f"{path}: {count_problems(problems)}", problems)

    classes = tuple(class_columns)
    if label_space is not None:
        space = get_label_space(label_space) if isinstance(label_space, str) else label_space
        classes = canonical_classes(name, classes, space)
    return Predictions(ids=ids, scores=scores, classes=classes, metadata=metadata, id_column=id_column, path=path)


def canonical_classes(name: str, columns: Sequence[str], space: LabelSpace) -> tuple[str, ...]:
    """The label-space class each prediction column names; an unknown or repeated class is an ``InputError``."""
    resolved = [space.resolve(c) for c in columns]
    unknown = [c for c, r in zip(columns, resolved) if r is None]
    if unknown:
        raise InputError(f"{name}: prediction columns {unknown[:5]} are not classes of label space {space.name!r}")
    seen: dict[str, str] = {}
    for column, canonical in zip(columns, resolved):
        if canonical in seen:
            raise InputError(f"{name}: columns {seen[canonical]!r} and {column!r} both name class {canonical!r}")
        seen[canonical] = column
    return tuple(resolved)  # type: ignore[arg-type]


def _few(values: np.ndarray, k: int = 3) -> str:
    return ", ".join(repr(str(v)) for v in values[:k]) + (", ..." if len(values) > k else "")


def align_to_labels(pred: Predictions, manifest: Manifest) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Match prediction rows to label rows by id (any order) and classes by name.

    Returns:
        ``(scores, labels, class_names)``: both (n_labels, C) in the manifest's row order, for the classes that both
        files hold, in label-space order.

    Raises:
        InputError: an id on one side only (both directions are listed with counts), a prediction class outside the
            manifest's label space, or no shared class.
    """
    space = manifest.label_space
    canonical = canonical_classes(pred.name, pred.classes, space)
    shared = tuple(c for c in manifest.classes if c in canonical)
    if not shared:
        raise InputError(
            f"{pred.name} and {manifest.name} share no class (predictions: {list(pred.classes)[:5]}, "
            f"labels: {list(manifest.classes)[:5]})"
        )
    position = pd.Index(pred.ids).get_indexer(manifest.ids)
    unpredicted = manifest.ids[position < 0]
    unlabelled = pred.ids[pd.Index(manifest.ids).get_indexer(pred.ids) < 0]
    if len(unpredicted) or len(unlabelled):
        parts = []
        if len(unpredicted):
            parts.append(f"{len(unpredicted)} ids in {manifest.name} have no prediction ({_few(unpredicted)})")
        if len(unlabelled):
            parts.append(f"{len(unlabelled)} ids in {pred.name} are not in the labels ({_few(unlabelled)})")
        raise InputError("; ".join(parts))
    pred_cols = [canonical.index(c) for c in shared]
    label_cols = [manifest.classes.index(c) for c in shared]
    return pred.scores[position][:, pred_cols], manifest.labels[:, label_cols], shared
