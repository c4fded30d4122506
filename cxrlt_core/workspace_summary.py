"""What a workspace holds, in numbers, and the label space each of its data sets speaks.

Read by the Overview page (one line per part) and by every page that needs a data set's classes: the label space
comes from the data (``dataset.json`` of a generated set, else the CSV headers), never from a literal name.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

from cxrlt_core.data.manifest import folder_label_space
from cxrlt_core.errors import InputError
from cxrlt_core.labels import LabelSpace
from cxrlt_core.runs import read_status
from cxrlt_core.workspace import Workspace


def csv_rows(path: str | os.PathLike[str]) -> int:
    """Data rows of a CSV (records, not lines: a quoted cell may hold a line break); -1 if unreadable."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error):
        return -1


def csv_label_space(csv_path: str | os.PathLike[str]) -> LabelSpace:
    """The label space of the data set a CSV belongs to (its folder's; see :func:`folder_label_space`)."""
    return folder_label_space(Path(csv_path).parent, from_headers=True)


@dataclasses.dataclass(frozen=True)
class WorkspaceCounts:
    """How many of each part a workspace holds (the Overview's one line)."""

    datasets: int
    images: int
    runs: int
    finished_runs: int
    predictions: int
    models: int
    prompt_sets: int
    exports: int


def dataset_table(workspace: Workspace) -> list[dict[str, object]]:
    """One row per data set: its name, label space, class count and the data rows of each CSV."""
    rows: list[dict[str, object]] = []
    for name in workspace.list_datasets():
        folder = workspace.dataset(name)
        try:
            space = folder_label_space(folder, from_headers=True)
            space_name, classes = space.name, space.num_classes
        except InputError:
            space_name, classes = "–", 0
        counts = {f"{csv.stem} rows": csv_rows(csv) for csv in sorted(folder.glob("*.csv"))}
        rows.append({"data set": name, "label space": space_name, "classes": classes, **counts})
    return rows


def _images_of(workspace: Workspace, name: str) -> int:
    folder = workspace.dataset(name)
    images = folder / "images"
    if images.is_dir():
        return sum(1 for p in images.iterdir() if p.is_file() and not p.name.startswith("."))
    return 0


def workspace_counts(workspace: Workspace) -> WorkspaceCounts:
    """Counts of data sets, images, runs (and finished runs), predictions files, CLIP models, prompt sets, exports."""
    runs = workspace.list_runs()
    finished = sum((read_status(workspace.run(run)) or {}).get("state") == "finished" for run in runs)
    datasets = workspace.list_datasets()
    return WorkspaceCounts(
        datasets=len(datasets),
        images=sum(_images_of(workspace, name) for name in datasets),
        runs=len(runs),
        finished_runs=finished,
        predictions=len(workspace.list_predictions()),
        models=len(workspace.list_models()),
        prompt_sets=len(workspace.list_prompt_sets()),
        exports=len(workspace.list_exports()),
    )


def is_demo_build(workspace: Workspace) -> bool:
    """The workspace was (or is being) built by ``cxrlt demo``: it has the build's ``.build/`` folder."""
    return (workspace.root / ".build").is_dir()
