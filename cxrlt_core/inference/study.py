"""Study-level view aggregation: every image of a study gets the study's score (CXR-LT 2024 team F).

Team F (CXR-LT 2024 overview, Sec. 3.2) combined the predictions of a study's frontal and lateral views by a
weighted average that favours the frontal view. In two steps::

    s_{study, v} = mean of the image scores of view type v in the study             (per class)
    s_study      = Σ_v w_v · s_{study, v} / Σ_v w_v         over the view types present in the study

and every image of the study receives s_study. View weights default to 1 (then a study of two PA images and one
lateral image weighs the PA mean and the lateral image equally, not 2 : 1). Images without a study id keep their own
scores; a missing view counts as its own view type (``""``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.errors import InputError
from cxrlt_core.predictions import read_predictions, write_predictions


def aggregate_studies(
    scores: np.ndarray,
    study: Sequence[Any],
    view: Sequence[Any] | None = None,
    view_weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Scores (n, C) → study-aggregated scores (n, C) by the module docstring's formula (a pure function).

    Args:
        scores: per-image probabilities.
        study: study id per image (None / NaN / "" = no study: the row is left as it is).
        view: view type per image (``PA``, ``AP``, ``LATERAL``, ...; None = one view type for all).
        view_weights: weight per view type (default 1 for every type; types not named weigh 1).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if scores.ndim != 2 or len(study) != n or (view is not None and len(view) != n):
        raise InputError(f"study aggregation needs (n, C) scores and n study / view values; got {scores.shape}")
    weights = {str(k).upper(): float(v) for k, v in (view_weights or {}).items()}
    if any(not np.isfinite(w) or w < 0 for w in weights.values()):
        raise InputError(f"view weights must be finite and >= 0, got {view_weights}")
    frame = pd.DataFrame({"study": [_text(s) for s in study]})
    frame["view"] = [_text(v).upper() for v in view] if view is not None else ""
    out = scores.copy()
    in_study = frame["study"] != ""
    if not in_study.any():
        return out
    cols = [f"c{j}" for j in range(scores.shape[1])]
    table = pd.concat(
        [frame[in_study].reset_index(drop=True), pd.DataFrame(scores[in_study.to_numpy()], columns=cols)], axis=1
    )
    per_view = table.groupby(["study", "view"], sort=False)[cols].mean()
    w = np.array([weights.get(v, 1.0) for v in per_view.index.get_level_values("view")])
    weighted = per_view.mul(w, axis=0).groupby(level="study", sort=False).sum()
    total = pd.Series(w, index=per_view.index).groupby(level="study", sort=False).sum()
    if (total <= 0).any():
        bad = list(total[total <= 0].index[:3])
        raise InputError(f"studies {bad} have only views of weight 0: nothing to average")
    per_study = weighted.div(total, axis=0)
    out[in_study.to_numpy()] = per_study.loc[table["study"]].to_numpy()
    return out


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def parse_view_weights(items: Sequence[str]) -> dict[str, float]:
    """``["PA=2", "LATERAL=0.5"]`` → ``{"PA": 2.0, "LATERAL": 0.5}`` (for ``--view-weight``)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not np.isfinite(weight) or weight < 0:
            raise InputError(f"view weight {item!r} is not VIEW=WEIGHT with a weight >= 0 (e.g. PA=2)")
        out[name.strip().upper()] = weight
    return out


def aggregate_prediction_file(
    path: str | os.PathLike[str], manifest: Any, view_weights: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Rewrite a predictions file (atomically) with study-aggregated scores, from the manifest's canonical
    ``study`` / ``view`` metadata (:meth:`~cxrlt_core.data.manifest.Manifest.metadata`); returns a summary that is
    also stored in the file's metadata under ``study_aggregation``."""
    pred = read_predictions(path)
    meta = manifest.metadata()
    if meta["study"].isna().all():
        raise InputError(f"{manifest.name}: no study column (StudyID or a mapped one): cannot aggregate by study")
    index = {str(i): k for k, i in enumerate(manifest.ids)}
    rows = np.array([index.get(str(i), -1) for i in pred.ids])
    if (rows < 0).any():
        raise InputError(f"{Path(path)}: ids not in {manifest.name}, e.g. {pred.ids[rows < 0][0]!r}")
    study = meta["study"].to_numpy(dtype=object)[rows]
    view = meta["view"].to_numpy(dtype=object)[rows]
    scores = aggregate_studies(pred.scores, study, view, view_weights)
    summary = {
        "studies": int(len({_text(s) for s in study} - {""})),
        "images_in_studies": int(sum(_text(s) != "" for s in study)),
        "view_weights": dict(view_weights or {}),
    }
    metadata = {**pred.metadata, "study_aggregation": summary}
    write_predictions(path, pred.ids, np.clip(scores, 0.0, 1.0), pred.classes, metadata, pred.id_column)
    return summary
