"""The Task 1 prediction pipeline: checkpoints + images → TTA → weighted ensemble → normal gating → calibration →
a predictions file streamed to disk, with its provenance.

Per batch of rows: each preprocessing (input size, clipping) is decoded once in DataLoader workers; each model runs
its TTA views on its device (:mod:`.tta`) and merges them; the ensemble averages the models' probabilities after
aligning classes by name (:mod:`.ensemble`); gating (:mod:`.gating`) and calibration (:mod:`.calibration`) follow,
in that order. Rows are written in chunks (:mod:`.writer`), so memory stays flat in the number of images.

Failure policy: with ``on_error="raise"`` the first unreadable image stops the run, naming the file; with ``"skip"``
its row is left out of the predictions, listed in ``<out>.failed.csv`` and counted in the metadata
(``complete: false``); a submission written from such a file fails on the missing rows (never zero-filled) until the
user fixes or fills them. Under ``torchrun``, rank ``r`` takes rows ``r::world`` and rank 0 merges in input order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrlt_core import __version__
from cxrlt_core.errors import InputError
from cxrlt_core.inference.calibration import Calibration, load_calibration
from cxrlt_core.inference.ensemble import class_index, normalise_weights
from cxrlt_core.inference.gating import GATING_FORMS, find_normal, normal_gating
from cxrlt_core.inference.loader import ON_ERROR, InferenceImages, image_loader
from cxrlt_core.inference.thresholds import Thresholds, load_thresholds
from cxrlt_core.inference.tta import MERGE_MODES, default_forward_batch, get_tta_set, tta_probabilities
from cxrlt_core.inference.writer import PartWriter, PredictionWriter, failed_path, merge_parts, write_failed

__all__ = [
    "LoadedModel",
    "PRECISIONS",
    "PredictResult",
    "binary_path",
    "load_models",
    "pipeline_provenance",
    "postprocess",
    "predict",
]

ProgressCallback = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclasses.dataclass
class LoadedModel:
    """A checkpoint loaded for inference, with what is needed to feed it."""

    path: Path
    model: torch.nn.Module
    classes: tuple[str, ...]
    preprocess: Any
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: tuple[int, int]
    normal: str | None = None
    label_space: dict[str, Any] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _size_pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    height, width = (int(v) for v in value)
    return height, width


def _spec_from_sidecar(path: Path, model: torch.nn.Module, sidecar: Mapping[str, Any]) -> LoadedModel:
    """Read classes, preprocessing and normalisation from a checkpoint's sidecar (``cxrlt_core.models.checkpoint``)."""
    from cxrlt_core.data.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    config = dict(sidecar.get("model") or sidecar.get("model_config") or {})
    classes = config.get("class_names") or sidecar.get("class_names")
    if not classes:
        raise InputError(f"{path}: checkpoint sidecar names no classes (model.class_names)")
    space = config.get("label_space") or sidecar.get("label_space")
    space = dict(space) if isinstance(space, Mapping) else None
    input_size = config.get("input_size") or sidecar.get("input_size")
    preprocess_data = sidecar.get("preprocess")
    if preprocess_data:
        preprocess = Preprocess.from_dict(preprocess_data)
    elif input_size:
        preprocess = Preprocess(image_size=_size_pair(input_size))
    else:
        raise InputError(f"{path}: checkpoint sidecar has neither preprocess nor input_size")
    mean = tuple(float(v) for v in (config.get("mean") or sidecar.get("mean") or IMAGENET_MEAN))
    std = tuple(float(v) for v in (config.get("std") or sidecar.get("std") or IMAGENET_STD))
    info = {k: config[k] for k in ("backbone", "head", "name", "arch") if k in config}
    return LoadedModel(
        path=path,
        model=model,
        classes=tuple(str(c) for c in classes),
        preprocess=preprocess,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        input_size=_size_pair(input_size) if input_size else tuple(preprocess.image_size),  # type: ignore[arg-type]
        normal=(space or {}).get("normal"),
        label_space=space,
        info=info,
    )


def load_models(
    checkpoints: Sequence[str | os.PathLike[str]], device: torch.device, channels_last: bool = False
) -> list[LoadedModel]:
    """Load each checkpoint (safetensors + JSON sidecar, never unpickled) in eval mode on ``device``."""
    from cxrlt_core.models.checkpoint import load_checkpoint

    if not checkpoints:
        raise InputError("give at least one checkpoint")
    loaded = []
    for checkpoint in checkpoints:
        path = Path(checkpoint)
        model, sidecar = load_checkpoint(path)
        model = model.to(device).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        loaded.append(_spec_from_sidecar(path, model, sidecar))
    return loaded


