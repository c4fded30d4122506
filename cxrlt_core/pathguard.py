"""Paths typed into the dashboard stay inside its workspace unless the user explicitly allows others.

The Train page takes ``key=value`` recipe overrides; a path among them (``data.train_csv``, ``data.image_root``,
``data.cache_dir``, ``model.pretrained``, ...) is resolved as the training process will resolve it
(:func:`cxrlt_core.config.resolve_path`: ``${workspace}``, ``~``, relative to the current folder, symbolic links
followed) and must land inside the workspace folder. The terminal (``cxrlt train``) has no such limit: a person at a
shell can already read what the shell can.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cxrlt_core.config import resolve_path
from cxrlt_core.errors import InputError

PATH_SUFFIXES = ("_csv", "_root", "_dir", "_path", "_file", "_folder")
"""A recipe key whose last part ends like this names a file or folder (``data.train_csv``, ``data.cache_dir``)."""
PATH_KEYS = ("model.pretrained", "model.checkpoint", "init.checkpoint")
"""Keys that name a file when their value looks like a path (``model.pretrained`` may also be ``timm`` or a hub
name)."""


def is_path_key(key: str) -> bool:
    """Whether the recipe key ``key`` names a file or folder."""
    return key.rsplit(".", 1)[-1].endswith(PATH_SUFFIXES) or key in PATH_KEYS


def _looks_like_path(value: str) -> bool:
    if not value or value.lower() in ("none", "null", "timm", "true", "false"):
        return False
    if ":" in value.split("/", 1)[0] and not value.startswith("${"):
        return False  # hf-hub:org/name, timm:name: a name, not a path
    return "/" in value or "\\" in value or value.startswith(("~", ".", "${")) or "." in Path(value).name


def override_paths(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of every override that names a path."""
    found = []
    for text in overrides:
        key, sep, value = str(text).partition("=")
        key, value = key.strip(), value.strip().strip("'\"")
        if not sep or not is_path_key(key):
            continue
        if key in PATH_KEYS and not _looks_like_path(value):
            continue
        if value.lower() in ("", "none", "null", "~"):
            continue
        found.append((key, value))
    return found


def inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (symbolic links followed) is ``folder`` or under it."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def paths_outside(overrides: Sequence[str], workspace: str | os.PathLike[str]) -> list[str]:
    """One line per override whose path resolves outside ``workspace``."""
    problems = []
    for key, value in override_paths(overrides):
        resolved = resolve_path(value, workspace)
        if resolved is not None and not inside(resolved, workspace):
            problems.append(f"{key}={value}: {resolved} is outside the workspace {Path(workspace).resolve()}")
    return problems


def check_override_paths(
    overrides: Sequence[str], workspace: str | os.PathLike[str], allow_outside: bool = False
) -> None:
    """Raise one :class:`InputError` naming the first override whose path leaves ``workspace`` (and how many more),
    unless ``allow_outside``."""
    if allow_outside:
        return
    problems = paths_outside(overrides, workspace)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(
            f"{problems[0]}{more}; put the data under the workspace or tick 'allow paths outside the workspace'"
        )
