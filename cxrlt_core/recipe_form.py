"""The recipes a person can launch, and the ``key=value`` overrides a form of edited recipe fields stands for.

The Train page shows a few recipe keys as form fields; what is sent to ``cxrlt train`` is only the keys whose value
differs from the recipe's, plus the free-text overrides, so that the command line stays the shortest true one.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

from cxrlt_core.errors import InputError
from cxrlt_core.recipes import RECIPE_SUFFIX, recipe_names, recipe_path

# The recipe keys the Train page shows as fields, in its order.
FORM_KEYS = (
    "model.backbone", "model.head", "loss.name", "sampler.enabled", "data.image_size", "optim.batch_size",
    "optim.phase1.epochs", "optim.phase2.epochs", "optim.phase1.lr", "optim.phase2.backbone_lr",
    "optim.phase2.head_lr",
)  # fmt: skip


def available_recipes() -> dict[str, Path]:
    """Recipe file name → path of every recipe shipped with cxrlt (:mod:`cxrlt_core.recipes`), sorted by name."""
    return {f"{name}{RECIPE_SUFFIX}": recipe_path(name) for name in recipe_names()}


def recipe_value(recipe: Any, key: str) -> Any:
    """The value at a dotted ``key`` of a recipe dataclass (``optim.phase1.epochs``)."""
    node: Any = dataclasses.asdict(recipe)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"recipe has no key {key!r}")
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def form_overrides(recipe: Any, values: dict[str, Any], extra: str = "") -> list[str]:
    """``key=value`` for each form field that differs from ``recipe``, then the free-text overrides.

    Args:
        recipe: the loaded base recipe.
        values: form key → the value shown in the form.
        extra: free text of space-separated ``key=value`` overrides (shell quoting allowed).

    Raises:
        InputError: an extra override without ``=``, or unbalanced quotes.
    """
    overrides = [f"{key}={value}" for key, value in values.items() if not _same(value, recipe_value(recipe, key))]
    try:
        words = shlex.split(extra)
    except ValueError as exc:
        raise InputError(f"more overrides: {exc}") from None
    bad = [word for word in words if "=" not in word]
    if bad:
        raise InputError(f"more overrides: {', '.join(bad)} is not key=value")
    return overrides + words
