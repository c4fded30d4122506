"""Packaging hook: the recipes in ``train_jobs/`` are installed as ``cxrlt_core/recipes/*.yaml``.

Everything else is declared in ``pyproject.toml``. ``train_jobs/`` stays at the top of the source tree, where people
read and edit recipes; ``cxrlt_core.recipes`` finds the installed copy, or ``train_jobs/`` in a source checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPES = Path(__file__).resolve().parent / "train_jobs"


class BuildWithRecipes(build_py):
    """``build_py`` that also copies ``train_jobs/*.yaml`` into the built ``cxrlt_core/recipes/``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "cxrlt_core" / "recipes"
        target.mkdir(parents=True, exist_ok=True)
        for recipe in sorted(RECIPES.glob("*.yaml")):
            shutil.copyfile(recipe, target / recipe.name)
        (target / "pipelines").mkdir(exist_ok=True)
        for pipeline in sorted((RECIPES / "pipelines").glob("*.yaml")):
            shutil.copyfile(pipeline, target / "pipelines" / pipeline.name)


setup(cmdclass={"build_py": BuildWithRecipes})
