"""Manifests: a labels CSV (+ image folder) read into ids, patients, metadata and a float label matrix.

Label cells: ``1``/``1.0`` positive, ``0``/``0.0`` negative, blank unknown (NaN, masked out of losses and metrics),
``-1``/``-1.0`` uncertain, mapped by a policy: ``ignore`` → NaN, ``zero`` → 0, ``one`` → 1 (U-Ignore, U-Zeros and
U-Ones of CheXpert, Irvin et al., AAAI 2019). Any other cell is an error naming the file, the row (the CSV line
number, header = row 1, as a spreadsheet shows it) and the column. Every column is read as text first, so that a
``PatientID`` stored as ``1234.0`` stays that string and two patients are never merged by float parsing.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import gzip
import json
import lzma
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt_core.csvsafety import delimiter_problem
from cxrlt_core.data.confine import RootGuard, id_escape
from cxrlt_core.data.metadata import canonical_metadata
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import (
    DEFAULT_META_COLUMNS,
    LABEL_SPACES,
    LabelSpace,
    as_label_space,
    fold_name,
    get_label_space,
    label_space_from_columns,
)

ID_COLUMNS = ("ImageID", "image", "Image Index", "Path", "dicom_id")
PATIENT_COLUMNS = ("PatientID", "Patient ID", "subject_id")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm")
UNCERTAIN_POLICIES = {"ignore": np.nan, "zero": 0.0, "one": 1.0}
POSITIVE_CELLS = ("1", "1.0")
NEGATIVE_CELLS = ("0", "0.0")
UNCERTAIN_CELLS = ("-1", "-1.0")
MAX_LISTED = 20  # problems listed per kind; the rest are counted


def csv_row(index: int | np.integer) -> int:
    """The CSV line (spreadsheet row) of 0-based data row ``index``: the header is row 1."""
    return int(index) + 2


def read_csv_table(path: str | os.PathLike[str], what: str = "labels file") -> pd.DataFrame:
    """Read a CSV (optionally compressed) with every cell as text, exactly as written.

    Blank cells stay ``""`` (no NA guessing: ``"nan"``, ``"NA"`` are kept as text for the caller to judge).

    Raises:
        InputError: missing file, empty file, duplicate column names, rows with the wrong number of fields,
            or a file that is not UTF-8 CSV.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if not path.is_file():
        raise InputError(f"{path}: {what} is not a file")
    options = {"header": None, "dtype": str, "keep_default_na": False, "na_filter": False}
    try:
        # pyarrow parses ~4x faster; the C engine reads what it refuses (quoted newlines) and words errors by line.
        raw = pd.read_csv(path, engine="pyarrow", **{k: v for k, v in options.items() if k != "na_filter"})
    except Exception:
        try:
            raw = pd.read_csv(path, engine="c", encoding="utf-8-sig", **options)
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: empty file, no CSV header") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
            detail = " ".join(str(exc).split())
            raise InputError(f"{path}: not a readable CSV {what}: {detail}") from None
        # The C engine pads short rows with blanks, which would read as unknown labels: find them.
        _check_field_counts(path, raw.shape[1])
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise InputError(f"{path}: empty file, no CSV header")
    header = [str(h).lstrip("\ufeff").strip() for h in raw.iloc[0].tolist()]
    if len(header) == 1:
        problem = delimiter_problem(header[0])
        if problem:
            raise InputError(f"{path}: {problem}")
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise InputError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {position})")
        seen[name] = position
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = header
    return frame


