"""Canonical image metadata read from a manifest's non-class columns: ``sex``, ``age``, ``view``, ``site``, ``study``.

Data sets spell these differently; each canonical name has an alias list tried in order (exact spelling first, then
ignoring case and spacing):

==========  ======================================  ===========================  ================================
canonical   PadChest / CXR-LT 2026                  NIH ChestX-ray14             cxrlt demo data
==========  ======================================  ===========================  ================================
``sex``     ``PatientSex_DICOM``                    ``Patient Gender``           ``PatientSex``
``age``     ``PatientBirth`` + ``StudyDate_DICOM``  ``Patient Age``              ``PatientAge``
``view``    ``Projection``                          ``View Position``            ``Projection``
``site``    (none)                                  (none)                       ``Site``
``study``   ``StudyID``                             (none)                       ``StudyID``
==========  ======================================  ===========================  ================================

A column map (canonical name -> column) overrides the aliases for any other data set. Values are normalised:
sex to ``M`` / ``F``; age to years (float; PadChest's age is study year minus birth year); view to ``PA``, ``AP``
(``AP_horizontal``, supine), ``LATERAL`` (``L``, ``LL``, ``RL``) or the upper-cased text; blanks and unparsable
cells are missing (``None`` / NaN).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cxrlt_core.errors import InputError
from cxrlt_core.labels import fold_name

CANONICAL = ("sex", "age", "view", "site", "study")

ALIASES: dict[str, tuple[str, ...]] = {
    "sex": ("sex", "PatientSex", "PatientSex_DICOM", "Patient Gender", "Patient Sex", "Sex", "Gender"),
    "age": ("age", "PatientAge", "Patient Age", "Age"),
    "view": ("view", "Projection", "View Position", "ViewPosition", "View"),
    "site": ("site", "Site", "Hospital", "Institution"),
    "study": ("study", "StudyID", "Study ID", "study_id"),
}
BIRTH_COLUMNS = ("PatientBirth", "Patient Birth", "BirthYear")
STUDY_DATE_COLUMNS = ("StudyDate_DICOM", "StudyDate", "Study Date")
# Every column name this module may read, so label-space inference never mistakes one for a class.
ALL_METADATA_COLUMNS = tuple(dict.fromkeys([c for names in ALIASES.values() for c in names] + [*BIRTH_COLUMNS]))

FRONTAL_VIEWS = ("PA", "AP")
_SEX = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F"}
_VIEW = {
    "PA": "PA", "POSTEROANTERIOR": "PA", "AP": "AP", "AP_HORIZONTAL": "AP", "AP HORIZONTAL": "AP", "AP SUPINE": "AP",
    "APS": "AP", "AP_SUPINE": "AP", "ANTEROPOSTERIOR": "AP", "L": "LATERAL", "LL": "LATERAL", "RL": "LATERAL",
    "LAT": "LATERAL", "LATERAL": "LATERAL",
}  # fmt: skip


def _find(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        if candidate in columns:
            return candidate
    folded = {fold_name(c): c for c in columns}
    return next((folded[fold_name(c)] for c in candidates if fold_name(c) in folded), None)


def resolve_columns(columns: list[str], column_map: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Canonical name -> the column it is read from (``None`` when absent); ``column_map`` wins over aliases.

    Raises:
        InputError: the map names an unknown canonical field or a column that is not there.
    """
    column_map = dict(column_map or {})
    unknown = sorted(set(column_map) - set(CANONICAL))
    if unknown:
        raise InputError(f"metadata column map: unknown field(s) {unknown}; choose from {', '.join(CANONICAL)}")
    resolved: dict[str, str | None] = {}
    for name in CANONICAL:
        if name in column_map:
            if column_map[name] not in columns:
                raise InputError(f"metadata column map: {name} -> column {column_map[name]!r} is not in the file")
            resolved[name] = column_map[name]
        else:
            resolved[name] = _find(columns, ALIASES[name])
    return resolved


def normalise_sex(cells: pd.Series) -> pd.Series:
    """``M`` / ``F`` from M, F, male, female (any case); anything else missing (``None``)."""
    folded = cells.astype("string").str.strip().str.lower()
    return folded.map(_SEX).astype(object).where(folded.isin(list(_SEX)), None)


def normalise_age(cells: pd.Series) -> pd.Series:
    """Years as float: ``58``, ``58.0``, ``058Y`` (DICOM age string); months/days strings are converted; else NaN."""
    text = cells.astype("string").str.strip().str.upper()
    parts = text.str.extract(r"^(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>[YMWD]?)$")
    value = pd.to_numeric(parts["value"], errors="coerce")
    per_year = parts["unit"].map({"": 1.0, "Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}).astype(float)
    return (value / per_year).astype(float)


def normalise_view(cells: pd.Series) -> pd.Series:
    """``PA``, ``AP`` or ``LATERAL`` for their common spellings; other text upper-cased; blank missing."""
    text = cells.astype("string").str.strip().str.upper()
    mapped = text.map(lambda v: _VIEW.get(v, v) if isinstance(v, str) and v else None)
    return mapped.astype(object).where(mapped.notna(), None)


def _text(cells: pd.Series) -> pd.Series:
    text = cells.astype("string").str.strip()
    return text.astype(object).where(text.notna() & (text != ""), None)


def age_from_birth(birth: pd.Series, study_date: pd.Series) -> pd.Series:
    """Age in years = study year - birth year (PadChest gives ``PatientBirth`` as a year, dates as YYYYMMDD)."""
    birth_year = pd.to_numeric(birth.astype("string").str.strip().str[:4], errors="coerce")
    study_year = pd.to_numeric(study_date.astype("string").str.strip().str[:4], errors="coerce")
    return (study_year - birth_year).astype(float)


def canonical_metadata(meta: pd.DataFrame, column_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A frame with the canonical columns ``sex, age, view, site, study`` (row for row with ``meta``).

    A field with no column is all missing. Age falls back to birth year + study date when no age column exists.
    """
    columns = [str(c) for c in meta.columns]
    resolved = resolve_columns(columns, column_map)
    n = len(meta)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for name, normalise in (("sex", normalise_sex), ("view", normalise_view), ("site", _text), ("study", _text)):
        column = resolved[name]
        out[name] = normalise(meta[column].reset_index(drop=True)) if column else pd.Series([None] * n, dtype=object)
    age_column = resolved["age"]
    if age_column:
        out["age"] = normalise_age(meta[age_column].reset_index(drop=True))
    else:
        birth, date = _find(columns, BIRTH_COLUMNS), _find(columns, STUDY_DATE_COLUMNS)
        if birth and date:
            out["age"] = age_from_birth(meta[birth].reset_index(drop=True), meta[date].reset_index(drop=True))
        else:
            out["age"] = np.full(n, np.nan)
    return out[list(CANONICAL)]


def parse_column_map(text: str | None) -> dict[str, str]:
    """``"sex=Gender,age=AgeYears"`` -> ``{"sex": "Gender", "age": "AgeYears"}`` (for command lines)."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if "=" not in part:
            raise InputError(f"metadata column map: {part!r} is not FIELD=COLUMN")
        key, column = (s.strip() for s in part.split("=", 1))
        mapping[key] = column
    resolve_columns(list(mapping.values()), mapping)  # checks the field names
    return mapping


def is_frontal(views: pd.Series) -> np.ndarray:
    """True where the canonical view is PA or AP."""
    return views.isin(FRONTAL_VIEWS).to_numpy()
