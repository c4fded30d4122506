"""Batched image and text encoding for zero-shot scoring, through the embedding caches.

Images are decoded and preprocessed in DataLoader workers (``ImagePipeline`` is picklable), encoded in batches,
and each batch of new embeddings is streamed to the cache in chunks, so a long run that stops keeps its work.

Two preprocessing modes (``ImagePipeline.mode``):

- ``"open_clip"`` (default): our radiograph reader (PNG 8/16-bit, JPEG, DICOM) -> gray uint8 with the method's
  0.5/99.5 percentile clipping -> open_clip's own validation transform for the model (gray replicated to RGB,
  resize of the shortest side + centre crop to the model's size, the model's mean/std).
- ``"paper"`` (the CXR-LT 2026 winners' Task 2 pipeline, after the WhyXrayCLIP paper): the file's own values as
  float32 divided by 65535 when the image's maximum exceeds 255 (a 16-bit or 12-bit image) and by 255 otherwise — no
  uint8 step, so a 12-bit image keeps all its grey levels —, ``cv2.resize`` to ``paper_resize`` x ``paper_resize``
  (512) with INTER_LINEAR, replicated to 3 channels, bilinear resize (``align_corners=False``, no antialiasing) to
  the model's size without a crop, normalised with OpenAI CLIP's mean/std.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from tqdm.auto import tqdm

from cxrlt_core.data.images import CLIP_MEAN, CLIP_STD, read_radiograph, to_gray, to_uint8, to_uint8_full_range
from cxrlt_core.errors import InputError
from cxrlt_core.zeroshot.cache import EmbeddingCache
from cxrlt_core.zeroshot.loading import ZeroShotModel

__all__ = ["PIPELINE_MODES", "EncodeStats", "ImagePipeline", "encode_images", "encode_texts", "image_pipeline"]

PIPELINE_MODES = ("open_clip", "paper")
PIPELINE_VERSION = 1
"""Bump when the meaning of a pipeline setting changes, so cached embeddings are not reused."""
PAPER_PIPELINE_VERSION = 2
"""The ``paper`` mode's version: 2 since it reads float values (version 1 went through uint8)."""

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class ImagePipeline:
    """How a radiograph file becomes the model's input tensor; its :meth:`key` names the image-embedding cache.

    Attributes:
        mode: ``"open_clip"`` or ``"paper"`` (module docstring).
        size: model input (height, width).
        mean, std: per-channel normalisation.
        interpolation, resize_mode, fill_color: open_clip's resize settings (``"open_clip"`` mode).
        intensity: ``"percentile"`` (0.5/99.5 clipping) or ``"full_range"`` (÷dtype maximum).
        clip_low, clip_high: percentiles of the ``"percentile"`` intensity mapping.
        paper_resize: the ``"paper"`` mode's first, square resize (512).
    """

    mode: str
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    intensity: str = "percentile"
    clip_low: float = 0.5
    clip_high: float = 99.5
    paper_resize: int = 512

    def __post_init__(self) -> None:
        if self.mode not in PIPELINE_MODES:
            raise InputError(f"unknown preprocessing {self.mode!r}; choose one of: {', '.join(PIPELINE_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(size=list(self.size), mean=list(self.mean), std=list(self.std))
        if self.mode != "paper":
            del out["paper_resize"]  # keeps the open_clip mode's cache keys
        return out

    def key(self) -> str:
        """``"open_clip-224x224-1a2b3c4d5e6f"``: mode, size, and a hash of every setting."""
        version = PAPER_PIPELINE_VERSION if self.mode == "paper" else PIPELINE_VERSION
        payload = json.dumps({"version": version, **self.to_dict()}, sort_keys=True)
        digest = hashlib.blake2b(payload.encode(), digest_size=6).hexdigest()
        return f"{self.mode}-{self.size[0]}x{self.size[1]}-{digest}"

    def _transform(self) -> Callable[[Any], Any]:
        cfg = PreprocessCfg(
            size=self.size,
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
            resize_mode=self.resize_mode,
            fill_color=self.fill_color,
        )
        return image_transform_v2(cfg, is_train=False)

    def gray(self, path: str | os.PathLike[str]) -> np.ndarray:
        """The file as gray uint8 at its own size (intensity mapping only)."""
        return self.gray_from_array(read_radiograph(path), os.fspath(path))

    def gray_from_array(self, image: np.ndarray, name: str = "<image>") -> np.ndarray:
        """A decoded radiograph (any dtype; colour in RGB order is reduced to gray) -> gray uint8, same size."""
        image = np.asarray(image)
        if image.ndim == 3:
            image = to_gray(image, channel_order="rgb")
        try:
            if self.intensity == "full_range":
                return to_uint8_full_range(image)
            return to_uint8(image, self.clip_low, self.clip_high)
        except ValueError as exc:
            raise InputError(f"{name}: {exc}") from None

    def from_array(self, image: np.ndarray, name: str = "<image>") -> Any:
        """A decoded radiograph -> normalised (3, H, W) float32 tensor (e.g. a dashboard upload)."""
        if self.mode == "paper":
            return self.paper_tensor(image)
        return self.tensor(self.gray_from_array(image, name))

    def __call__(self, path: str | os.PathLike[str]) -> Any:
        """File -> normalised (3, H, W) float32 tensor."""
        if self.mode == "paper":
            return self.paper_tensor(read_radiograph(path))
        return self.tensor(self.gray(path))

    def paper_tensor(self, image: np.ndarray) -> Any:
        """``paper`` mode: a decoded radiograph at its own dtype -> normalised (3, H, W) float32 (module docstring).

        ``x / 65535`` if ``max(x) > 255`` else ``x / 255`` (float32), INTER_LINEAR to ``paper_resize``, bilinear to
        the model's size, ``(x − mean) / std``.
        """
        image = np.asarray(image)
        if image.ndim == 3:
            image = to_gray(image, channel_order="rgb")
        values = image.astype(np.float32)
        values = values / (65535.0 if float(values.max()) > 255 else 255.0)
        side = int(self.paper_resize)
        values = cv2.resize(values, (side, side), interpolation=cv2.INTER_LINEAR)
        plane = torch.from_numpy(np.ascontiguousarray(values))[None, None]
        plane = F.interpolate(plane, size=tuple(self.size), mode="bilinear", align_corners=False)[0, 0]
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return (plane[None].expand(3, -1, -1) - mean) / std

    def to_gray(self, image: np.ndarray) -> np.ndarray:
        """Alias of :meth:`gray_from_array`."""
        return self.gray_from_array(image)

    def tensor(self, gray: np.ndarray) -> Any:
        """Gray uint8 (as :meth:`gray` returns) -> normalised (3, H, W) float32 tensor."""
        if self.mode == "paper":
            return self.paper_tensor(gray)

        if not hasattr(self, "_cached_transform"):
            object.__setattr__(self, "_cached_transform", self._transform())
        return self._cached_transform(Image.fromarray(gray))  # type: ignore[attr-defined]


def image_pipeline(model: ZeroShotModel, mode: str = "open_clip", intensity: str | None = None) -> ImagePipeline:
    """The pipeline for ``model``: open_clip's preprocess config, or the paper's settings at the model's size."""
    cfg = model.preprocess_cfg
    if mode == "paper":
        return ImagePipeline(
            mode="paper", size=model.image_size, mean=CLIP_MEAN, std=CLIP_STD, intensity=intensity or "full_range"
        )
    return ImagePipeline(
        mode=mode,
        size=model.image_size,
        mean=tuple(float(v) for v in cfg.get("mean", CLIP_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", CLIP_STD)),  # type: ignore[arg-type]
        interpolation=str(cfg.get("interpolation", "bicubic")),
        resize_mode=str(cfg.get("resize_mode", "shortest")),
        fill_color=int(cfg.get("fill_color", 0)),
        intensity=intensity or "percentile",
    )


class ImageFiles:
    """A map-style dataset of image files; a file that fails returns its error instead of raising, so the main
    process can name it in one line (an exception inside a worker arrives wrapped in a multi-line traceback)."""

    def __init__(self, paths: Sequence[str], pipeline: ImagePipeline):
        self.paths = list(paths)
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int, str]:
        try:
            return self.pipeline(self.paths[index]), index, ""
        except InputError as exc:
            message = str(exc)
        except Exception as exc:  # a decoder bug must still name the file
            message = f"{self.paths[index]}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        return torch.zeros(3, *self.pipeline.size), index, message


@dataclasses.dataclass
class EncodeStats:
    """What an encoding call did: images encoded now vs served from the cache."""

    total: int = 0
    encoded: int = 0
    cached: int = 0


def _default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _plan_jobs(
    model: ZeroShotModel,
    paths: list[str],
    pipeline: ImagePipeline,
    cache: EmbeddingCache | None,
    out: np.ndarray,
    stats: EncodeStats,
) -> tuple[Any, dict[str, list[int]], list[tuple[str, int]]]:
    """What is left to encode: (the cache's store or ``None``, key -> rows of ``out`` it fills, (key, row to read)
    jobs). Rows the cache already holds are copied into ``out`` and counted in ``stats.cached``."""
    if cache is None:
        return None, {str(i): [i] for i in range(len(paths))}, [(str(i), i) for i in range(len(paths))]
    try:
        keys = cache.file_hashes.hashes(paths)
    except OSError as exc:
        raise InputError(f"{exc.filename or 'image'}: cannot read image file ({exc.strerror or exc})") from None
    store = cache.image_store(
        model.model_id, pipeline.key(), {"model": model.describe(), "pipeline": pipeline.to_dict()}
    )
    found, rows = store.lookup(keys)
    if found.any():
        out[found] = rows[found]
    stats.cached = int(found.sum())
    # Identical content is encoded once and copied to every row holding it.
    todo: dict[str, list[int]] = {}
    for i in np.flatnonzero(~found):
        todo.setdefault(keys[i], []).append(int(i))
    return store, todo, [(key, rows_of[0]) for key, rows_of in todo.items()]


def _raise_batch_errors(errors: Sequence[str]) -> None:
    """One :class:`InputError` line for a batch's unreadable images (the first named, the others counted)."""
    failed = [e for e in errors if e]
    if failed:
        raise InputError(failed[0] if len(failed) == 1 else f"{failed[0]} (and {len(failed) - 1} more in this batch)")


def encode_images(
    model: ZeroShotModel,
    paths: Sequence[str | os.PathLike[str]],
    pipeline: ImagePipeline | None = None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    chunk_rows: int = 2048,
    progress: Progress | None = None,
    show_progress: bool = True,
    stats: EncodeStats | None = None,
) -> np.ndarray:
    """Unit image embeddings (N, D) float32 of ``paths``, in order.

    With a cache, images are looked up by content hash; only new content is decoded and encoded (identical files
    once), and new embeddings are written to the cache every ``chunk_rows`` rows.

    Args:
        progress: called with ``(done, total)`` images after each batch (drives the dashboard's progress bar).
        show_progress: draw a tqdm bar on stderr.
        stats: filled with the number of images encoded and served from the cache.

    Raises:
        InputError: an image cannot be read or decoded (the file is named).
    """
    pipeline = pipeline or image_pipeline(model)
    paths = [os.fspath(p) for p in paths]
    stats = stats if stats is not None else EncodeStats()
    stats.total, stats.encoded, stats.cached = len(paths), 0, 0
    out = np.zeros((len(paths), model.embed_dim), dtype=np.float32)
    if not paths:
        return out

    store, todo, jobs = _plan_jobs(model, paths, pipeline, cache, out, stats)
    if progress is not None:
        progress(stats.cached, len(paths))
    if not jobs:
        return out

    dataset = ImageFiles([paths[i] for _, i in jobs], pipeline)
    workers = _default_workers() if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, persistent_workers=False
    )
    pending_keys: list[str] = []
    pending_rows: list[np.ndarray] = []
    done = stats.cached
    bar = tqdm(total=len(jobs), desc="encode images", unit="img", disable=not show_progress, leave=False)
    try:
        for images, indices, errors in loader:
            _raise_batch_errors(errors)
            embeddings = model.encode_image_tensor(images)
            for row, job in zip(embeddings, indices.tolist()):
                key = jobs[job][0]
                out[todo[key]] = row
                pending_keys.append(key)
            pending_rows.append(embeddings)
            if store is not None and len(pending_keys) >= chunk_rows:
                store.add(pending_keys, np.concatenate(pending_rows))
                pending_keys, pending_rows = [], []
            stats.encoded += len(indices)
            done += sum(len(todo[jobs[j][0]]) for j in indices.tolist())
            bar.update(len(indices))
            if progress is not None:
                progress(done, len(paths))
    finally:
        bar.close()
        if store is not None and pending_keys:
            # Even when a later image fails, the batches already encoded are kept.
            store.add(pending_keys, np.concatenate(pending_rows))
    return out


def encode_texts(model: ZeroShotModel, texts: Sequence[str], cache: EmbeddingCache | None = None) -> np.ndarray:
    """Unit text embeddings (T, D) of ``texts``; with a cache only prompts not seen before are encoded."""
    texts = list(texts)
    if cache is None:
        return model.encode_text(texts)
    store = cache.text_store(model.model_id, {"model": model.describe()})
    unique = list(dict.fromkeys(texts))
    found, rows = store.lookup(unique)
    missing = [t for t, hit in zip(unique, found) if not hit]
    table = {t: rows[i] for i, t in enumerate(unique) if found[i]}
    if missing:
        fresh = model.encode_text(missing)
        store.add(missing, fresh)
        table.update(zip(missing, fresh))
        store.compact()
    if not texts:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    return np.stack([table[t] for t in texts]).astype(np.float32, copy=False)