def _check_field_counts(path: Path, n_fields: int) -> None:
    """Raise on the first row with fewer fields than the header (slow path, only after pyarrow refused the file)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        for record in reader:
            if record and len(record) < n_fields:
                raise InputError(
                    f"{path}: row {reader.line_num} has {len(record)} fields, the header has {n_fields} (truncated?)"
                )


def find_column(columns: Sequence[str], candidates: Iterable[str]) -> str | None:
    """The first column named like one of ``candidates``: exact spelling first, then ignoring case."""
    candidates = tuple(candidates)
    for candidate in candidates:
        if candidate in columns:
            return candidate
    folded = {fold_name(c): c for c in columns}
    for candidate in candidates:
        if fold_name(candidate) in folded:
            return folded[fold_name(candidate)]
    return None


def resolve_image(root: Path, image_id: str) -> Path:
    """``root / image_id``; an id without a known image extension also tries ``.png``, ``.jpg``, ``.jpeg``, ``.dcm``."""
    path = root / image_id
    if path.suffix.lower() in IMAGE_EXTENSIONS or path.exists():
        return path
    for extension in IMAGE_EXTENSIONS:
        # Append rather than with_suffix: DICOM UIDs used as ids contain dots.
        candidate = path.with_name(path.name + extension)
        if candidate.exists():
            return candidate
    return path


@dataclasses.dataclass
class Manifest:
    """A data set's labels: ids, patients and metadata aligned row for row with a float label matrix.

    Attributes:
        path: the CSV it was read from (``None`` when built in memory).
        image_root: folder the ids are relative to (``None``: no images attached).
        label_space: the label space the class columns were matched against.
        ids: image ids as strings (object array), one per row.
        patients: patient ids as strings, ``None`` where blank; ``None`` when the CSV has no patient column.
        meta: every non-class column as text, aligned with ``ids``.
        labels: float32 (n, C); 1 positive, 0 negative, NaN unknown.
        classes: the label space's classes present as columns, in label-space order (the columns of ``labels``).
        missing_classes: label-space classes with no column.
        extra_columns: columns that are neither classes nor known metadata.
        id_column: name of the id column.
        patient_column: name of the patient column, or ``None``.
        metadata_columns: canonical metadata field -> column, overriding the aliases (see :meth:`metadata`).
    """

    path: Path | None
    image_root: Path | None
    label_space: LabelSpace
    ids: np.ndarray
    patients: np.ndarray | None
    meta: pd.DataFrame
    labels: np.ndarray
    classes: tuple[str, ...]
    missing_classes: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    id_column: str = "ImageID"
    patient_column: str | None = None
    metadata_columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    _guard: RootGuard | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "manifest"

    def image_path(self, i: int) -> Path:
        """The image file of row ``i`` (see :func:`resolve_image`)."""
        if self.image_root is None:
            raise InputError(f"{self.name}: no image folder given, cannot locate image {self.ids[i]!r}")
        image_id = str(self.ids[i])
        reason = id_escape(image_id)
        if reason is None:
            if self._guard is None or self._guard.root != self.image_root:
                self._guard = RootGuard(self.image_root)
            path = resolve_image(self.image_root, image_id)
            reason = self._guard.escape(path)
        if reason:
            raise InputError(f"{self.name}: image id {image_id!r} {reason}; not opened")
        return path

    def subset(self, indices: Sequence[int] | np.ndarray) -> Manifest:
        """The rows ``indices`` (integer positions or a boolean mask), in that order."""
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        return dataclasses.replace(
            self,
            ids=self.ids[indices],
            patients=None if self.patients is None else self.patients[indices],
            meta=self.meta.iloc[indices].reset_index(drop=True),
            labels=self.labels[indices],
        )

    def metadata(self, column_map: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Canonical ``sex, age, view, site, study`` per row (``cxrlt_core.data.metadata``), missing where absent.

        ``column_map`` (field -> column) overrides both the aliases and the map given to :func:`read_manifest`.
        """
        try:
            return canonical_metadata(self.meta, {**self.metadata_columns, **(column_map or {})})
        except InputError as exc:
            raise InputError(f"{self.name}: {exc}") from None

    def label_frame(self) -> pd.DataFrame:
        """The id column and one float column per class (NaN unknown), in label-space order."""
        frame = pd.DataFrame(self.labels, columns=list(self.classes))
        frame.insert(0, self.id_column, self.ids)
        return frame

    def positives(self) -> dict[str, int]:
        """Number of positive images per class."""
        return {c: int(n) for c, n in zip(self.classes, np.nansum(self.labels, axis=0))}


