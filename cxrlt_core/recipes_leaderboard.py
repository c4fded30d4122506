"""The recipes leaderboard that ``benchmarks/recipes_demo.py`` saves (``<workspace>/benchmarks/recipes_demo.json``),
as a table for the Results page: one row per recipe, test mAP and head / medium / tail with their intervals."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from cxrlt_core.atomic import read_json_object

LEADERBOARD_FILE = Path("benchmarks") / "recipes_demo.json"
GROUPS = ("all", "head", "medium", "tail")


def leaderboard_path(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace) / LEADERBOARD_FILE


def leaderboard_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Rows sorted by test mAP: recipe, ``mAP`` (mean over seeds), ``mAP 95% CI`` and the same per bucket, mAUC,
    mECE, seeds, train seconds; plus a last row for the prevalence baseline."""
    record = read_json_object(path, "recipes leaderboard")
    rows = []
    for row in record.get("rows", []):
        out = {"recipe": row["recipe"]}
        for group in GROUPS:
            figure = row["mAP"][group]
            name = "mAP" if group == "all" else f"{group} mAP"
            out[name] = figure["mean"]
            out[f"{name} 95% CI"] = f"{figure['ci'][0]:.3f}–{figure['ci'][1]:.3f}"
        out |= {"mAUC": row["mAUC"], "mECE": row["mECE"], "seeds": len(row["seeds"]), "train s": row["train_seconds"]}
        rows.append(out)
    table = pd.DataFrame(rows).sort_values("mAP", ascending=False, ignore_index=True) if rows else pd.DataFrame()
    if rows:
        baseline = {"recipe": "prevalence baseline", "mAP": record["rows"][0]["prevalence_baseline"], "mAUC": 0.5}
        table = pd.concat([table, pd.DataFrame([baseline])], ignore_index=True)
    return table
