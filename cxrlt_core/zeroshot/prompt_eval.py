"""Score an edited prompt set against labelled images and compare it with the saved version (the Prompts page).

- :func:`scored_classes`: the prompt set's classes that the labels have a column for, in the prompt set's order
  (the alignment of prompts to label columns, by canonical class name);
- :func:`score_prompt_set`: probabilities of those classes for every image, the report and the chance level
  (mean prevalence: the mAP of a random ranking);
- :func:`class_table`: per class AP now, AP of the saved version and the difference;
- :func:`edited_prompt_set`: a prompt set with the edited prompts, scoring rule and α, validated;
- :func:`version_metrics`: the figures stored with a saved version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cxrlt_core.labels import LabelSpace
from cxrlt_core.metrics import compute_report
from cxrlt_core.zeroshot.prompts import PromptSet, parse_prompt_set


def scored_classes(prompt_classes: Sequence[str], label_classes: Sequence[str]) -> list[str]:
    """Classes of the prompt set that have a label column, in the prompt set's order."""
    present = set(label_classes)
    return [name for name in prompt_classes if name in present]


@dataclasses.dataclass
class PromptScores:
    """A prompt set's scores on labelled images: classes, labels and probabilities (N × K), report, chance."""

    classes: list[str]
    labels: np.ndarray
    scores: np.ndarray
    report: dict[str, Any]
    chance: float

    def ap(self, name: str) -> float:
        return float(self.report["per_class"][name]["ap"])


def score_prompt_set(
    scorer: Any,
    prompt_set: PromptSet,
    label_classes: Sequence[str],
    labels: np.ndarray,
    scoring: str | None = None,
    alpha: float | None = None,
) -> PromptScores:
    """Score ``prompt_set`` on the scorer's images, whose rows are those of ``labels`` (N × len(label_classes)).

    chance = mean over the scored classes of their prevalence, the expected AP of a random ranking.
    """
    classes = scored_classes(prompt_set.class_names, label_classes)
    if not classes:
        raise ValueError("none of the prompt set's classes has a label column")
    probabilities = scorer.score(prompt_set, scoring=scoring, alpha=alpha)
    p = probabilities[:, [prompt_set.class_names.index(c) for c in classes]]
    y = np.asarray(labels)[:, [list(label_classes).index(c) for c in classes]]
    report = compute_report(y, p, classes)
    prevalences = [report["per_class"][c]["prevalence"] for c in classes]
    chance = float(np.nanmean(prevalences)) if prevalences else float("nan")
    return PromptScores(classes, y, p, report, chance)


def class_table(current: PromptScores, saved: PromptScores | None = None) -> list[dict[str, Any]]:
    """Per class: positives, prevalence (chance AP), AP, the saved version's AP and ΔAP = AP − saved AP, AUC."""
    rows = []
    for name in current.classes:
        row = current.report["per_class"][name]
        before = saved.ap(name) if saved is not None and name in saved.classes else float("nan")
        rows.append(
            {
                "class": name,
                "n_pos": row["n_pos"],
                "prevalence": row["prevalence"],
                "AP": row["ap"],
                "AP saved": before,
                "ΔAP": row["ap"] - before,
                "AUC": row["auc"],
            }
        )
    return rows


def edited_prompt_set(
    base: PromptSet,
    prompts: Mapping[str, Sequence[str]],
    scoring: str,
    alpha: float,
    model: str | None,
    label_space: LabelSpace | str | None = None,
) -> PromptSet:
    """``base`` with each class's prompts replaced by ``prompts[class]`` (blank prompts dropped), validated.

    Raises:
        ValidationError: an empty class, a prompt that is also a negative, ... (one problem per line).
    """
    data = base.to_dict()
    data.update(scoring=scoring, alpha=float(alpha), model=model)
    for name, texts in prompts.items():
        clean = [str(t).strip() for t in texts if isinstance(t, str) and t.strip()]
        data["classes"][name] = {**data["classes"].get(name, {}), "prompts": clean}
    return parse_prompt_set(data, source="edited prompt set", label_space=label_space)


def version_metrics(scores: PromptScores, labels_name: str, model: str) -> dict[str, Any]:
    """What a saved version keeps of its evaluation: where, mAP, chance and each class's AP."""
    return {
        "labels": labels_name,
        "model": model,
        "mAP": float(scores.report["mAP"]),
        "chance": scores.chance,
        "ap": {name: scores.ap(name) for name in scores.classes},
    }