def parse_label_cells(
    cells: Sequence[str] | np.ndarray | pd.Series, uncertain: str = "ignore"
) -> tuple[np.ndarray, np.ndarray]:
    """Map one column of label cells (text) to floats, vectorised (hash look-ups, no Python loop per cell).

    Returns:
        ``(values, bad)``: float32 values (NaN unknown) and a boolean mask of cells that are not a label.
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise InputError(
            f"unknown uncertain-label policy {uncertain!r}; choose one of: {', '.join(UNCERTAIN_POLICIES)}"
        )
    text = pd.Series(cells, dtype="str").str.strip()
    positive = text.isin(POSITIVE_CELLS).to_numpy()
    negative = text.isin(NEGATIVE_CELLS).to_numpy()
    unsure = text.isin(UNCERTAIN_CELLS).to_numpy()
    blank = (text == "").to_numpy()
    values = np.full(len(text), np.nan, dtype=np.float32)
    values[positive] = 1.0
    values[negative] = 0.0
    values[unsure] = UNCERTAIN_POLICIES[uncertain]
    return values, ~(positive | negative | unsure | blank)


def _capped(lines: list[str], total: int, kind: str) -> list[str]:
    if total > len(lines):
        lines.append(f"... and {total - len(lines)} more {kind}")
    return lines


def count_problems(lines: Sequence[str]) -> str:
    """``"N problem(s)"`` for a capped problem list: ``... and K more`` lines count K, ``hint:`` lines none."""
    total = 0
    for line in lines:
        if line.startswith("hint: "):
            continue
        more = re.match(r"\.\.\. and (\d+) more ", line)
        total += int(more.group(1)) if more else 1
    return f"{total} problem" + ("" if total == 1 else "s")


#: A data set's description beside its CSVs; its ``label_space`` (``LabelSpace.to_dict()``) names the data's space.
DATASET_FILE = "dataset.json"


def folder_label_space(folder: str | os.PathLike[str], from_headers: bool = False) -> LabelSpace | None:
    """The label space of the data set in ``folder``.

    Order of evidence: the ``label_space`` recorded in ``<folder>/dataset.json`` (a name or a full description, as
    the demo generator writes it); else, with ``from_headers``, the CSV whose header names the most classes, matched
    to a registered space when it has exactly that space's classes, else a space named after the folder with the
    header's classes; else ``None``.

    Raises:
        InputError: ``dataset.json`` cannot be read; with ``from_headers``, no CSV in the folder has a class column.
    """
    folder = Path(folder)
    described = folder / DATASET_FILE
    if described.is_file():
        try:
            data = json.loads(described.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{described}: not a readable data-set description ({exc})") from None
        stored = data.get("label_space") if isinstance(data, dict) else None
        if isinstance(stored, (dict, str)):
            return as_label_space(stored)
    if not from_headers:
        return None
    best: LabelSpace | None = None
    for path in sorted(folder.glob("*.csv")):
        try:
            space = label_space_from_columns(_csv_header(path), name=folder.name)
        except InputError:
            continue
        if best is None or space.num_classes > best.num_classes:
            best = space
    if best is None:
        raise InputError(f"{folder}: no CSV with class columns, so its label space is unknown")
    return _registered_match(best)


def _csv_header(path: Path) -> list[str]:
    """The first row of a CSV (``[]`` when it cannot be read)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _registered_match(space: LabelSpace) -> LabelSpace:
    """The registered space with exactly these classes (any spelling it accepts), else ``space`` itself."""
    for name in LABEL_SPACES.names():
        known = LABEL_SPACES.get(name)
        resolved = {known.resolve(c) for c in space.classes}
        if None not in resolved and resolved == set(known.classes):
            return known
    return space


