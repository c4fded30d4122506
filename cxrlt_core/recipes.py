"""Recipes shipped with cxrlt, found by name: ``cxrlt train --config demo_csra``.

The recipes live in ``train_jobs/`` at the top of the source tree; building the package copies them into
``cxrlt_core/recipes/`` (``setup.py``), so an installed cxrlt finds them without the source tree and a source
checkout finds them where they are written.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT

RECIPE_SUFFIX = ".yaml"
INSTALLED = Path(__file__).resolve().parent / "recipes"
SOURCE = REPO_ROOT / "train_jobs"


def recipe_dirs() -> list[Path]:
    """Folders that hold the shipped recipes: the installed copy, else the source tree's ``train_jobs/``."""
    return [folder for folder in (INSTALLED, SOURCE) if folder.is_dir()]


def recipe_names() -> list[str]:
    """Names of the shipped recipes, sorted (the first folder that has a name wins)."""
    return sorted({p.stem for folder in recipe_dirs() for p in folder.glob(f"*{RECIPE_SUFFIX}")})


def recipe_path(name: str) -> Path:
    """The file of shipped recipe ``name`` (``demo_csra`` or ``demo_csra.yaml``)."""
    stem = name[: -len(RECIPE_SUFFIX)] if name.endswith(RECIPE_SUFFIX) else name
    for folder in recipe_dirs():
        candidate = folder / f"{stem}{RECIPE_SUFFIX}"
        if candidate.is_file():
            return candidate
    names = recipe_names()
    close = difflib.get_close_matches(stem, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"shipped recipes: {', '.join(names) or 'none'}"
    raise InputError(f"{name}: no such recipe file or shipped recipe; {hint}")


def resolve_recipe(name_or_path: str | os.PathLike[str]) -> Path:
    """A recipe file: ``name_or_path`` itself when it is a file, else the shipped recipe of that name.

    A value that names a folder (contains a path separator) and is not a file is an error naming the file, so a
    typo in a path is never silently replaced by a shipped recipe.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    if os.sep in text or (os.altsep and os.altsep in text) or "/" in text:
        raise InputError(f"{path}: recipe file not found")
    return recipe_path(text)
