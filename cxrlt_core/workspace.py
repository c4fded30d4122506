"""A workspace: the folder holding a project's data sets, runs, prompt sets, caches and exports.

Layout (docs/design.md)::

    W/datasets/<name>/      labels CSVs + images/ (+ dataset.json for generated sets)
    W/runs/<run_id>/        config.yaml, status.json, metrics.jsonl, checkpoints/, predictions/
    W/models/<name>/        zero-shot CLIP models in open_clip's local-dir format
    W/prompts/<name>/       prompt sets with their version history
    W/postprocess/          saved gating / calibration / threshold choices
    W/cache/                decoded-image and embedding caches
    W/exports/              submission CSVs
    W/ensembles/            ensemble spec files (*.yaml) the Export page offers (optional)
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from cxrlt_core.errors import InputError
from cxrlt_core.paths import default_workspace

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SUBFOLDERS = ("datasets", "runs", "models", "prompts", "postprocess", "cache", "exports")
PREDICTION_SUFFIXES = (".parquet", ".csv")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component (letters, digits, ``._-``), else raise.

    Run, data set, prompt-set and export names become folder names: ``../x`` or ``a/b`` must never escape the
    workspace.
    """
    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in {".", ".."} or ".." in name:
        raise InputError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


@dataclasses.dataclass(frozen=True)
class Workspace:
    """A workspace folder and the places inside it."""

    root: Path

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, create: bool = True) -> Workspace:
        """Open ``root`` (default ``$CXRLT_WORKSPACE`` or ``./workspace/demo``), creating its folders."""
        path = Path(root) if root is not None else default_workspace()
        path = path.expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise InputError(f"workspace {path} is a file, not a folder")
        workspace = cls(path)
        if create:
            for sub in SUBFOLDERS:
                (path / sub).mkdir(parents=True, exist_ok=True)
        return workspace

    def child(self, subfolder: str, name: str, what: str = "name") -> Path:
        """``root/subfolder/name`` with ``name`` checked against path traversal."""
        if subfolder not in SUBFOLDERS:
            raise ValueError(f"unknown workspace folder {subfolder!r}")
        return self.root / subfolder / check_name(name, what)

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def postprocess_dir(self) -> Path:
        return self.root / "postprocess"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def ensembles_dir(self) -> Path:
        return self.root / "ensembles"

    def dataset(self, name: str) -> Path:
        return self.child("datasets", name, "data set name")

    def run(self, name: str) -> Path:
        return self.child("runs", name, "run name")

    def list_datasets(self) -> list[str]:
        """Data sets: sub-folders of ``datasets/`` holding at least one CSV."""
        return _sorted_dirs(self.datasets_dir, lambda d: any(d.glob("*.csv")))

    def list_runs(self) -> list[str]:
        """Run folders (those with a ``config.yaml`` or ``status.json``)."""
        return _sorted_dirs(self.runs_dir, lambda d: (d / "status.json").exists() or (d / "config.yaml").exists())

    def list_models(self) -> list[str]:
        """Zero-shot models stored in open_clip's local-dir format."""
        return _sorted_dirs(self.models_dir, lambda d: (d / "open_clip_config.json").exists())

    def list_prompt_sets(self) -> list[str]:
        """Prompt sets (folders under ``prompts/``)."""
        return _sorted_dirs(self.prompts_dir, lambda d: True)

    def list_predictions(self) -> list[Path]:
        """Every predictions file of every run, newest first."""
        files = [
            path
            for path in self.runs_dir.glob("*/predictions/*")
            if path.suffix in PREDICTION_SUFFIXES and not path.name.startswith(".")
        ]
        return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

    def list_ensembles(self) -> list[Path]:
        """Ensemble spec files (``ensembles/*.yaml``), by name."""
        return sorted(p for p in self.ensembles_dir.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))

    def list_exports(self) -> list[Path]:
        """Submission files written to ``exports/``."""
        return sorted(self.exports_dir.glob("*.csv"))


def _sorted_dirs(parent: Path, keep) -> list[str]:
    if not parent.is_dir():
        return []
    return sorted(d.name for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".") and keep(d))
