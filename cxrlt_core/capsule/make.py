"""``cxrlt capsule make``: pack a predictions file, what it was made from and the figures scored from it."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrlt_core import runs
from cxrlt_core.atomic import atomic_path, write_json, write_text
from cxrlt_core.capsule import CAPSULE_KIND, CAPSULE_VERSION, IMAGES_FILE, MANIFEST_FILE
from cxrlt_core.capsule.hashes import image_lines, sha256_file, software
from cxrlt_core.capsule.scoring import ScorerSpec, score
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.predictions import read_predictions, sidecar_path

PathLike = str | os.PathLike[str]
Progress = Callable[[int, int], None]


@dataclasses.dataclass
class CapsuleResult:
    """What :func:`make_capsule` wrote."""

    path: Path
    figures: dict[str, float | None]
    n_images: int
    n_checkpoints: int


def _file_entry(path: PathLike) -> dict[str, str]:
    path = Path(path).resolve()
    return {"path": str(path), "sha256": sha256_file(path)}


def _copy_entry(source: Path, folder: Path, relative: str) -> dict[str, str]:
    """Copy ``source`` into the capsule at ``relative``; record both places and the digest."""
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise InputError(f"{source}: cannot copy into the capsule ({exc.strerror or exc})") from None
    return {"path": str(source.resolve()), "copy": relative, "sha256": sha256_file(target)}


def _image_manifest(ids_csv: Path, image_root: Path, label_space: Any) -> list[str]:
    """Each listed image's path relative to ``image_root`` (ids resolved as training and prediction do)."""
    if not image_root.is_dir():
        raise InputError(f"{image_root}: image folder not found (give --images DIR)")
    manifest = read_manifest(ids_csv, image_root=image_root, label_space=label_space, require_labels=False)
    root = image_root.resolve()
    relative = []
    for i in range(len(manifest)):
        path = manifest.image_path(i)
        if not path.is_file():
            raise InputError(f"{ids_csv}: image {manifest.ids[i]!r} not found at {path}")
        relative.append(path.resolve().relative_to(root).as_posix())
    return relative


def _checkpoints(provenance: Mapping[str, Any], folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Digests of each checkpoint and its sidecar (copied), and the resolved recipe of its run (copied)."""
    entries, recipes = [], []
    for i, model in enumerate(provenance.get("models") or []):
        if not isinstance(model, Mapping) or not model.get("checkpoint"):
            continue  # e.g. a zero-shot model: named by its spec in the provenance, not a cxrlt checkpoint
        path = Path(str(model["checkpoint"]))
        if not path.is_file():
            raise InputError(f"checkpoint {path} of the predictions is not found")
        entry: dict[str, Any] = _file_entry(path)
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            entry["sidecar"] = _copy_entry(sidecar, folder, f"checkpoints/{i}_{path.stem}.json")
        entries.append(entry)
        config = path.parent.parent / runs.CONFIG_FILE
        if path.parent.name == runs.CHECKPOINT_DIR and config.is_file():
            run = path.parent.parent.name
            recipes.append({"run": run, **_copy_entry(config, folder, f"recipes/{i}_{run}.yaml")})
    return entries, recipes


def _predictions_entry(path: Path, folder: Path) -> dict[str, Any]:
    """The predictions file copied (with its ``.meta.json`` sidecar, for a CSV)."""
    entry: dict[str, Any] = _copy_entry(path, folder, f"predictions/{path.name}")
    meta = sidecar_path(path)
    if meta.is_file():
        entry["sidecar"] = _copy_entry(meta, folder, f"predictions/{meta.name}")
    return entry


def _calibration(provenance: Mapping[str, Any]) -> dict[str, str] | None:
    info = provenance.get("calibration") or {}
    source = info.get("file") if isinstance(info, Mapping) else None
    return _file_entry(source) if source and Path(source).is_file() else None


def make_capsule(
    out: PathLike,
    predictions: PathLike,
    labels: PathLike | None = None,
    train_labels: PathLike | None = None,
    ids: PathLike | None = None,
    images: PathLike | None = None,
    scorer: ScorerSpec | None = None,
    extra_files: Sequence[PathLike] = (),
    overwrite: bool = False,
    progress: Progress | None = None,
) -> CapsuleResult:
    """Write a capsule (a folder, or a zip when ``out`` ends in ``.zip``) for ``predictions``.

    Args:
        out: the capsule folder or ``.zip`` file.
        predictions: the predictions file the figures are scored from (its provenance names checkpoints and images).
        labels: the labels CSV the figures are scored against (``None``: a capsule without figures, e.g. for a
            submission whose labels are hidden: its predictions can still be re-run).
        train_labels: the training CSV whose prevalence sets head / medium / tail.
        ids: the CSV listing the predicted images (default: the one the provenance names, else ``labels``).
        images: their folder (default: the one the provenance names).
        scorer: the scorer variant (default :class:`ScorerSpec`).
        extra_files: other files the result rests on (e.g. the submission CSV), hashed and copied.
        overwrite: replace an existing capsule at ``out``.
        progress: ``progress(done, total)`` while hashing images.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; choose another --out (or --force to replace it)")
    scorer = scorer or ScorerSpec()
    pred = read_predictions(predictions)
    provenance = pred.metadata
    images_info = provenance.get("images") or {}
    ids_csv = Path(ids or images_info.get("manifest") or labels or "")
    if not ids_csv.is_file():
        raise InputError(f"no CSV of the predicted images (got {str(ids_csv)!r}); give --ids")
    image_root = Path(images or images_info.get("image_root") or "")
    figures = score(pred, labels, train_labels, scorer) if labels is not None else {}
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        relative = _image_manifest(ids_csv, image_root, scorer.label_space)
        lines = [f"{digest}  {rel}\n" for digest, rel in image_lines(image_root, relative, progress)]
        write_text(staging / IMAGES_FILE, "".join(lines))
        checkpoints, recipes = _checkpoints(provenance, staging)
        pred_path = Path(predictions)
        manifest = {
            "kind": CAPSULE_KIND,
            "version": CAPSULE_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "software": software(),
            "predictions": {**_predictions_entry(pred_path, staging), "provenance": provenance},
            "ids": _file_entry(ids_csv),
            "labels": _file_entry(labels) if labels is not None else None,
            "train_labels": _file_entry(train_labels) if train_labels is not None else None,
            "images": {
                "root": str(image_root.resolve()),
                "count": len(relative),
                "list": IMAGES_FILE,
                "sha256": sha256_file(staging / IMAGES_FILE),
            },
            "checkpoints": checkpoints,
            "calibration": _calibration(provenance),
            "recipes": recipes,
            "extra_files": [_copy_entry(Path(p), staging, f"files/{Path(p).name}") for p in extra_files],
            "scorer": scorer.to_dict(),
            "figures": figures,
        }
        write_json(staging / MANIFEST_FILE, manifest)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CapsuleResult(out, figures, len(relative), len(checkpoints))


def _publish(staging: Path, out: Path) -> None:
    """Move the finished folder into place, or zip it (members in sorted order) when ``out`` ends in ``.zip``."""
    if out.suffix.lower() == ".zip":
        with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(staging).as_posix())
        return
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(staging, out)