def _resolve_label_space(
    label_space: LabelSpace | str | None, header: list[str], skip: set[str], name: str, folder: Path
) -> LabelSpace:
    if isinstance(label_space, LabelSpace):
        return label_space
    if isinstance(label_space, str):
        return get_label_space(label_space)
    described = folder_label_space(folder)
    if described is not None:
        return described
    candidates = [c for c in header if c not in skip]
    try:
        return label_space_from_columns(candidates, name=name)
    except InputError:
        return LabelSpace(name, ())


def _id_column(path: Path, header: list[str], id_column: str | None) -> str:
    """The id column: the one named, else the first of :data:`ID_COLUMNS` in the header."""
    if id_column is None:
        found = find_column(header, ID_COLUMNS)
        if found is None:
            raise InputError(f"{path}: no id column; expected one of {', '.join(ID_COLUMNS)} (found {header[:8]})")
        return found
    if id_column not in header:
        raise InputError(f"{path}: id column {id_column!r} not found (found {header[:8]})")
    return id_column


def _label_matrix(
    path: Path, frame: pd.DataFrame, class_columns: list[str], uncertain: str
) -> tuple[np.ndarray, list[str]]:
    """The (rows, classes) float label matrix and one problem per bad cell (the first :data:`MAX_LISTED`)."""
    labels = np.empty((len(frame), len(class_columns)), dtype=np.float32)
    bad_cells: list[str] = []
    n_bad = 0
    for j, column in enumerate(class_columns):
        cells = frame[column]
        labels[:, j], bad = parse_label_cells(cells, uncertain)
        for i in np.flatnonzero(bad)[: max(0, MAX_LISTED - len(bad_cells))]:
            bad_cells.append(
                f"{path}: row {csv_row(i)}, column {column!r}: label {cells.iloc[i]!r} is not 1, 0, -1 or blank"
            )
        n_bad += int(bad.sum())
    return labels, _capped(bad_cells, n_bad, "bad label cells")


