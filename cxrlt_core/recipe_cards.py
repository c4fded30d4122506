"""Recipe cards: where each recipe in ``train_jobs/`` comes from, what its source reported, what cxrlt changes.

Every recipe starts with a ``card:`` section::

    card:
      title: CheXFusion, stage 1 (CXR-LT 2023, 1st place)
      source: {team: ..., edition: CXR-LT 2023, paper: ..., code: ...}   # team, edition, paper required
      task: what the source was trained and scored on
      reported: {score: "0.372 test mAP", citation: ...}                  # both required
      differences: [what cxrlt does differently, and why, ...]
      compute: an estimate (GPU hours, memory)
      licence: licence of any weights the recipe names ("none" when it names none)
      demo_twin: demo_chexfusion         # optional: the demo-sized twin of a full recipe
      twin_of: chexfusion_stage1         # optional: the full recipe a demo twin scales down
      ensemble: [[data.image_size=64], [data.image_size=96]]   # optional: members as override lists
      postprocess: {study_aggregation: {PA: 1, AP: 1}, calibration: temperature}   # optional, at prediction

``cxrlt recipes list`` / ``cxrlt recipes show NAME`` print the cards, the Train page shows the selected one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrlt_core.config import load_recipe
from cxrlt_core.errors import InputError
from cxrlt_core.recipes import SOURCE, recipe_dirs

REQUIRED = ("title", "source", "task", "reported", "differences", "compute", "licence")
OPTIONAL = ("demo_twin", "twin_of", "ensemble", "postprocess")
SOURCE_KEYS = ("team", "edition", "paper")
REPORTED_KEYS = ("score", "citation")
POSTPROCESS_KEYS = ("study_aggregation", "calibration")


@dataclasses.dataclass
class RecipeCard:
    """A checked card; see the module docstring for the fields."""

    name: str
    title: str
    source: dict[str, str]
    task: str
    reported: dict[str, str]
    differences: list[str]
    compute: str
    licence: str
    demo_twin: str | None = None
    twin_of: str | None = None
    ensemble: list[list[str]] | None = None
    postprocess: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None


def parse_card(name: str, card: Mapping[str, Any], source: str = "recipe") -> RecipeCard:
    """Check a ``card:`` mapping; every problem is an ``InputError`` naming ``source`` and the key."""
    if not isinstance(card, Mapping) or not card:
        raise InputError(f"{source}: the recipe has no card (a 'card:' section with {', '.join(REQUIRED)})")
    unknown = sorted(set(card) - set(REQUIRED) - set(OPTIONAL))
    missing = [k for k in REQUIRED if not card.get(k)]
    if unknown or missing:
        raise InputError(f"{source}: card has unknown keys {unknown} / lacks {missing}; it needs {', '.join(REQUIRED)}")
    src = _mapping(card["source"], SOURCE_KEYS, source, "card.source")
    reported = _mapping(card["reported"], REPORTED_KEYS, source, "card.reported")
    differences = card["differences"]
    differences = [differences] if isinstance(differences, str) else differences
    if not isinstance(differences, list) or not all(isinstance(d, str) and d.strip() for d in differences):
        raise InputError(f"{source}: card.differences must be a text or a list of texts")
    ensemble = card.get("ensemble")
    if ensemble is not None and (
        not isinstance(ensemble, list)
        or len(ensemble) < 2
        or not all(isinstance(m, list) and all(isinstance(o, str) and "=" in o for o in m) for m in ensemble)
    ):
        raise InputError(f"{source}: card.ensemble must list 2+ members, each a list of key=value overrides")
    post = card.get("postprocess") or {}
    if not isinstance(post, Mapping) or set(post) - set(POSTPROCESS_KEYS):
        raise InputError(f"{source}: card.postprocess takes {', '.join(POSTPROCESS_KEYS)}")
    for key in ("title", "task", "compute", "licence", "demo_twin", "twin_of"):
        if card.get(key) is not None and not isinstance(card[key], str):
            raise InputError(f"{source}: card.{key} must be text")
    return RecipeCard(
        name=name,
        title=card["title"],
        source=src,
        task=card["task"],
        reported=reported,
        differences=[d.strip() for d in differences],
        compute=card["compute"],
        licence=card["licence"],
        demo_twin=card.get("demo_twin"),
        twin_of=card.get("twin_of"),
        ensemble=ensemble,
        postprocess=dict(post),
    )


def _mapping(value: Any, required: tuple[str, ...], source: str, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or any(not value.get(k) for k in required):
        raise InputError(f"{source}: {key} needs {', '.join(required)}")
    return {str(k): str(v) for k, v in value.items()}


def recipes_dir() -> Path:
    """The folder of the shipped recipes (the installed copy, else the source tree's ``train_jobs/``)."""
    folders = recipe_dirs()
    return folders[0] if folders else SOURCE


def read_card(path: str | os.PathLike[str]) -> RecipeCard:
    """The card of the recipe file ``path`` (the recipe is parsed and checked as :func:`load_recipe` does)."""
    path = Path(path)
    recipe = load_recipe(path)
    card = parse_card(recipe.name or path.stem, recipe.card, str(path))
    card.path = path
    return card


def list_cards(folder: str | os.PathLike[str] | None = None) -> list[RecipeCard]:
    """Cards of every ``*.yaml`` recipe in ``folder`` (default :func:`recipes_dir`), by file name."""
    folder = Path(folder) if folder is not None else recipes_dir()
    return [read_card(p) for p in sorted(folder.glob("*.yaml"))]


def find_card(name: str, folder: str | os.PathLike[str] | None = None) -> RecipeCard:
    """The card of the recipe called ``name`` (its ``name:`` or file stem)."""
    folder = Path(folder) if folder is not None else recipes_dir()
    file = folder / f"{name}.yaml"
    if file.is_file():
        return read_card(file)
    for card in list_cards(folder):
        if card.name == name:
            return card
    names = ", ".join(p.stem for p in sorted(folder.glob("*.yaml")))
    raise InputError(f"no recipe {name!r} in {folder}; choose one of: {names}")


def card_markdown(card: RecipeCard) -> str:
    """The card as Markdown (the Train page and ``cxrlt recipes show``)."""
    src = card.source
    lines = [
        f"**{card.title}**",
        "",
        f"- **Source:** {src['team']}, {src['edition']}; {src['paper']}"
        + (f" ([code]({src['code']}))" if src.get("code") else ""),
        f"- **Task:** {card.task}",
        f"- **Reported:** {card.reported['score']} ({card.reported['citation']})",
        f"- **Compute:** {card.compute}",
        f"- **Weights licence:** {card.licence}",
    ]
    if card.twin_of:
        lines.append(f"- **Demo twin of:** `{card.twin_of}`")
    if card.demo_twin:
        lines.append(f"- **Demo twin:** `{card.demo_twin}`")
    if card.ensemble:
        members = "; ".join(" ".join(m) for m in card.ensemble)
        lines.append(f"- **Ensemble members** (each trained with these overrides): {members}")
    if card.postprocess:
        lines.append("- **At prediction:** " + ", ".join(f"{k}: {v}" for k, v in card.postprocess.items()))
    lines += ["- **What cxrlt does differently:**"] + [f"  - {d}" for d in card.differences]
    return "\n".join(lines)


def card_text(card: RecipeCard) -> str:
    """The card as plain text for a terminal."""
    return card_markdown(card).replace("**", "").replace("`", "")