def binary_path(path: str | os.PathLike[str]) -> Path:
    """Where thresholded 0/1 decisions go beside predictions ``X.csv``: ``X.binary.csv`` (same format)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.binary{path.suffix}")


def postprocess(
    probabilities: np.ndarray,
    classes: Sequence[str],
    gating_alpha: float = 0.0,
    gating_form: str = "power",
    normal: str | None = None,
    calibration: Calibration | None = None,
) -> np.ndarray:
    """Gating then calibration on ensemble probabilities (N, C); the order the pipeline applies them in."""
    out = normal_gating(probabilities, classes, alpha=gating_alpha, form=gating_form, normal=normal)
    if calibration is not None:
        out = calibration.apply(out, classes)
    return out


def pipeline_provenance(
    models: Sequence[LoadedModel] | Sequence[str],
    weights: Sequence[float] | np.ndarray,
    tta: str,
    merge: str,
    gating: Mapping[str, Any],
) -> dict[str, Any]:
    """The part of the provenance that makes two prediction files comparable (checked when calibrating)."""
    names = [m.name if isinstance(m, LoadedModel) else Path(m).name for m in models]
    return {
        "models": names,
        "weights": [round(float(w), 12) for w in weights],
        "tta": tta,
        "merge": merge,
        "gating": {"alpha": float(gating.get("alpha", 0.0)), "form": gating.get("form", "power")},
    }


def _check_calibration_pipeline(calibration: Calibration, pipeline: Mapping[str, Any]) -> None:
    fitted = calibration.fitted_on.get("pipeline")
    if not fitted:
        return
    differs = [key for key in ("models", "weights", "tta", "merge", "gating") if fitted.get(key) != pipeline.get(key)]
    if differs:
        warnings.warn(
            f"calibration was fitted on predictions made with a different {', '.join(differs)} "
            f"({', '.join(f'{k}: {fitted.get(k)!r}' for k in differs)}); it may not fit these predictions",
            UserWarning,
            stacklevel=3,
        )


@dataclasses.dataclass
class PredictResult:
    """What :func:`predict` wrote."""

    path: Path | None
    rows: int
    failed: int
    failed_file: Path | None
    binary_file: Path | None
    metadata: dict[str, Any]
    seconds: float


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class _Normaliser:
    """(N, 1, H, W) gray in [0, 255] → (N, 3, H', W') ``(x / 255 − mean) / std``, as ``to_model_tensor`` computes it
    (float32 ``x · (1 / (255·std)) − mean / std``), resized to the model's input size if it differs."""

    def __init__(self, spec: LoadedModel, device: torch.device, channels_last: bool):
        mean = np.asarray(spec.mean, dtype=np.float64)
        std = np.asarray(spec.std, dtype=np.float64)
        self.scale = torch.tensor((1.0 / (255.0 * std)).astype(np.float32), device=device).view(1, -1, 1, 1)
        self.shift = torch.tensor((mean / std).astype(np.float32), device=device).view(1, -1, 1, 1)
        self.size = spec.input_size
        self.channels_last = channels_last

    def __call__(self, gray: torch.Tensor) -> torch.Tensor:
        if tuple(gray.shape[-2:]) != self.size:
            gray = torch.nn.functional.interpolate(gray, size=self.size, mode="bilinear", antialias=True)
        out = gray * self.scale - self.shift
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def _rows_of(manifest: Any) -> tuple[list[str], list[Path]]:
    ids = [str(i) for i in manifest.ids]
    return ids, [manifest.image_path(i) for i in range(len(ids))]


