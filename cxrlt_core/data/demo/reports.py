"""Short radiology-style reports for phantom radiographs, written from the findings actually drawn.

A report names each drawn finding and describes its sign with the attribute words of ``findings.SIGNS`` (side, zone,
size, shape, density), adds negatives for a few absent in-distribution findings ("No pleural effusion."), and ends
with an impression. Normal films get a normal report. Unseen findings are only ever drawn in validation and test
images, negatives never name them, and the validation reports a model may train on leave them out (``hidden``),
so no trainable report mentions them (``assert_no_unseen_words`` checks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from cxrlt_core.data.demo.draw import Instance
from cxrlt_core.data.demo.findings import SIGNS
from cxrlt_core.errors import InputError

NEGATIVES = {
    "pleural effusion": ("No pleural effusion.", "Costophrenic angles are sharp."),
    "Pneumothorax": ("No pneumothorax.",),
    "cardiomegaly": ("Heart size is normal.", "Normal cardiac silhouette."),
    "alveolar pattern": ("No airspace consolidation.", "No patchy airspace opacity."),
    "Nodule": ("No lung nodules.",),
    "Mass": ("No mass.",),
    "fracture": ("No rib fracture.",),
    "Support Devices": ("No lines or tubes.",),
    "interstitial pattern": ("No interstitial pattern.",),
    "hemidiaphragm elevation": ("Both hemidiaphragms are in normal position.",),
    "vascular hilar enlargement": ("Hila are of normal size.",),
}
# a negative is not said when a present (possibly unseen) finding would make it false
CONTRADICTS = {
    "vascular hilar enlargement": ("Adenopathy",),
    "alveolar pattern": ("Infarction",),
}
NORMAL_REPORTS = (
    "Findings: The lungs are clear. Heart size is normal. No pleural effusion or pneumothorax. "
    "Impression: Normal chest radiograph.",
    "Findings: Clear lungs without focal opacity. Normal cardiac silhouette and mediastinum. Costophrenic angles are "
    "sharp. Impression: No acute abnormality.",
    "Findings: Normal heart and mediastinum. The lungs are clear. Diaphragm in normal position. "
    "Impression: Normal study.",
)


def _fill(template: str, inst: Instance) -> str:
    words = {"size": inst.size, "side": inst.side, "sides": inst.sides, "zone": inst.zone, "detail": inst.detail}
    words |= {key.capitalize(): value.capitalize() for key, value in words.items()}
    return template.format(**words)


def describe(inst: Instance, rng: np.random.Generator) -> str:
    """One sentence naming the finding of ``inst`` and describing its drawn sign."""
    templates = SIGNS[inst.finding].templates
    return _fill(templates[int(rng.integers(len(templates)))], inst)


def write_report(
    instances: Sequence[Instance],
    rng: np.random.Generator,
    projection: str = "PA",
    hidden: Iterable[str] = (),
) -> str:
    """The report of one film: findings, a few negatives for absent in-distribution findings, impression.

    Findings in ``hidden`` (the unseen classes, for reports a model may train on) are left out of the text; a film
    whose only findings are hidden gets negatives and no impression, never a normal report (it is not normal).
    """
    view = f"{projection} chest radiograph."
    if not instances:
        return f"{view} {NORMAL_REPORTS[int(rng.integers(len(NORMAL_REPORTS)))]}"
    present = {inst.finding for inst in instances}
    hidden = set(hidden)
    # every sentence is drawn, shown or not, so a redacted report differs from the full one only by what it hides
    sentences = [(inst, describe(inst, rng)) for inst in instances]
    shown = [inst for inst in instances if inst.finding not in hidden]
    absent = [name for name in NEGATIVES if name not in present and not present & set(CONTRADICTS.get(name, ()))]
    negatives = []
    if absent:
        picked = rng.choice(len(absent), size=min(len(absent), int(rng.integers(1, 4))), replace=False)
        negatives = [str(rng.choice(NEGATIVES[absent[k]])) for k in sorted(picked)]
    text = f"{view} Findings: {' '.join([t for inst, t in sentences if inst.finding not in hidden] + negatives)}"
    if shown:
        text += f" Impression: {'; '.join(SIGNS[inst.finding].words for inst in shown)}."
    return text


def unseen_words(unseen: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each unseen class, the lower-case words and phrases that would reveal it in a report."""
    words = {}
    for name in unseen:
        sign = SIGNS[name]
        words[name] = (name.lower(), sign.words.lower(), sign.description.lower(), *sign.taboo)
    return words


def assert_no_unseen_words(reports: Iterable[str], unseen: Iterable[str], where: str = "training reports") -> None:
    """Raise if any report names or describes an unseen finding (the zero-shot task would leak)."""
    words = unseen_words(unseen)
    for number, report in enumerate(reports):
        text = report.lower()
        for name, phrases in words.items():
            hit = next((phrase for phrase in phrases if phrase in text), None)
            if hit:
                raise InputError(f"{where}: report {number} mentions unseen finding {name} ({hit!r}): {report!r}")
