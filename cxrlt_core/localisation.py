"""How well a model's maps localise: the pointing game and the map's mass inside the finding's box.

For one image, one finding with a box (``x0, y0, x1, y1`` in the stored image's pixels, ``image[y0:y1, x0:x1]``)
and a map over that image (``explain.map_on_image``):

- pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016 / IJCV 2018): a hit
  when the map's maximum lies inside the box (the first maximum in row-major order on ties; a constant map
  never hits). Accuracy = hits / images.
- mass in the box (the "energy-based pointing game" of Wang et al., "Score-CAM", CVPRW 2020): the share of the
  min-max normalised map's total inside the box, ``sum_box(m) / sum(m)`` with ``m = (h - min h) / (max h - min h)``.
- chance: the box's share of the image area, what a uniformly random peak (and a flat map's mass) would score.

Scores are per class over the images where the finding was drawn; ``per_class`` aggregates them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlt_core.errors import InputError

Box = tuple[int, int, int, int]
BOX_COLUMNS = ("ImageID", "finding", "x0", "y0", "x1", "y1")


def _check_box(box: Sequence[int], shape: tuple[int, int]) -> Box:
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]):
        raise InputError(f"box {tuple(box)} does not fit an image of {shape[1]} x {shape[0]} px")
    return x0, y0, x1, y1


def pointing_hit(heat: np.ndarray, box: Sequence[int]) -> bool:
    """Whether the (first) maximum of ``heat`` (H, W) lies inside ``box``; a constant map is a miss."""
    heat = np.asarray(heat, dtype=np.float64)
    x0, y0, x1, y1 = _check_box(box, heat.shape)
    if float(heat.max() - heat.min()) <= 0.0:
        return False
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return bool(x0 <= col < x1 and y0 <= row < y1)


def box_mass(heat: np.ndarray, box: Sequence[int]) -> float:
    """Share of the min-max normalised map inside ``box``; a constant map spreads evenly (its box area share)."""
    heat = np.asarray(heat, dtype=np.float64)
    x0, y0, x1, y1 = _check_box(box, heat.shape)
    span = float(heat.max() - heat.min())
    norm = (heat - heat.min()) / span if span > 0 else np.ones_like(heat)
    total = float(norm.sum())
    return float(norm[y0:y1, x0:x1].sum() / total) if total > 0 else 0.0


def box_share(box: Sequence[int], shape: tuple[int, int]) -> float:
    """The box's share of the image area (the chance level of both scores)."""
    x0, y0, x1, y1 = _check_box(box, shape)
    return (x1 - x0) * (y1 - y0) / float(shape[0] * shape[1])


@dataclasses.dataclass(frozen=True)
class Score:
    """One image, finding and map method."""

    image_id: str
    finding: str
    method: str
    hit: bool
    mass: float
    chance: float


def score_map(image_id: str, finding: str, method: str, heat: np.ndarray, box: Sequence[int]) -> Score:
    return Score(image_id, finding, method, pointing_hit(heat, box), box_mass(heat, box), box_share(box, heat.shape))


def per_class(scores: Iterable[Score]) -> pd.DataFrame:
    """Per method and finding: images, pointing accuracy, mean mass in the box, chance (mean box share)."""
    frame = pd.DataFrame([dataclasses.asdict(s) for s in scores])
    if frame.empty:
        return pd.DataFrame(columns=["method", "finding", "images", "pointing", "mass", "chance"])
    table = frame.groupby(["method", "finding"], sort=True).agg(
        images=("hit", "size"), pointing=("hit", "mean"), mass=("mass", "mean"), chance=("chance", "mean")
    )
    return table.reset_index()


def overall(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: the mean over classes (macro) of pointing, mass and chance, and the number of classes."""
    if table.empty:
        return pd.DataFrame(columns=["method", "classes", "pointing", "mass", "chance"])
    grouped = table.groupby("method").agg(
        classes=("finding", "size"), pointing=("pointing", "mean"), mass=("mass", "mean"), chance=("chance", "mean")
    )
    return grouped.reset_index()


def read_boxes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A ``boxes.csv`` (``BOX_COLUMNS``), checked: integer coordinates with ``x0 < x1`` and ``y0 < y1``."""
    try:
        frame = pd.read_csv(path, dtype={"ImageID": str, "finding": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{os.fspath(path)}: cannot read the boxes file ({exc})") from None
    missing = [c for c in BOX_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{os.fspath(path)}: missing column(s) {missing}; expected {list(BOX_COLUMNS)}")
    for column in BOX_COLUMNS[2:]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{os.fspath(path)}: row {row + 2}, column {column}: not a whole number")
        frame[column] = values.astype(np.int64)
    wrong = (frame["x0"] >= frame["x1"]) | (frame["y0"] >= frame["y1"])
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise InputError(f"{os.fspath(path)}: row {row + 2}: the box needs x0 < x1 and y0 < y1")
    return frame[list(BOX_COLUMNS)]


def boxes_beside(csv: str | os.PathLike[str]) -> Path | None:
    """The ``boxes.csv`` of the data set a CSV belongs to (same folder), if it has one."""
    path = Path(csv).with_name("boxes.csv")
    return path if path.is_file() else None


MapFunction = Callable[[np.ndarray, int], dict[str, np.ndarray]]


def score_images(
    boxes: pd.DataFrame,
    classes: Sequence[str],
    maps_of: Callable[[str, list[int]], dict[str, dict[int, np.ndarray]]],
    progress: Callable[[int, int], None] | None = None,
) -> list[Score]:
    """Score every box of a finding in ``classes``.

    ``maps_of(image_id, class_indices)`` returns ``{method: {class_index: map on the stored image}}`` for one image.
    """
    wanted = boxes[boxes["finding"].isin(list(classes))]
    scores: list[Score] = []
    groups = list(wanted.groupby("ImageID", sort=True))
    for done, (image_id, rows) in enumerate(groups, 1):
        indices = [list(classes).index(f) for f in rows["finding"]]
        maps = maps_of(str(image_id), indices)
        for row, index in zip(rows.itertuples(index=False), indices):
            box = (row.x0, row.y0, row.x1, row.y1)
            for method, by_class in maps.items():
                scores.append(score_map(str(image_id), row.finding, method, by_class[index], box))
        if progress is not None:
            progress(done, len(groups))
    return scores
