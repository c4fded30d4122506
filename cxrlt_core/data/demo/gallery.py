"""A gallery of the phantom signs: one example radiograph per class with its name, as an 8-bit PNG for display."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from cxrlt_core.atomic import write_bytes
from cxrlt_core.data.demo.draw import render_case, to_uint8
from cxrlt_core.errors import InputError
from cxrlt_core.labels import DEMO_LABEL_SPACE, get_label_space

LABEL_BAND = 0.11  # share of the tile height used for the class name
SEEN_COLOUR = (255, 255, 255)
UNSEEN_COLOUR = (80, 200, 255)  # BGR amber: the zero-shot classes stand out


def gallery_image(size: int = 192, columns: int = 6, seed: int = 0, strength: float = 1.0) -> np.ndarray:
    """One tile per cxrlt2026 class (Normal = no finding), named, in label-space order; unseen names in amber.

    Returns a BGR uint8 image.
    """
    if int(size) != size or size < 64:
        raise InputError(f"gallery tile size must be a whole number >= 64 px, got {size!r}")
    space = get_label_space(DEMO_LABEL_SPACE)
    band = max(14, int(round(size * LABEL_BAND)))
    font_scale = band / 38.0
    tiles = []
    for index, name in enumerate(space.classes):
        findings = [] if name == space.normal else [name]
        image = to_uint8(render_case(findings, [seed, index], size, strength=strength).image)
        tile = np.zeros((size + band, size, 3), np.uint8)
        tile[band:] = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        unseen = name in space.unseen
        label = f"{name} (unseen)" if unseen else name
        (width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        scale = font_scale * min(1.0, (size - 4) / max(width, 1))
        cv2.putText(
            tile,
            label,
            (2, band - max(3, band // 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            UNSEEN_COLOUR if unseen else SEEN_COLOUR,
            1,
            cv2.LINE_AA,
        )
        tiles.append(tile)
    rows = math.ceil(len(tiles) / columns)
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (rows * columns - len(tiles))
    return np.vstack([np.hstack(tiles[r * columns : (r + 1) * columns]) for r in range(rows)])


def make_gallery(
    out_png: str | os.PathLike[str], size: int = 192, columns: int = 6, seed: int = 0, strength: float = 1.0
) -> Path:
    """Write the gallery of :func:`gallery_image` to ``out_png`` (atomically) and return its path."""
    out = Path(out_png)
    if out.suffix.lower() != ".png":
        raise InputError(f"{out}: the gallery is written as PNG; give a .png file name")
    ok, encoded = cv2.imencode(".png", gallery_image(size, columns, seed, strength))
    if not ok:
        raise InputError(f"{out}: could not encode the gallery as PNG")
    write_bytes(out, encoded.tobytes())
    return out
