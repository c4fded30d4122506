"""The validation and test predictions of a finished run, written into the run folder.

``runs/<run>/predictions/val.parquet`` and ``test.parquet`` are what the Results, Gating and Export pages list.
``cxrlt train`` writes them when a run finishes; ``cxrlt predict-run RUN`` and the Train page write them on demand.

- **val**: the run's validation split: ``data.val_csv`` when the recipe names one, else the same patient-grouped
  split of the training CSV that training held out (same seed), so the figures are on images the model never saw.
- **test**: ``test.csv`` beside the training CSV (the CXR-LT layout: ids only), when there is one.

Both use the best checkpoint, no normal gating (the Gating page applies it live) and the TTA set given
(default ``none``: one view, the fastest).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrlt_core import runs
from cxrlt_core.config import load_recipe, resolve_path
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.data.splits import patient_grouped_split
from cxrlt_core.errors import InputError
from cxrlt_core.inference.predict import predict

PREDICTIONS_DIR = "predictions"
TEST_CSV = "test.csv"
Progress = Callable[[str, int, int], None]


def _val_manifest(recipe: Any, workspace: str | os.PathLike[str] | None) -> Any:
    cfg = recipe.data
    common = {
        "image_root": resolve_path(cfg.image_root, workspace),
        "label_space": cfg.label_space,
        "id_column": cfg.id_column,
        "uncertain": cfg.uncertain,
        "meta_csv": resolve_path(cfg.meta_csv, workspace),
    }
    if cfg.val_csv:
        return read_manifest(resolve_path(cfg.val_csv, workspace), **common)
    full = read_manifest(resolve_path(cfg.train_csv, workspace), **common)
    _, val_idx = patient_grouped_split(full, cfg.val_fraction, seed=cfg.split_seed, labels=full.labels)
    return full.subset(val_idx)


def _test_manifest(recipe: Any, workspace: str | os.PathLike[str] | None) -> Any | None:
    train_csv = resolve_path(recipe.data.train_csv, workspace)
    test_csv = train_csv.parent / TEST_CSV if train_csv is not None else None
    if test_csv is None or not test_csv.is_file():
        return None
    return read_manifest(
        test_csv,
        image_root=resolve_path(recipe.data.image_root, workspace),
        label_space=recipe.data.label_space,
        id_column=recipe.data.id_column,
        require_labels=False,
    )


def prediction_manifests(run_dir: str | os.PathLike[str], workspace: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Split name → manifest of the images a run's predictions cover (``val`` always, ``test`` when present)."""
    config = Path(run_dir) / runs.CONFIG_FILE
    if not config.is_file():
        raise InputError(f"{config}: the run has no config.yaml")
    recipe = load_recipe(config)
    manifests = {"val": _val_manifest(recipe, workspace)}
    test = _test_manifest(recipe, workspace)
    if test is not None:
        manifests["test"] = test
    return manifests


def write_run_predictions(
    run_dir: str | os.PathLike[str],
    workspace: str | os.PathLike[str] | None = None,
    tta: str = "none",
    device: str = "auto",
    progress: Progress | None = None,
    show_progress: bool = False,
) -> dict[str, Path]:
    """Predict the run's val (and test) images with its best checkpoint; returns split → predictions file.

    Args:
        run_dir: the run folder (``W/runs/<run>``).
        workspace: the workspace that ``${workspace}`` in the run's recipe stands for.
        tta: a registered TTA set.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: ``progress(split, done, total)`` after each batch.

    Raises:
        InputError: the run has no best checkpoint or no config, or its data cannot be read.
    """
    run_dir = Path(run_dir)
    checkpoint = runs.checkpoint_path(run_dir, "best")
    if not checkpoint.is_file():
        raise InputError(f"run {run_dir.name!r} has no best checkpoint ({checkpoint}); train it first")
    written: dict[str, Path] = {}
    for split, manifest in prediction_manifests(run_dir, workspace).items():
        out = run_dir / PREDICTIONS_DIR / f"{split}.parquet"
        callback = None if progress is None else (lambda done, total, s=split: progress(s, done, total))
        predict(
            [checkpoint], manifest, out, tta=tta, gating_alpha=0.0, num_workers=0, device=device,
            progress=callback, show_progress=show_progress,
        )  # fmt: skip
        written[split] = out
    runs.write_status(run_dir, predictions={split: str(path.name) for split, path in written.items()})
    return written
