"""Predictions streamed to disk in chunks, in the format of :mod:`cxrlt_core.predictions`, renamed into place at the
end.

``.parquet``: a ``pyarrow.parquet.ParquetWriter`` writes one row group per chunk; the metadata JSON, known only at
the end, is added to the footer's key-value metadata under ``cxrlt`` when the file is closed (written without the
serialised Arrow schema, so readers take that key-value metadata as the schema metadata). ``.csv``: rows are
appended to a temporary file; the metadata goes to the ``<file>.meta.json`` sidecar.
Memory stays flat in the number of images either way.

For ``torchrun``, every rank writes a part (:class:`PartWriter`, its global row numbers included) and rank 0 merges
the parts in input order (:func:`merge_parts`), streaming.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cxrlt_core.atomic import atomic_path, json_safe, write_text
from cxrlt_core.csvsafety import warn_formula_ids
from cxrlt_core.errors import InputError
from cxrlt_core.predictions import METADATA_KEY, PARQUET_SUFFIXES, sidecar_path

__all__ = ["PartWriter", "PredictionWriter", "failed_path", "merge_parts", "read_part", "write_failed"]

ROW_COLUMN = "__row__"


def failed_path(path: str | os.PathLike[str]) -> Path:
    """Where the images that could not be read are listed: ``<file>.failed.csv``."""
    path = Path(path)
    return path.with_name(path.name + ".failed.csv")


def _metadata_blob(id_column: str, metadata: Mapping[str, Any]) -> str:
    try:
        return json.dumps(json_safe({"id_column": id_column, "metadata": dict(metadata)}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"predictions metadata cannot be written as JSON: {exc}") from None


def _check_scores(path: Path, ids: Sequence[str], scores: np.ndarray, classes: Sequence[str]) -> None:
    bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"{path}: image {ids[i]!r}, class {classes[j]!r}: score {scores[i, j]!r} is not a probability "
            f"({int(bad.sum())} such cells); refusing to write"
        )


class PredictionWriter:
    """Append (ids, scores) chunks; ``close(metadata)`` writes the metadata and renames the file into place.

    Args:
        path: ``.parquet``/``.pq`` or ``.csv``.
        classes: the class columns, in order.
        id_column: name of the id column.
        binary: the scores are 0/1 decisions, written as integers (uint8 in parquet).
    """

    def __init__(
        self, path: str | os.PathLike[str], classes: Sequence[str], id_column: str = "ImageID", binary: bool = False
    ):
        self.path = Path(path)
        self.binary = binary
        self.classes = [str(c) for c in classes]
        self.id_column = id_column
        self.rows = 0
        suffix = self.path.suffix.lower()
        if suffix not in (*PARQUET_SUFFIXES, ".csv"):
            raise InputError(f"{self.path}: predictions must be .parquet or .csv, not {suffix or 'no suffix'!r}")
        if len(set(self.classes)) != len(self.classes) or id_column in self.classes:
            raise InputError(f"{self.path}: class names repeat or clash with the id column: {self.classes}")
        self.parquet = suffix in PARQUET_SUFFIXES
        # The ExitStack holds the atomic_path context open across calls: closing it renames the file into place,
        # exiting it with an exception deletes the temporary file.
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._closed = False
        try:
            self._open()
        except BaseException as exc:  # a full or read-only disk already at the header: drop the temporary
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                raise _naming(exc, self.path) from exc
            raise

    def _open(self) -> None:
        if self.parquet:
            kind = pa.uint8() if self.binary else pa.float64()
            self._schema = pa.schema([(self.id_column, pa.string())] + [(c, kind) for c in self.classes])
            self._writer = pq.ParquetWriter(self._tmp, self._schema, store_schema=False)
        else:
            self._handle = self._stack.enter_context(open(self._tmp, "w", newline="", encoding="utf-8"))  # noqa: SIM115
            csv.writer(self._handle).writerow([self.id_column, *self.classes])

    def write(self, ids: Sequence[str], scores: np.ndarray) -> None:
        """Append rows; scores must be probabilities (a NaN or out-of-range score is an error naming the image)."""
        scores = np.asarray(scores, dtype=np.float64)
        ids = [str(i) for i in ids]
        if scores.shape != (len(ids), len(self.classes)):
            raise InputError(f"{self.path}: chunk scores {scores.shape}, expected ({len(ids)}, {len(self.classes)})")
        if not ids:
            return
        _check_scores(self.path, ids, scores, self.classes)
        try:
            self._append(ids, scores)
        except OSError as exc:  # a full or failing disk: name the target, not the temporary
            self.abort(exc)
            raise _naming(exc, self.path) from exc
        self.rows += len(ids)

    def _append(self, ids: list[str], scores: np.ndarray) -> None:
        if not self.parquet:  # a CSV may be opened in a spreadsheet
            warn_formula_ids(self.path, ids, offset=self.rows)
        if self.parquet:
            values = scores.astype(np.uint8) if self.binary else scores
            arrays = [pa.array(ids, type=pa.string())] + [pa.array(values[:, j]) for j in range(values.shape[1])]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        else:
            writer = csv.writer(self._handle)
            # repr() round-trips float64 exactly, as pandas' to_csv does.
            rows = scores.astype(np.uint8).tolist() if self.binary else [map(repr, row) for row in scores.tolist()]
            writer.writerows([i, *row] for i, row in zip(ids, rows))

    def close(self, metadata: Mapping[str, Any] | None = None) -> Path:
        """Finish the file with ``metadata`` and rename it into place; returns the path."""
        blob = _metadata_blob(self.id_column, metadata or {})
        try:
            if self.parquet:
                if self.rows == 0:
                    self._writer.write_table(self._schema.empty_table())
                self._writer.add_key_value_metadata({METADATA_KEY: blob.encode()})
                self._writer.close()
            else:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                write_text(sidecar_path(self.path), json.dumps(json.loads(blob), indent=2) + "\n")
            self._stack.close()
        except BaseException as exc:
            self.abort(exc)
            if isinstance(exc, OSError):
                raise _naming(exc, self.path) from exc
            raise
        self._closed = True
        return self.path

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the temporary files (the target is left as it was)."""
        if self._closed:
            return
        self._closed = True
        if self.parquet:
            with contextlib.suppress(Exception):
                self._writer.close()
        error = exc or RuntimeError("prediction writing aborted")
        with contextlib.suppress(BaseException):
            self._stack.__exit__(type(error), error, error.__traceback__)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` when it names no file or only a temporary (``.*.tmp``)."""
    if exc.filename is not None and not str(exc.filename).endswith(".tmp"):
        return exc
    return OSError(exc.errno, exc.strerror, os.fspath(path)) if exc.errno else exc


def write_failed(path: str | os.PathLike[str], failed: Sequence[tuple[int, str, str, str]]) -> Path | None:
    """Write ``<path>.failed.csv``, or remove a stale one when nothing failed.

    Args:
        path: the predictions file.
        failed: (0-based data row, id, image file, error) per unreadable image; the file's ``row`` column is the
            spreadsheet row of the input CSV (header = row 1), as error messages name rows.
    """
    target = failed_path(path)
    if not failed:
        target.unlink(missing_ok=True)
        return None
    with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "ImageID", "image", "error"])
        writer.writerows((row + 2, image_id, image, error) for row, image_id, image, error in sorted(failed))
    return target


class PartWriter:
    """One rank's rows for a later :func:`merge_parts`: CSV with the global row number, id, and exact scores."""

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._writer = csv.writer(self._handle)
        self._writer.writerow([ROW_COLUMN, "id", *classes])

    def write(self, rows: Sequence[int], ids: Sequence[str], scores: np.ndarray) -> None:
        self._writer.writerows([r, i, *map(repr, s)] for r, i, s in zip(rows, ids, np.asarray(scores).tolist()))

    def close(self) -> None:
        self._handle.close()


def read_part(path: str | os.PathLike[str]) -> Iterator[tuple[int, str, list[float]]]:
    """Rows of a part file as (row, id, scores), in the order written."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for record in reader:
            yield int(record[0]), record[1], [float(v) for v in record[2:]]


def merge_parts(parts: Sequence[str | os.PathLike[str]], writer: PredictionWriter, chunk_size: int = 4096) -> int:
    """Stream every part into ``writer`` in global row order (a k-way merge; each part is already sorted)."""
    merged = heapq.merge(*(read_part(p) for p in parts), key=lambda record: record[0])
    ids: list[str] = []
    scores: list[list[float]] = []
    total = 0
    for _, image_id, values in merged:
        ids.append(image_id)
        scores.append(values)
        if len(ids) >= chunk_size:
            writer.write(ids, np.asarray(scores))
            total += len(ids)
            ids, scores = [], []
    if ids:
        writer.write(ids, np.asarray(scores))
        total += len(ids)
    return total
