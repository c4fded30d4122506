"""One radiograph through one model, as the Inspect page shows it: calls, calibration status and the shift check.

With a saved post-processing choice fitted on this run's validation predictions (``W/postprocess/<name>.json``,
written by the Gating page), a probability goes through the same steps as ``cxrlt predict``: normal gating (the
choice's α and form), the saved calibration, then the saved per-class thresholds give positive / negative calls.
Without one the model's sigmoid outputs are shown as *uncalibrated* scores and no call is made.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt_core.errors import CxrltError
from cxrlt_core.inference.calibration import load_calibration
from cxrlt_core.inference.gating import normal_gating
from cxrlt_core.inference.thresholds import load_thresholds
from cxrlt_core.postprocess_study import PostprocessChoice

UNCALIBRATED_NOTE = (
    "Uncalibrated: the model's raw sigmoid outputs. No post-processing choice (calibration and thresholds, saved on "
    "the Gating page) was fitted on this run, so these are scores, not probabilities, and no finding is called."
)


@dataclasses.dataclass
class SavedChoice:
    """A post-processing choice and the files it points to."""

    name: str
    gating_alpha: float
    gating_form: str
    calibration: Any | None  # inference.calibration.Calibration
    thresholds: Any | None  # inference.thresholds.Thresholds
    fitted_on: str


def choices_for_run(postprocess_dir: str | os.PathLike[str], run: str) -> list[SavedChoice]:
    """Saved choices whose validation predictions came from run ``run`` (``runs/<run>/...``), by name."""
    folder = Path(postprocess_dir)
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name.count(".") != 1:  # <name>.calibration.json / <name>.thresholds.json belong to a choice
            continue
        try:
            choice, record = PostprocessChoice.load(path)
        except CxrltError:
            continue
        source = str((choice.fitted_on or {}).get("predictions", ""))
        if not source.replace("\\", "/").startswith(f"runs/{run}/"):
            continue
        calibration = thresholds = None
        try:
            if record.get("calibration_file"):
                calibration = load_calibration(folder / record["calibration_file"])
            if record.get("thresholds_file"):
                thresholds = load_thresholds(folder / record["thresholds_file"])
        except (CxrltError, OSError):
            continue
        found.append(SavedChoice(path.stem, choice.gating_alpha, choice.gating_form, calibration, thresholds, source))
    return found


def finding_table(
    probabilities: np.ndarray,
    classes: Sequence[str],
    choice: SavedChoice | None = None,
    truth: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Per finding (in model order): the raw score, and with a choice the calibrated probability, threshold and call.

    Returns the table and a one-line note on what the numbers are.
    """
    raw = np.asarray(probabilities, dtype=np.float64)[None, :]
    table = pd.DataFrame({"finding": list(classes), "model score": raw[0]})
    if choice is None or choice.calibration is None:
        note = UNCALIBRATED_NOTE
        if choice is not None:
            note = f"Post-processing {choice.name!r} has no calibration: scores are uncalibrated."
    else:
        gated = normal_gating(raw, list(classes), choice.gating_alpha, choice.gating_form)
        calibrated = choice.calibration.apply(gated, list(classes))[0]
        table["probability (calibrated)"] = calibrated
        note = (
            f"Calibrated with {choice.name!r} ({choice.calibration.method}, fitted on {choice.fitted_on}); "
            f"normal gating α = {choice.gating_alpha:g} ({choice.gating_form})."
        )
        if choice.thresholds is not None:
            thresholds = choice.thresholds.for_classes(list(classes))
            table["threshold"] = thresholds
            table["call"] = np.where(calibrated >= thresholds, "positive", "negative")
            note += " Calls: calibrated probability ≥ the saved per-class threshold (fitted for F1 on validation)."
        else:
            note += " No thresholds were saved with it: no calls."
    if truth:
        table["ground truth"] = [_truth_word(truth.get(c)) for c in classes]
    return table, note


def _truth_word(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return "positive" if value > 0.5 else "negative"


def shift_message(distance: float, threshold: float) -> tuple[bool, str]:
    """(warn, text) for the input-shift check of one image."""
    ratio = distance / threshold if threshold > 0 else float("inf")
    if distance > threshold:
        return True, (
            f"This image is unlike the images the model was trained on (feature distance {distance:.1f}, "
            f"{ratio:.1f}× the threshold {threshold:.1f}). Its outputs below are not meaningful."
        )
    return False, (
        f"The image resembles the training images (feature distance {distance:.1f} ≤ threshold {threshold:.1f})."
    )
