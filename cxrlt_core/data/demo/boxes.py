"""Where each sign was drawn: one bounding box per image and finding, in pixels of the saved film.

A sign changes the attenuation layers in two ways: a *draw* step adds opacities, lucencies or devices (the change is
the layers after the draw minus the layers before it), and a *plan* step edits the anatomy (a wider heart, a lower
diaphragm; the change is the normal chest drawn with the edited anatomy minus the same chest drawn with that
finding's edits undone, with the same random vessel tree; soft tissue and bone only, since the vessels merely follow
the hila). A pixel belongs to the sign when its change is at least ``RELATIVE_THRESHOLD`` (a draw) or
``ANATOMY_THRESHOLD`` (an anatomy edit) of the sign's largest change, so the faint tails of blurred signs and small
knock-on shifts do not widen the box. The
mask is then carried through the film's pose (rotation, zoom and shift of :func:`anatomy.pose_matrix`) with
nearest-neighbour warping, and its bounding box, grown on every side by ``MARGIN`` (the soft-tissue blur of the
film, which spreads edges that far) and clipped to the film, is recorded as ``(x0, y0, x1, y1)``: ``x0, y0`` the
first column and row inside the box, ``x1, y1`` one past the last (NumPy slice convention: ``image[y0:y1, x0:x1]``
is the box).

Findings whose sign is diffuse (``size == "diffuse"`` in ``findings.SIGNS``: Emphysema, interstitial pattern,
Osteopenia) get no box: they cover most of the lungs or skeleton and a box would say nothing about localisation.
Nor does a sign whose box covers more than ``MAX_AREA`` of the film (a hyperinflated chest, a scoliotic spine).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from cxrlt_core.data.demo.anatomy import Anatomy, Canvas, draw_anatomy
from cxrlt_core.data.demo.findings import SIGNS

RELATIVE_THRESHOLD = 0.05
ANATOMY_THRESHOLD = 0.25
MAX_AREA = 0.5
MARGIN = 0.012  # the film's soft-tissue blur (anatomy.expose): edges spread this far (a fraction of the size)
Box = tuple[int, int, int, int]
DIFFUSE = frozenset(name for name, sign in SIGNS.items() if sign.size == "diffuse")


def signature(canvas: Canvas) -> np.ndarray:
    """One array that changes wherever a draw step changes a layer: tissue + lesion + metal + markings, plus a tenth
    of the marking mask (signs that clear the vessels). Opposite edits of two layers at one pixel could cancel; no
    sign makes such edits."""
    total = canvas.tissue + canvas.lesion
    total += canvas.metal
    total += canvas.markings
    total += 0.1 * canvas.marking_mask
    return total


def chest(canvas: Canvas) -> np.ndarray:
    """Soft tissue plus bone: what an anatomy edit changes (the vessels merely follow the hila)."""
    return canvas.tissue + canvas.bone


def _significant(change: np.ndarray, threshold: float = RELATIVE_THRESHOLD) -> np.ndarray:
    """Pixels whose change is at least ``threshold`` of the largest one (empty when nothing changed)."""
    peak = float(change.max()) if change.size else 0.0
    if peak <= 1e-6:
        return np.zeros(change.shape, dtype=bool)
    return change >= threshold * peak


def draw_change(before: np.ndarray, canvas: Canvas) -> np.ndarray:
    """Mask of the pixels a draw step changed, from the ``signature`` before it."""
    return _significant(np.abs(signature(canvas) - before))


def anatomy_change(anat: Anatomy, undone: dict[str, object], drawn: np.ndarray, vessel_state: dict) -> np.ndarray:
    """Mask of the pixels a plan step's anatomy edits changed.

    Args:
        anat: the anatomy as drawn (all edits applied).
        undone: field → value before this finding's edits.
        drawn: ``chest`` of the drawn normal chest (right after ``draw_anatomy``).
        vessel_state: the random generator state ``draw_anatomy`` started from, so both drawings match elsewhere.
    """
    baseline = Canvas(drawn.shape[0])
    rng = np.random.default_rng()
    rng.bit_generator.state = vessel_state
    draw_anatomy(baseline, dataclasses.replace(anat, **undone), rng)
    return _significant(np.abs(drawn - chest(baseline)), ANATOMY_THRESHOLD)


def film_box(mask: np.ndarray, matrix: np.ndarray) -> Box | None:
    """Bounding box ``(x0, y0, x1, y1)`` of ``mask`` after the film's pose ``matrix``.

    ``None`` when the sign left the film or its box covers more than ``MAX_AREA`` of it (not localised).
    """
    size = mask.shape[1], mask.shape[0]
    warped = cv2.warpAffine(mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST, borderValue=0)
    rows, cols = np.flatnonzero(warped.any(axis=1)), np.flatnonzero(warped.any(axis=0))
    if not len(rows):
        return None
    pad = int(np.ceil(MARGIN * size[0]))
    height, width = warped.shape
    box = (
        max(0, int(cols[0]) - pad),
        max(0, int(rows[0]) - pad),
        min(width, int(cols[-1]) + 1 + pad),
        min(height, int(rows[-1]) + 1 + pad),
    )
    if (box[2] - box[0]) * (box[3] - box[1]) > MAX_AREA * warped.size:
        return None
    return box


def anatomy_edits(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """The fields a plan step changed, with their values before it (``dataclasses.asdict`` snapshots)."""
    return {key: before[key] for key in before if before[key] != after[key]}