def read_manifest(
    csv_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None = None,
    label_space: LabelSpace | str | None = None,
    id_column: str | None = None,
    uncertain: str = "ignore",
    require_labels: bool = True,
    check_images: bool = False,
    meta_csv: str | os.PathLike[str] | None = None,
    strict_columns: bool = False,
    metadata_columns: Mapping[str, str] | None = None,
) -> Manifest:
    """Read a labels CSV into a :class:`Manifest`.

    Args:
        csv_path: the labels CSV (``.csv`` or compressed ``.csv.gz``).
        image_root: folder the ids are relative to.
        label_space: a :class:`LabelSpace`, a registered name, or ``None``: the space named by the CSV folder's
            ``dataset.json`` (:func:`folder_label_space`), else one built from the header.
        id_column: the id column; default the first of ``ImageID``, ``image``, ``Image Index``, ``Path``, ``dicom_id``.
        uncertain: policy for ``-1`` cells: ``ignore`` (NaN), ``zero`` or ``one``.
        require_labels: a file without any class column is an error (set ``False`` for test-id CSVs).
        check_images: check that every image file exists and is not empty (a ``stat`` per file, no decoding).
        meta_csv: optional second CSV with the same id column whose columns are joined in as metadata
            (e.g. ChestX-ray14's ``Patient ID`` kept beside its labels).
        strict_columns: a column that is neither a class of the label space nor known metadata is a problem
            (otherwise it is only listed in ``extra_columns``).
        metadata_columns: canonical metadata field (``sex``, ``age``, ``view``, ``site``, ``study``) -> column of
            this file, for names the aliases do not know; those columns count as metadata, never as classes.

    Raises:
        InputError: missing or empty file, no id column, no class column when ``require_labels``.
        ValidationError: bad label cells, blank or duplicate ids, missing or empty images, unknown columns when
            ``strict_columns``; one problem per line.
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise InputError(
            f"unknown uncertain-label policy {uncertain!r}; choose one of: {', '.join(UNCERTAIN_POLICIES)}"
        )
    path = Path(csv_path)
    frame = read_csv_table(path, "labels file")
    header = list(frame.columns)
    if len(frame) == 0:
        raise InputError(f"{path}: no data rows, only a header")
    id_column = _id_column(path, header, id_column)
    ids = frame[id_column].str.strip().to_numpy(dtype=object)

    if meta_csv is not None:
        frame = _join_meta(frame, ids, id_column, Path(meta_csv))
    patient_column = find_column(list(frame.columns), PATIENT_COLUMNS)
    metadata_columns = dict(metadata_columns or {})
    skip = {id_column, patient_column or "", *metadata_columns.values()}
    space = _resolve_label_space(label_space, header, skip, name=path.name.split(".")[0], folder=path.parent)
    classes, missing, class_columns = _match_classes(path, header, space, require_labels)
    extra = _extra_columns(header, class_columns, (id_column, patient_column or "", *metadata_columns.values()))

    problems = _unknown_column_problems(path, extra, space) if strict_columns else []
    root = None if image_root is None else Path(image_root)
    labels, row_problems = _read_rows(path, frame, ids, id_column, class_columns, uncertain, root, check_images)
    problems += row_problems
    if problems:
        raise ValidationError(f"{path}: {count_problems(problems)}", problems)

    return Manifest(
        path=path,
        image_root=root,
        label_space=space,
        ids=ids,
        patients=_patients(frame, patient_column),
        meta=frame.drop(columns=class_columns),
        labels=labels,
        classes=classes,
        missing_classes=missing,
        extra_columns=extra,
        id_column=id_column,
        patient_column=patient_column,
        metadata_columns=metadata_columns,
    )


def _read_rows(
    path: Path,
    frame: pd.DataFrame,
    ids: np.ndarray,
    id_column: str,
    class_columns: list[str],
    uncertain: str,
    root: Path | None,
    check_images: bool,
) -> tuple[np.ndarray, list[str]]:
    """The label matrix and the rows' problems: blank or repeated ids, ids escaping ``root``, bad label cells and,
    with ``check_images``, missing or empty image files."""
    problems = id_problems(path, ids, id_column)
    if root is not None:
        problems += escape_problems(path, ids, id_column)
    labels, bad_cells = _label_matrix(path, frame, class_columns, uncertain)
    problems += bad_cells
    if check_images:
        if root is None:
            raise InputError(f"{path}: check_images needs an image folder")
        problems += image_problems(path, root, ids, id_column)
    return labels, problems


def _unknown_column_problems(path: Path, extra: Sequence[str], space: LabelSpace) -> list[str]:
    return [
        f"{path}: column {column!r} is neither a class of label space {space.name!r} nor a known metadata column"
        for column in extra
    ]


def _match_classes(
    path: Path, header: list[str], space: LabelSpace, require_labels: bool
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """(classes found, classes missing, their columns in class order) of ``space`` in the CSV ``header``."""
    try:
        mapping = space.match_columns(header)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    classes = tuple(c for c in space.classes if c in mapping)
    missing = tuple(c for c in space.classes if c not in mapping)
    if require_labels and not classes:
        raise InputError(f"{path}: no column names a class of label space {space.name!r} (found {header[:8]})")
    return classes, missing, [mapping[c] for c in classes]


def _extra_columns(header: list[str], class_columns: list[str], own: Iterable[str]) -> tuple[str, ...]:
    """Columns that are neither classes nor known metadata (the default metadata names or ``own`` columns: the id,
    patient and mapped metadata columns), compared by folded name."""
    known_meta = {fold_name(c) for c in (*DEFAULT_META_COLUMNS, *own)}
    return tuple(c for c in header if c not in class_columns and fold_name(c) not in known_meta)


def _patients(frame: pd.DataFrame, patient_column: str | None) -> np.ndarray | None:
    """The patient id of every row (``None`` where blank), or ``None`` without a patient column."""
    if patient_column is None:
        return None
    patients = frame[patient_column].str.strip().to_numpy(dtype=object)
    patients[patients == ""] = None
    return patients


def id_problems(path: Path, ids: np.ndarray, id_column: str, row: Callable[[int], int] = csv_row) -> list[str]:
    """One line per blank id and per repeated id (naming the rows); ``row`` numbers a 0-based index for the user."""
    problems: list[str] = []
    blank = np.flatnonzero(ids == "")
    problems += _capped(
        [f"{path}: row {row(i)}, column {id_column!r}: blank id" for i in blank[:MAX_LISTED]],
        len(blank),
        "blank ids",
    )
    series = pd.Series(ids)
    repeated = series[series.duplicated(keep=False) & (series != "")]
    groups = list(repeated.groupby(repeated, sort=False).groups.items())
    lines = []
    for value, index in groups[:MAX_LISTED]:
        rows = " and ".join(str(row(i)) for i in list(index)[:3])
        lines.append(f"{path}: rows {rows}, column {id_column!r}: duplicate id {value!r}")
    return problems + _capped(lines, len(groups), "duplicate ids")


def escape_problems(path: Path, ids: np.ndarray, id_column: str) -> list[str]:
    """One line per id that would leave the image folder (absolute, ``..``, NUL), read from the text alone."""
    lines: list[str] = []
    total = 0
    for i, image_id in enumerate(ids):
        reason = id_escape(str(image_id))
        if reason:
            total += 1
            if len(lines) < MAX_LISTED:
                lines.append(f"{path}: row {csv_row(i)}, column {id_column!r}: image id {image_id!r} {reason}")
    return _capped(lines, total, "ids outside the image folder")


def image_problems(path: Path, root: Path, ids: np.ndarray, id_column: str) -> list[str]:
    """One line per image that is missing, not a file, empty or outside ``root`` (``stat`` only, no decoding)."""
    if not root.is_dir():
        return [f"{path}: image folder {root} not found"]
    lines: list[str] = []
    total = 0
    guard = RootGuard(root)
    for i, image_id in enumerate(ids):
        if not image_id or id_escape(str(image_id)):
            continue  # listed by escape_problems
        file = resolve_image(root, str(image_id))
        escape = guard.escape(file)
        if escape:
            total += 1
            if len(lines) < MAX_LISTED:
                lines.append(f"{path}: row {csv_row(i)}, column {id_column!r}: image {file} {escape}; not opened")
            continue
        try:
            size = file.stat().st_size
            problem = None if file.is_file() else "is not a file"
            if problem is None and size == 0:
                problem = "is empty (0 bytes)"
        except OSError:
            problem = "not found"
        if problem is not None:
            total += 1
            if len(lines) < MAX_LISTED:
                lines.append(f"{path}: row {csv_row(i)}, column {id_column!r}: image {file} {problem}")
    lines = _capped(lines, total, "missing or empty images")
    if total and total == len(ids):
        lines.insert(0, f"hint: none of the {total} images of {path} is under {root}: is it the right image folder?")
    return lines


def _join_meta(frame: pd.DataFrame, ids: np.ndarray, id_column: str, meta_path: Path) -> pd.DataFrame:
    meta = read_csv_table(meta_path, "metadata file")
    meta_id = find_column(list(meta.columns), (id_column, *ID_COLUMNS))
    if meta_id is None:
        raise InputError(f"{meta_path}: no id column; expected {id_column!r} or one of {', '.join(ID_COLUMNS)}")
    meta_ids = meta[meta_id].str.strip()
    if meta_ids.duplicated().any():
        first = meta_ids[meta_ids.duplicated()].iloc[0]
        raise InputError(f"{meta_path}: duplicate id {first!r}")
    position = pd.Index(meta_ids).get_indexer(ids)
    if (position < 0).any():
        absent = ids[position < 0]
        raise InputError(f"{meta_path}: {len(absent)} ids of the labels file are missing, e.g. {list(absent[:3])}")
    added = [c for c in meta.columns if c != meta_id and c not in frame.columns]
    joined = meta.iloc[position][added].reset_index(drop=True)
    return pd.concat([frame, joined], axis=1)
