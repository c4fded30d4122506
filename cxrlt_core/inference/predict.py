"""The Task 1 prediction pipeline in stages: load → views → merge → ensemble → gate → calibrate → write.

- **load** (:func:`load_models`): checkpoints (safetensors + sidecar) with what is needed to feed each model;
- **views** (:func:`view_loaders`): each preprocessing (input size, clipping) decodes every image once, in DataLoader
  workers, and each model's TTA views are made from that batch on its device (:mod:`.tta`);
- **merge** (:func:`model_probabilities`): a model's views merged into one probability per class;
- **ensemble** (:func:`ensemble_batch`): the weighted mean of the models' probabilities, classes aligned by name
  (:mod:`.ensemble`);
- **gate** and **calibrate** (:class:`PostProcess`): normal gating (:mod:`.gating`), then calibration
  (:mod:`.calibration`), in that order; thresholds turn the result into 0/1 decisions when given;
- **write** (:class:`PredictionSink`): rows are written in chunks (:mod:`.writer`), so memory stays flat in the
  number of images, with the provenance of every stage.

All settings are one :class:`PredictOptions`; :func:`predict` runs the stages.

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
from tqdm.auto import tqdm

from cxrlt_core import __version__
from cxrlt_core.data.image_cache import ImageCache
from cxrlt_core.distributed import all_gather_object, init_distributed, launched_by_torchrun
from cxrlt_core.errors import InputError
from cxrlt_core.inference.calibration import Calibration, load_calibration
from cxrlt_core.inference.ensemble import class_index, normalise_weights
from cxrlt_core.inference.gating import GATING_FORMS, find_normal, normal_gating
from cxrlt_core.inference.loader import ON_ERROR, InferenceImages, image_loader
from cxrlt_core.inference.study import aggregate_prediction_file
from cxrlt_core.inference.thresholds import Thresholds, load_thresholds
from cxrlt_core.inference.tta import MERGE_MODES, default_forward_batch, get_tta_set, tta_probabilities
from cxrlt_core.inference.writer import PartWriter, PredictionWriter, failed_path, merge_parts, write_failed
from cxrlt_core.models.checkpoint import load_checkpoint
from cxrlt_core.models.contract import InputContract, contract_of

__all__ = [
    "Ensemble",
    "LoadedModel",
    "PRECISIONS",
    "PostProcess",
    "PredictOptions",
    "PredictResult",
    "PredictionSink",
    "binary_path",
    "ensemble_batch",
    "load_ensemble",
    "load_models",
    "model_probabilities",
    "pipeline_provenance",
    "postprocess",
    "predict",
    "view_loaders",
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
    contract: Any = None

    @property
    def name(self) -> str:
        return self.path.name


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _spec_from_sidecar(path: Path, model: torch.nn.Module, sidecar: Mapping[str, Any]) -> LoadedModel:
    """Classes, preprocessing and normalisation from the model's input contract (``cxrlt_core.models.contract``)."""

    try:
        contract = contract_of(model)
    except InputError:
        contract = InputContract.from_sidecar(sidecar, str(path))
    if not contract.class_names:
        raise InputError(f"{path}: checkpoint sidecar names no classes (input.class_names)")
    config = dict(sidecar.get("model") or {})
    info = {k: config[k] for k in ("backbone", "head", "name", "arch") if k in config}
    return LoadedModel(
        path=path,
        model=model,
        classes=contract.class_names,
        preprocess=contract.preprocess,
        mean=contract.mean,  # type: ignore[arg-type]
        std=contract.std,  # type: ignore[arg-type]
        input_size=contract.image_size,
        normal=contract.normal,
        label_space=dict(contract.label_space) if contract.label_space else None,
        info=info,
        contract=contract,
    )


def load_models(
    checkpoints: Sequence[str | os.PathLike[str]], device: torch.device, channels_last: bool = False
) -> list[LoadedModel]:
    """Load each checkpoint (safetensors + JSON sidecar, never unpickled) in eval mode on ``device``."""

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


