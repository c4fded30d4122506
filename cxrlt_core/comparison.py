"""Paired comparison of two prediction files on the same labelled images: is B's gain over A real?

Both files are scored on the *same* bootstrap resamples (same patients drawn, same seed), so each resample gives a
paired difference ``delta = figure(B) - figure(A)`` per class and for the macro means; the interval is the 95 %
percentile interval of those differences and the p-value the two-sided bootstrap p of ``delta = 0``
(:func:`cxrlt_core.bootstrap.two_sided_p`). Pairing removes the between-image variance the two files share, so a
difference can be clear even when the two single-file intervals overlap. A delta is *distinguishable from noise*
when its interval excludes 0. ECE deltas are "lower is better": a negative delta ECE is an improvement.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.bootstrap import FIGURES, percentile_interval, plural, two_sided_p
from cxrlt_core.data.manifest import Manifest, read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.evaluation import Evaluation, evaluate
from cxrlt_core.metrics import ReportInputs, bucket_members
from cxrlt_core.predictions import Predictions, read_predictions
from cxrlt_core.scorers import macro_figures

PathLike = str | os.PathLike[str]
MACRO = {"ap": "mAP", "auc": "mAUC", "f1": "mF1", "ece": "mECE"}


@dataclasses.dataclass
class Comparison:
    """``table``: one row per class and figure with A, B, delta, its interval, p and ``distinguishable``;
    ``macro``: the same for the macro means; names of both files and the bootstrap settings."""

    name_a: str
    name_b: str
    table: pd.DataFrame
    macro: pd.DataFrame
    bootstrap: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.name_a,
            "b": self.name_b,
            "delta": "B - A",
            "bootstrap": self.bootstrap,
            "macro": self.macro.to_dict(orient="records"),
            "per_class": self.table.to_dict(orient="records"),
            "notes": self.notes,
        }


def _macro_samples(inputs: ReportInputs) -> dict[str, np.ndarray]:
    """Per resample: the macro figures, and with training labels each bucket's mAP (``"head mAP"``, ...)."""
    samples = inputs.samples
    assert samples is not None
    figures = {name: samples.figure(name) for name in FIGURES}
    macro = macro_figures(inputs.scorer, figures, inputs.has_pos)
    if inputs.scorer.ece == "pooled":
        macro["mECE"] = samples.pooled_ece
    if inputs.bucket_of is not None:
        for bucket, members in bucket_members(inputs).items():
            macro[f"{bucket} mAP"] = macro_figures(inputs.scorer, figures, inputs.has_pos, members)["mAP"]
    return macro


def _row(label: str, figure: str, a: float, b: float, deltas: np.ndarray) -> dict[str, Any]:
    low, high = percentile_interval(deltas)
    return {
        "class": label,
        "figure": figure,
        "A": float(a),
        "B": float(b),
        "delta": float(b - a),
        "low": float(low),
        "high": float(high),
        "p": float(two_sided_p(deltas)),
        "distinguishable": bool(low > 0 or high < 0),
    }