def predict(
    checkpoints: Sequence[str | os.PathLike[str]],
    manifest: Any,
    out_path: str | os.PathLike[str],
    weights: Sequence[float] | None = None,
    tta: str = "medium",
    merge: str = "mean",
    gating_alpha: float = 0.5,
    gating_form: str = "power",
    calibration: str | os.PathLike[str] | Calibration | None = None,
    thresholds: str | os.PathLike[str] | Thresholds | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    device: str = "auto",
    precision: str = "auto",
    forward_batch: int | str | None = "auto",
    channels_last: bool | str = "auto",
    on_error: str = "raise",
    chunk_size: int = 4096,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> PredictResult:
    """Predict every row of ``manifest`` with a weighted ensemble of checkpoints; write ``out_path``.

    Args:
        checkpoints: ``.safetensors`` checkpoints (with their JSON sidecars); classes are aligned by name to the
            first model's classes, which are the output columns.
        manifest: a :class:`~cxrlt_core.data.manifest.Manifest` with an image folder (ids and image paths).
        out_path: ``.csv`` or ``.parquet``.
        weights: one per checkpoint, normalised to sum 1 (default equal).
        tta: a TTA set (``none``, ``flip``, ``light``, ``medium``, ``flip_scale``).
        merge: per-model merge of the views (``mean``, ``logit_mean``, ``gmean``, ``max``, ``median``).
        gating_alpha, gating_form: normal gating (α = 0: none).
        calibration: a calibration JSON (or object), applied after gating.
        thresholds: a thresholds JSON (or object): also writes 0/1 decisions to :func:`binary_path`.
        batch_size: images per DataLoader batch (each becomes ``V x batch_size`` view-images).
        num_workers: DataLoader worker processes per preprocessing.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16``.
        forward_batch: most view-images per model call; ``"auto"``: the measured default of the device for each
            model's input size (:func:`~cxrlt_core.inference.tta.default_forward_batch`); ``None``: all views of a
            batch in one call.
        channels_last: NHWC memory format for the model (``auto``: on CUDA).
        on_error: ``raise`` or ``skip`` (module docstring).
        chunk_size: rows buffered before each write.
        cache_dir: optional decoded-image cache folder (:class:`~cxrlt_core.data.image_cache.ImageCache`).
        threads: torch intra-op threads of this process (default: torch's choice). On a CPU shared with decoding
            workers or other jobs, fewer threads than cores avoid OpenMP oversubscription.
        progress: ``progress(done, total)`` after each batch (rows of this process).
        show_progress: draw a tqdm bar on stderr.
    """
    from cxrlt_core.distributed import all_gather_object, init_distributed, launched_by_torchrun

    started = time.perf_counter()
    if on_error not in ON_ERROR:
        raise InputError(f"unknown image error policy {on_error!r}; choose one of: {', '.join(ON_ERROR)}")
    views = get_tta_set(tta)
    MERGE_MODES.get(merge)
    GATING_FORMS.get(gating_form)
    if chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {chunk_size}")
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{out_path}: predictions must be .parquet or .csv")
    calibration_obj = load_calibration(calibration) if isinstance(calibration, (str, os.PathLike)) else calibration
    thresholds_obj = load_thresholds(thresholds) if isinstance(thresholds, (str, os.PathLike)) else thresholds
    ids, paths = _rows_of(manifest)
    if not ids:
        raise InputError(f"{getattr(manifest, 'name', 'manifest')}: no rows to predict")

    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(int(threads))
    dist = init_distributed(device)
    torch_device = dist.device
    precision = _resolve_precision(precision, torch_device)
    if forward_batch is not None and forward_batch != "auto" and int(forward_batch) < 1:
        raise InputError(f"forward_batch must be at least 1, 'auto' or None, got {forward_batch}")
    use_channels_last = torch_device.type == "cuda" if channels_last == "auto" else bool(channels_last)

    models = load_models(checkpoints, torch_device, channels_last=use_channels_last)
    w = normalise_weights(weights, len(models))
    classes = models[0].classes
    indexes = [class_index(m.classes, classes, m.name) for m in models]
    normal = next((m.normal for m in models if m.normal), None)
    normal_column = find_normal(classes, normal)
    gating = {
        "alpha": float(gating_alpha),
        "form": gating_form,
        "normal": None if normal_column is None else classes[normal_column],
        "applied": bool(gating_alpha) and normal_column is not None,
    }
    if gating_alpha:
        normal_gating(np.full((1, len(classes)), 0.5), classes, gating_alpha, gating_form, normal)  # check + warn once
    pipeline = pipeline_provenance(models, w, tta, merge, gating)
    if calibration_obj is not None:
        class_index(calibration_obj.classes, classes, "the calibration file")
        _check_calibration_pipeline(calibration_obj, pipeline)
    threshold_values = None if thresholds_obj is None else thresholds_obj.for_classes(classes)

    # Models sharing a preprocessing share one decode of each image.
    groups: dict[str, list[int]] = {}
    for m, spec in enumerate(models):
        groups.setdefault(spec.preprocess.key(), []).append(m)
    rows = np.arange(dist.rank, len(ids), dist.world_size)

    def image_cache(preprocess: Any) -> Any:
        if cache_dir is None:
            return None
        from cxrlt_core.data.image_cache import ImageCache

        return ImageCache(cache_dir, preprocess)

    loaders = [
        image_loader(
            InferenceImages(
                paths, models[members[0]].preprocess, rows=rows, cache=image_cache(models[members[0]].preprocess)
            ),
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=torch_device.type == "cuda",
        )
        for members in groups.values()
    ]
    normalisers = [_Normaliser(spec, torch_device, use_channels_last) for spec in models]
    chunks = [
        default_forward_batch(torch_device, spec.input_size) if forward_batch == "auto" else forward_batch
        for spec in models
    ]

    distributed = launched_by_torchrun() and dist.world_size > 1
    parts_dir = out_path.with_name(f".{out_path.name}.parts")
    writer: PredictionWriter | PartWriter
    binary_writer: PredictionWriter | PartWriter | None = None
    if distributed:
        writer = PartWriter(parts_dir / f"rank{dist.rank}.csv", classes)
        if threshold_values is not None:
            binary_writer = PartWriter(parts_dir / f"rank{dist.rank}.binary.csv", classes)
    else:
        writer = PredictionWriter(out_path, classes)
        if threshold_values is not None:
            binary_writer = PredictionWriter(binary_path(out_path), classes, binary=True)

    failed: list[tuple[int, str, str, str]] = []
    error: str | None = None
    done = 0
    bar = None
    if show_progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc="predict", unit="img", dynamic_ncols=True)
    buffer_rows: list[np.ndarray] = []
    buffer_scores: list[np.ndarray] = []

    def flush() -> None:
        if not buffer_rows:
            return
        chunk_rows = np.concatenate(buffer_rows)
        chunk_scores = np.concatenate(buffer_scores)
        chunk_ids = [ids[r] for r in chunk_rows]
        if distributed:
            writer.write(chunk_rows.tolist(), chunk_ids, chunk_scores)  # type: ignore[call-arg]
        else:
            writer.write(chunk_ids, chunk_scores)  # type: ignore[call-arg]
        if binary_writer is not None:
            decisions = (chunk_scores >= threshold_values[None, :]).astype(np.float64)  # type: ignore[index]
            if distributed:
                binary_writer.write(chunk_rows.tolist(), chunk_ids, decisions)  # type: ignore[call-arg]
            else:
                binary_writer.write(chunk_ids, decisions)  # type: ignore[call-arg]
        buffer_rows.clear()
        buffer_scores.clear()

    try:
        with torch.inference_mode():
            for batches in zip(*loaders):
                bad: dict[int, str] = {}
                for batch in batches:
                    for row, message in batch.failed:
                        bad.setdefault(row, message)
                if bad and on_error == "raise":
                    row, message = min(bad.items())
                    raise InputError(
                        f"{message} (row {row + 2} of {getattr(manifest, 'name', 'the manifest')}, id {ids[row]!r}); "
                        "use --on-error skip to list unreadable images and go on"
                    )
                failed += [(row, ids[row], str(paths[row]), message) for row, message in bad.items()]
                keep = batches[0].indices[~np.isin(batches[0].indices, list(bad))]
                if keep.size:
                    ensemble = np.zeros((keep.size, len(classes)), dtype=np.float64)
                    for (_, members), batch in zip(groups.items(), batches):
                        select = torch.from_numpy(np.flatnonzero(np.isin(batch.indices, keep)))
                        gray = batch.images.index_select(0, select).to(torch_device, non_blocking=True)
                        gray = gray.unsqueeze(1).to(torch.float32)
                        for m in members:
                            with _autocast(precision, torch_device):
                                probs = tta_probabilities(
                                    models[m].model,
                                    gray,
                                    views,
                                    merge,
                                    fill=0.0,
                                    transform=normalisers[m],
                                    forward_batch=chunks[m],  # type: ignore[arg-type]
                                )
                            ensemble += w[m] * probs.cpu().numpy()[:, indexes[m]]
                    buffer_rows.append(keep)
                    buffer_scores.append(
                        postprocess(ensemble, classes, gating_alpha, gating_form, normal, calibration_obj)
                        if gating["applied"] or calibration_obj is not None
                        else ensemble
                    )
                    if sum(len(r) for r in buffer_rows) >= chunk_size:
                        flush()
                done += len(batches[0].indices) + len(batches[0].failed)
                if bar is not None:
                    bar.update(len(batches[0].indices) + len(batches[0].failed))
                if progress is not None:
                    progress(done, len(rows))
            flush()
    except BaseException as exc:
        error = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        if not distributed:
            for handle in (writer, binary_writer):
                if isinstance(handle, PredictionWriter):
                    handle.abort(exc)
            raise
    finally:
        if bar is not None:
            bar.close()

    metadata = {
        "kind": "cxrlt-predictions",
        "task": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cxrlt_version": __version__,
        "models": [
            {
                "checkpoint": str(spec.path),
                "sha256": _file_digest(spec.path),
                "weight": float(weight),
                "classes": len(spec.classes),
                "input_size": list(spec.input_size),
                "preprocess": spec.preprocess.to_dict(),
                **spec.info,
            }
            for spec, weight in zip(models, w)
        ],
        "weights": [float(v) for v in w],
        "classes": list(classes),
        "label_space": models[0].label_space,
        "tta": {"set": tta, "views": [v.name for v in views]},
        "merge": merge,
        "gating": gating,
        "calibration": _file_provenance(calibration, calibration_obj, method=getattr(calibration_obj, "method", None)),
        "thresholds": _file_provenance(
            thresholds, thresholds_obj, values=None if threshold_values is None else threshold_values.tolist()
        ),
        "pipeline": pipeline,
        "images": {
            "manifest": str(getattr(manifest, "path", "") or ""),
            "image_root": str(getattr(manifest, "image_root", "") or ""),
            "rows": len(ids),
        },
        "device": str(torch_device),
        "precision": precision,
        "forward_batch": chunks,
        "threads": torch.get_num_threads() if torch_device.type == "cpu" else None,
        "world_size": dist.world_size,
        "on_error": on_error,
    }

    if distributed:
        writer.close()
        if binary_writer is not None:
            binary_writer.close()
        gathered = all_gather_object({"error": error, "failed": failed})
        errors = [g["error"] for g in gathered if g["error"]]
        if not dist.is_main:
            if error is not None:
                raise InputError(error)
            return PredictResult(None, 0, 0, None, None, metadata, time.perf_counter() - started)
        if errors:
            shutil.rmtree(parts_dir, ignore_errors=True)
            raise InputError(errors[0])
        failed = sorted(f for g in gathered for f in g["failed"])
        final = PredictionWriter(out_path, classes)
        written = merge_parts([parts_dir / f"rank{r}.csv" for r in range(dist.world_size)], final, chunk_size)
        metadata.update(_completion(written, failed, out_path))
        binary_file = None
        if threshold_values is not None:
            binary_final = PredictionWriter(binary_path(out_path), classes, binary=True)
            merge_parts([parts_dir / f"rank{r}.binary.csv" for r in range(dist.world_size)], binary_final, chunk_size)
            binary_file = binary_final.close({**metadata, "binary": True})
        path = final.close(metadata)
        shutil.rmtree(parts_dir, ignore_errors=True)
    else:
        written = writer.rows  # type: ignore[union-attr]
        metadata.update(_completion(written, failed, out_path))
        binary_file = None
        if binary_writer is not None:
            binary_file = binary_writer.close({**metadata, "binary": True})  # type: ignore[union-attr]
        path = writer.close(metadata)  # type: ignore[union-attr]
    failed_file = write_failed(out_path, failed)
    return PredictResult(path, written, len(failed), failed_file, binary_file, metadata, time.perf_counter() - started)


def _file_provenance(source: Any, loaded: Any, **fields: Any) -> dict[str, Any] | None:
    if loaded is None:
        return None
    return {"file": str(source) if isinstance(source, (str, os.PathLike)) else None, **fields}


def _completion(written: int, failed: Sequence[Any], out_path: Path) -> dict[str, Any]:
    return {
        "rows_predicted": int(written),
        "failed_images": len(failed),
        "failed_file": failed_path(out_path).name if failed else None,
        "complete": not failed,
    }