# ------------------------------------------------------------------------------------------------------- options
@dataclasses.dataclass
class PredictOptions:
    """Every setting of :func:`predict` beyond its inputs (checkpoints, manifest, output file).

    Attributes:
        weights: one per checkpoint, normalised to sum 1 (default equal).
        tta: a registered TTA set (:data:`~cxrlt_core.inference.tta.TTA_SETS`).
        merge: per-model merge of the views (:data:`~cxrlt_core.inference.tta.MERGE_MODES`).
        gating_alpha, gating_form: normal gating (α = 0: none; forms in
            :data:`~cxrlt_core.inference.gating.GATING_FORMS`).
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
        on_error: ``raise`` or ``skip`` (module docstring of :mod:`cxrlt_core.inference.loader`'s policy: the first
            unreadable image stops the run, or its row is left out and listed in ``<out>.failed.csv``).
        chunk_size: rows buffered before each write.
        cache_dir: optional decoded-image cache folder (:class:`~cxrlt_core.data.image_cache.ImageCache`).
        threads: torch intra-op threads of this process (default: torch's choice). On a CPU shared with decoding
            workers or other jobs, fewer threads than cores avoid OpenMP oversubscription.
        show_progress: draw a tqdm bar on stderr.
        study_aggregation: after writing, give every image its study's score, averaged per view type and then
            across view types (:mod:`cxrlt_core.inference.study`; needs a study column in the manifest).
        view_weights: weight per view type for the study aggregation (default 1 each), e.g. ``{"PA": 2}``.
    """

    weights: Sequence[float] | None = None
    tta: str = "medium"
    merge: str = "mean"
    gating_alpha: float = 0.5
    gating_form: str = "power"
    calibration: str | os.PathLike[str] | Calibration | None = None
    thresholds: str | os.PathLike[str] | Thresholds | None = None
    batch_size: int = 8
    num_workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    forward_batch: int | str | None = "auto"
    channels_last: bool | str = "auto"
    on_error: str = "raise"
    chunk_size: int = 4096
    cache_dir: str | os.PathLike[str] | None = None
    threads: int | None = None
    show_progress: bool = True
    study_aggregation: bool = False
    view_weights: Mapping[str, float] | None = None

    def check(self) -> None:
        """Reject unknown names and impossible numbers before anything is loaded."""
        if self.on_error not in ON_ERROR:
            raise InputError(f"unknown image error policy {self.on_error!r}; choose one of: {', '.join(ON_ERROR)}")
        get_tta_set(self.tta)
        MERGE_MODES.get(self.merge)
        GATING_FORMS.get(self.gating_form)
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.chunk_size < 1:
            raise InputError(f"chunk size must be at least 1, got {self.chunk_size}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        if self.study_aggregation and self.thresholds is not None:
            raise InputError("study aggregation changes the scores after the thresholds' decisions: use one of them")
        if self.forward_batch not in (None, "auto") and int(self.forward_batch) < 1:
            raise InputError(f"forward_batch must be at least 1, 'auto' or None, got {self.forward_batch}")


# ---------------------------------------------------------------------------------------------- stage: load
@dataclasses.dataclass
class Ensemble:
    """The loaded models, their normalised weights, the output classes and each model's columns for them."""

    models: list[LoadedModel]
    weights: np.ndarray
    classes: tuple[str, ...]
    columns: list[np.ndarray]
    device: torch.device
    channels_last: bool

    @property
    def normal(self) -> str | None:
        """The Normal class named by the first model's label space that has one."""
        return next((m.normal for m in self.models if m.normal), None)

    @property
    def label_space(self) -> dict[str, Any] | None:
        return self.models[0].label_space


def load_ensemble(
    checkpoints: Sequence[str | os.PathLike[str]], options: PredictOptions, device: torch.device
) -> Ensemble:
    """Load the checkpoints, normalise their weights and align every model's classes to the first model's."""
    channels_last = device.type == "cuda" if options.channels_last == "auto" else bool(options.channels_last)
    models = load_models(checkpoints, device, channels_last=channels_last)
    classes = models[0].classes
    return Ensemble(
        models=models,
        weights=normalise_weights(options.weights, len(models)),
        classes=classes,
        columns=[class_index(m.classes, classes, m.name) for m in models],
        device=device,
        channels_last=channels_last,
    )


# ------------------------------------------------------------------------------------------ stages: gate, calibrate
@dataclasses.dataclass
class PostProcess:
    """Normal gating, then calibration, then (optionally) per-class thresholds, for one ensemble's classes."""

    classes: tuple[str, ...]
    alpha: float
    form: str
    normal: str | None
    normal_column: int | None
    calibration: Calibration | None
    thresholds: np.ndarray | None

    @classmethod
    def plan(cls, ensemble: Ensemble, options: PredictOptions) -> PostProcess:
        """Load calibration and thresholds, and check they fit the ensemble's classes and pipeline."""
        calibration = options.calibration
        if isinstance(calibration, (str, os.PathLike)):
            calibration = load_calibration(calibration)
        thresholds = options.thresholds
        if isinstance(thresholds, (str, os.PathLike)):
            thresholds = load_thresholds(thresholds)
        classes = ensemble.classes
        normal = ensemble.normal
        if options.gating_alpha:  # checks alpha and warns once when there is no Normal class
            normal_gating(np.full((1, len(classes)), 0.5), classes, options.gating_alpha, options.gating_form, normal)
        stage = cls(
            classes=classes,
            alpha=float(options.gating_alpha),
            form=options.gating_form,
            normal=normal,
            normal_column=find_normal(classes, normal),
            calibration=calibration,
            thresholds=None if thresholds is None else thresholds.for_classes(classes),
        )
        if calibration is not None:
            class_index(calibration.classes, classes, "the calibration file")
            _check_calibration_pipeline(calibration, stage.provenance(ensemble, options))
        return stage

    @property
    def gates(self) -> bool:
        return bool(self.alpha) and self.normal_column is not None

    def gating(self) -> dict[str, Any]:
        """The gating entry of the predictions' metadata."""
        return {
            "alpha": self.alpha,
            "form": self.form,
            "normal": None if self.normal_column is None else self.classes[self.normal_column],
            "applied": self.gates,
        }

    def provenance(self, ensemble: Ensemble, options: PredictOptions) -> dict[str, Any]:
        return pipeline_provenance(ensemble.models, ensemble.weights, options.tta, options.merge, self.gating())

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        """Gate then calibrate ensemble probabilities (N, C)."""
        if not self.gates and self.calibration is None:
            return probabilities
        return postprocess(probabilities, self.classes, self.alpha, self.form, self.normal, self.calibration)

    def decisions(self, scores: np.ndarray) -> np.ndarray | None:
        """0/1 decisions at the per-class thresholds, or ``None`` without thresholds."""
        if self.thresholds is None:
            return None
        return (scores >= self.thresholds[None, :]).astype(np.float64)


# ---------------------------------------------------------------------------------------------- stage: views
def view_loaders(
    ensemble: Ensemble, paths: Sequence[Path], rows: np.ndarray, options: PredictOptions
) -> list[tuple[list[int], torch.utils.data.DataLoader]]:
    """One image loader per distinct preprocessing, with the models it feeds: models sharing a preprocessing share
    one decode of each image."""
    groups: dict[str, list[int]] = {}
    for m, spec in enumerate(ensemble.models):
        groups.setdefault(spec.preprocess.key(), []).append(m)
    loaders = []
    for members in groups.values():
        preprocess = ensemble.models[members[0]].preprocess
        cache = None
        if options.cache_dir is not None:
            cache = ImageCache(options.cache_dir, preprocess)
        dataset = InferenceImages(paths, preprocess, rows=rows, cache=cache)
        loader = image_loader(
            dataset, options.batch_size, options.num_workers, pin_memory=ensemble.device.type == "cuda"
        )
        loaders.append((members, loader))
    return loaders


# ------------------------------------------------------------------------------------ stages: merge, ensemble
@dataclasses.dataclass
class _ModelRunner:
    """How one model of the ensemble is fed: its views, merge, normaliser, call size and precision."""

    spec: LoadedModel
    views: tuple[Any, ...]
    merge: str
    normaliser: _Normaliser
    forward_batch: int | None
    precision: str


def model_probabilities(runner: _ModelRunner, gray: torch.Tensor) -> np.ndarray:
    """Merge stage: one model's TTA views of a batch (N, 1, H, W) merged into probabilities (N, C_model)."""
    with _autocast(runner.precision, gray.device):
        probs = tta_probabilities(
            runner.spec.model,
            gray,
            runner.views,
            runner.merge,
            fill=0.0,
            transform=runner.normaliser,
            forward_batch=runner.forward_batch,
            geometry=runner.spec.contract.tta_geometry if runner.spec.contract is not None else "cxrlt",
        )
    return probs.cpu().numpy()


def ensemble_batch(
    ensemble: Ensemble,
    runners: Sequence[_ModelRunner],
    groups: Sequence[list[int]],
    batches: Sequence[Any],
    keep: np.ndarray,
) -> np.ndarray:
    """Ensemble stage: Σ_m w_m · p_m over the models, for the rows ``keep`` of one batch per preprocessing."""
    out = np.zeros((keep.size, len(ensemble.classes)), dtype=np.float64)
    for members, batch in zip(groups, batches):
        select = torch.from_numpy(np.flatnonzero(np.isin(batch.indices, keep)))
        gray = batch.images.index_select(0, select).to(ensemble.device, non_blocking=True)
        gray = gray.unsqueeze(1).to(torch.float32)
        for m in members:
            out += ensemble.weights[m] * model_probabilities(runners[m], gray)[:, ensemble.columns[m]]
    return out


def _runners(ensemble: Ensemble, options: PredictOptions, precision: str) -> list[_ModelRunner]:
    views = get_tta_set(options.tta)
    runners = []
    for spec in ensemble.models:
        if options.forward_batch == "auto":
            chunk = default_forward_batch(ensemble.device, spec.input_size)
        else:
            chunk = None if options.forward_batch is None else int(options.forward_batch)
        normaliser = _Normaliser(spec, ensemble.device, ensemble.channels_last)
        runners.append(_ModelRunner(spec, views, options.merge, normaliser, chunk, precision))
    return runners


# ---------------------------------------------------------------------------------------------- stage: write
class PredictionSink:
    """Write stage: buffers (rows, scores) and writes them in chunks, with 0/1 decisions beside them when thresholds
    are given. In a single process it writes the final file; under ``torchrun`` each rank writes a part that rank 0
    merges in input order (:meth:`finish`)."""

    def __init__(self, out_path: Path, classes: Sequence[str], ids: Sequence[str], post: PostProcess, dist: Any):
        self.out_path = out_path
        self.classes = tuple(classes)
        self.ids = ids
        self.post = post
        self.dist = dist
        self.distributed = launched_by_torchrun() and dist.world_size > 1
        self.parts_dir = out_path.with_name(f".{out_path.name}.parts")
        binary = post.thresholds is not None
        self.writer: PredictionWriter | None = None
        self.binary_writer: PredictionWriter | None = None
        self.part: PartWriter | None = None
        self.binary_part: PartWriter | None = None
        if self.distributed:
            self.part = PartWriter(self.parts_dir / f"rank{dist.rank}.csv", classes)
            if binary:
                self.binary_part = PartWriter(self.parts_dir / f"rank{dist.rank}.binary.csv", classes)
        else:
            self.writer = PredictionWriter(out_path, classes)
            if binary:
                self.binary_writer = PredictionWriter(binary_path(out_path), classes, binary=True)
        self._rows: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    @property
    def buffered(self) -> int:
        return sum(len(r) for r in self._rows)

    def add(self, rows: np.ndarray, scores: np.ndarray) -> None:
        self._rows.append(rows)
        self._scores.append(scores)

    def flush(self) -> None:
        """Write the buffered rows (scores, and decisions when thresholds are given)."""
        if not self._rows:
            return
        rows = np.concatenate(self._rows)
        scores = np.concatenate(self._scores)
        self._rows.clear()
        self._scores.clear()
        ids = [self.ids[r] for r in rows]
        decisions = self.post.decisions(scores)
        if self.part is not None:
            self.part.write(rows.tolist(), ids, scores)
            if self.binary_part is not None and decisions is not None:
                self.binary_part.write(rows.tolist(), ids, decisions)
        elif self.writer is not None:
            self.writer.write(ids, scores)
            if self.binary_writer is not None and decisions is not None:
                self.binary_writer.write(ids, decisions)

    def abort(self, exc: BaseException) -> None:
        """Remove this process's unfinished files (a part is kept for rank 0 to report the error)."""
        for writer in (self.writer, self.binary_writer):
            if writer is not None:
                writer.abort(exc)

    def finish(
        self, metadata: dict[str, Any], failed: list[tuple[int, str, str, str]], error: str | None, chunk_size: int
    ) -> tuple[Path | None, int, Path | None, list[tuple[int, str, str, str]]]:
        """Close the files with ``metadata`` (plus completion counts); returns (path, rows, binary file, failed).

        Under ``torchrun`` every rank's error and failed rows are gathered; rank 0 merges the parts and raises the
        first error of any rank; other ranks return ``(None, 0, None, [])``.
        """
        if not self.distributed:
            assert self.writer is not None
            written = self.writer.rows
            metadata.update(_completion(written, failed, self.out_path))
            binary_file = None
            if self.binary_writer is not None:
                binary_file = self.binary_writer.close({**metadata, "binary": True})
            return self.writer.close(metadata), written, binary_file, failed
        return self._finish_parts(metadata, failed, error, chunk_size)

    def _finish_parts(
        self, metadata: dict[str, Any], failed: list[tuple[int, str, str, str]], error: str | None, chunk_size: int
    ) -> tuple[Path | None, int, Path | None, list[tuple[int, str, str, str]]]:

        for part in (self.part, self.binary_part):
            if part is not None:
                part.close()
        gathered = all_gather_object({"error": error, "failed": failed})
        errors = [g["error"] for g in gathered if g["error"]]
        if not self.dist.is_main:
            if error is not None:
                raise InputError(error)
            return None, 0, None, []
        if errors:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            raise InputError(errors[0])
        failed = sorted(f for g in gathered for f in g["failed"])
        world = range(self.dist.world_size)
        final = PredictionWriter(self.out_path, self.classes)
        written = merge_parts([self.parts_dir / f"rank{r}.csv" for r in world], final, chunk_size)
        metadata.update(_completion(written, failed, self.out_path))
        binary_file = None
        if self.binary_part is not None:
            binary_final = PredictionWriter(binary_path(self.out_path), self.classes, binary=True)
            merge_parts([self.parts_dir / f"rank{r}.binary.csv" for r in world], binary_final, chunk_size)
            binary_file = binary_final.close({**metadata, "binary": True})
        path = final.close(metadata)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return path, written, binary_file, failed


# ------------------------------------------------------------------------------------------------ the pipeline
@dataclasses.dataclass
class _Rows:
    """The rows of the manifest this process predicts, and how to name them in messages."""

    ids: list[str]
    paths: list[Path]
    rows: np.ndarray
    source: str


def _run_batches(
    rows: _Rows,
    ensemble: Ensemble,
    runners: Sequence[_ModelRunner],
    loaders: Sequence[tuple[list[int], torch.utils.data.DataLoader]],
    sink: PredictionSink,
    options: PredictOptions,
    progress: ProgressCallback | None,
) -> list[tuple[int, str, str, str]]:
    """Views → merge → ensemble → gate → calibrate for every batch, into ``sink``; returns the unreadable rows."""
    failed: list[tuple[int, str, str, str]] = []
    groups = [members for members, _ in loaders]
    done = 0
    bar = None
    if options.show_progress and getattr(sink.dist, "is_main", True):
        bar = tqdm(total=len(rows.rows), desc="predict", unit="img", dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for batches in zip(*(loader for _, loader in loaders)):
                bad = _unreadable(batches, rows, options.on_error)
                failed += [(row, rows.ids[row], str(rows.paths[row]), message) for row, message in bad.items()]
                keep = batches[0].indices[~np.isin(batches[0].indices, list(bad))]
                if keep.size:
                    sink.add(keep, sink.post(ensemble_batch(ensemble, runners, groups, batches, keep)))
                    if sink.buffered >= options.chunk_size:
                        sink.flush()
                step = len(batches[0].indices) + len(batches[0].failed)
                done += step
                if bar is not None:
                    bar.update(step)
                if progress is not None:
                    progress(done, len(rows.rows))
            sink.flush()
    finally:
        if bar is not None:
            bar.close()
    return failed


def _unreadable(batches: Sequence[Any], rows: _Rows, on_error: str) -> dict[int, str]:
    """Rows of this batch that some preprocessing could not read; the first one is an error under ``raise``."""
    bad: dict[int, str] = {}
    for batch in batches:
        for row, message in batch.failed:
            bad.setdefault(row, message)
    if bad and on_error == "raise":
        row, message = min(bad.items())
        raise InputError(
            f"{message} (row {row + 2} of {rows.source}, id {rows.ids[row]!r}); "
            "use --on-error skip to list unreadable images and go on"
        )
    return bad


def predict(
    checkpoints: Sequence[str | os.PathLike[str]],
    manifest: Any,
    out_path: str | os.PathLike[str],
    options: PredictOptions | None = None,
    progress: ProgressCallback | None = None,
    **settings: Any,
) -> PredictResult:
    """Predict every row of ``manifest`` with a weighted ensemble of checkpoints; write ``out_path``.

    Args:
        checkpoints: ``.safetensors`` checkpoints (with their JSON sidecars); classes are aligned by name to the
            first model's classes, which are the output columns.
        manifest: a :class:`~cxrlt_core.data.manifest.Manifest` with an image folder (ids and image paths).
        out_path: ``.csv`` or ``.parquet``.
        options: every other setting (:class:`PredictOptions`); ``settings`` given as keywords override its fields
            (``predict(ckpts, manifest, out, tta="flip")``).
        progress: ``progress(done, total)`` after each batch (rows of this process).
    """

    started = time.perf_counter()
    options = dataclasses.replace(options or PredictOptions(), **settings)
    options.check()
    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise InputError(f"{out_path}: predictions must be .parquet or .csv")
    ids, paths = _rows_of(manifest)
    if not ids:
        raise InputError(f"{getattr(manifest, 'name', 'manifest')}: no rows to predict")
    if options.threads is not None:
        torch.set_num_threads(int(options.threads))
    dist = init_distributed(options.device)
    precision = _resolve_precision(options.precision, dist.device)

    ensemble = load_ensemble(checkpoints, options, dist.device)
    post = PostProcess.plan(ensemble, options)
    rows = _Rows(ids, paths, np.arange(dist.rank, len(ids), dist.world_size), getattr(manifest, "name", "the manifest"))
    runners = _runners(ensemble, options, precision)
    loaders = view_loaders(ensemble, paths, rows.rows, options)
    sink = PredictionSink(out_path, ensemble.classes, ids, post, dist)

    failed: list[tuple[int, str, str, str]] = []
    error: str | None = None
    try:
        failed = _run_batches(rows, ensemble, runners, loaders, sink, options, progress)
    except BaseException as exc:
        error = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        if not sink.distributed:
            sink.abort(exc)
            raise

    metadata = _metadata(ensemble, post, runners, options, manifest, len(ids), precision, dist)
    path, written, binary_file, failed = sink.finish(metadata, failed, error, options.chunk_size)
    seconds = time.perf_counter() - started
    if path is None:  # a torchrun rank other than 0
        return PredictResult(None, 0, 0, None, None, metadata, seconds)
    if options.study_aggregation:
        metadata["study_aggregation"] = aggregate_prediction_file(path, manifest, options.view_weights)
    failed_file = write_failed(out_path, failed)
    return PredictResult(path, written, len(failed), failed_file, binary_file, metadata, seconds)


def _metadata(
    ensemble: Ensemble,
    post: PostProcess,
    runners: Sequence[_ModelRunner],
    options: PredictOptions,
    manifest: Any,
    rows: int,
    precision: str,
    dist: Any,
) -> dict[str, Any]:
    """The provenance written with the predictions: every stage's settings and the models' files."""
    thresholds = post.thresholds
    return {
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
            for spec, weight in zip(ensemble.models, ensemble.weights)
        ],
        "weights": [float(v) for v in ensemble.weights],
        "classes": list(ensemble.classes),
        "label_space": ensemble.label_space,
        "tta": {"set": options.tta, "views": [v.name for v in get_tta_set(options.tta)]},
        "merge": options.merge,
        "gating": post.gating(),
        "calibration": _file_provenance(
            options.calibration, post.calibration, method=getattr(post.calibration, "method", None)
        ),
        "thresholds": _file_provenance(
            options.thresholds, options.thresholds, values=None if thresholds is None else thresholds.tolist()
        ),
        "pipeline": post.provenance(ensemble, options),
        "images": {
            "manifest": str(getattr(manifest, "path", "") or ""),
            "image_root": str(getattr(manifest, "image_root", "") or ""),
            "rows": rows,
        },
        "device": str(ensemble.device),
        "precision": precision,
        "forward_batch": [runner.forward_batch for runner in runners],
        "threads": torch.get_num_threads() if ensemble.device.type == "cpu" else None,
        "world_size": dist.world_size,
        "on_error": options.on_error,
    }


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