def paired_table(a: Evaluation, b: Evaluation) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-class, macro) delta tables of two evaluations computed on the same resamples."""
    ia, ib = a.inputs, b.inputs
    if ia is None or ib is None or ia.samples is None or ib.samples is None:
        raise InputError("a paired comparison needs both evaluations with bootstrap samples")
    if ia.names != ib.names or ia.samples.n_resamples != ib.samples.n_resamples:
        raise InputError("the two evaluations were not computed on the same classes and resamples")
    rows = []
    for figure in FIGURES:
        deltas = ib.samples.figure(figure) - ia.samples.figure(figure)
        for c, name in enumerate(ia.names):
            key = figure
            rows.append(_row(name, key, a.report["per_class"][name][key], b.report["per_class"][name][key],
                             deltas[:, c]))  # fmt: skip
    macro_a, macro_b = _macro_samples(ia), _macro_samples(ib)
    macro_rows = [
        _row("macro", MACRO[f], a.report[MACRO[f]], b.report[MACRO[f]], macro_b[MACRO[f]] - macro_a[MACRO[f]])
        for f in FIGURES
    ]
    for bucket in a.report.get("buckets", {}):  # the same buckets for both: one training set
        key = f"{bucket} mAP"
        point_a, point_b = a.report["buckets"][bucket]["mAP"], b.report["buckets"][bucket]["mAP"]
        macro_rows.append(_row("macro", key, point_a, point_b, macro_b[key] - macro_a[key]))
    return pd.DataFrame(rows), pd.DataFrame(macro_rows)


def compare(
    pred_a: Predictions,
    pred_b: Predictions,
    labels: Manifest,
    train: Manifest | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    **kwargs: Any,
) -> Comparison:
    """Score both prediction files on ``labels`` with the same resamples and tabulate B - A with intervals."""
    if bootstrap < 2:
        raise InputError(f"a paired comparison needs at least 2 bootstrap resamples, got {bootstrap}")
    ea = evaluate(pred_a, labels, train, bootstrap=bootstrap, seed=seed, **kwargs)
    eb = evaluate(pred_b, labels, train, bootstrap=bootstrap, seed=seed, **kwargs)
    if ea.classes != eb.classes:
        shared = [c for c in ea.classes if c in eb.classes]
        raise InputError(
            f"{pred_a.name} and {pred_b.name} predict different classes; both must score the same ones "
            f"(shared: {len(shared)} of {len(ea.classes)} and {len(eb.classes)})"
        )
    table, macro = paired_table(ea, eb)
    notes = list(dict.fromkeys(ea.notes + eb.notes))
    return Comparison(pred_a.name, pred_b.name, table, macro, dict(ea.report["bootstrap"]), notes)


def compare_files(
    pred_a: PathLike, pred_b: PathLike, labels_path: PathLike, train_labels_path: PathLike | None = None,
    label_space: str | None = None, **kwargs: Any,
) -> Comparison:  # fmt: skip
    """:func:`compare` on files."""
    labels = read_manifest(labels_path, label_space=label_space)
    train = read_manifest(train_labels_path, label_space=labels.label_space) if train_labels_path else None
    return compare(read_predictions(pred_a), read_predictions(pred_b), labels, train, **kwargs)


def sorted_deltas(comparison: Comparison, figure: str = "ap") -> pd.DataFrame:
    """One figure's per-class rows, largest gain of B first (for ECE, largest drop first), NaN deltas last."""
    rows = comparison.table[comparison.table["figure"] == figure]
    ascending = figure == "ece"
    return rows.sort_values("delta", ascending=ascending, na_position="last").reset_index(drop=True)


def format_comparison(comparison: Comparison, figure: str = "ap") -> str:
    """The terminal table: macro deltas, then the per-class deltas of ``figure`` sorted, with intervals."""
    boot = comparison.bootstrap
    lines = [
        f"A = {comparison.name_a}",
        f"B = {comparison.name_b}",
        f"delta = B - A; 95 % paired intervals over {boot['resamples']} resamples of {plural(boot['unit'])} "
        f"({boot['clusters']} {plural(boot['unit'])}), seed {boot['seed']}; * = interval excludes 0",
        "",
        f"{'figure':<11} {'A':>7} {'B':>7} {'delta':>8} {'95% interval':>19} {'p':>6}",
    ]
    for row in comparison.macro.to_dict(orient="records"):
        lines.append(_format_row(row["figure"], row, 11))
    rows = sorted_deltas(comparison, figure)
    width = max([len("class")] + [len(c) for c in rows["class"]])
    lines += ["", f"per class, {MACRO[figure][1:]} (sorted by delta):"]
    lines.append(f"{'class':<{width}} {'A':>7} {'B':>7} {'delta':>8} {'95% interval':>19} {'p':>6}")
    for row in rows.to_dict(orient="records"):
        lines.append(_format_row(row["class"], row, width))
    n_clear = int(rows["distinguishable"].sum())
    lines.append(f"{n_clear} of {len(rows)} classes differ beyond bootstrap noise")
    return "\n".join(lines)


def _format_row(label: str, row: Mapping[str, Any], width: int = 8) -> str:
    def cell(value: float, sign: bool = False) -> str:
        return "-" if value != value else (f"{value:+.4f}" if sign else f"{value:.4f}")

    interval = f"[{cell(row['low'], True)}, {cell(row['high'], True)}]"
    flag = " *" if row["distinguishable"] else ""
    p = "-" if row["p"] != row["p"] else f"{row['p']:.3f}"
    return (f"{label:<{width}} {cell(row['A']):>7} {cell(row['B']):>7} {cell(row['delta'], True):>8} "
            f"{interval:>19} {p:>6}{flag}")  # fmt: skip
