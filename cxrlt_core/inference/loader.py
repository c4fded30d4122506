"""Inference images: decode and preprocess in DataLoader workers, ship compact uint8 batches to the model.

A worker returns the preprocessed (H, W) uint8 image (4x smaller than float32, 12x smaller than the normalised
3-channel tensor); conversion, TTA views and normalisation happen on the model's device (:mod:`.tta`).
A file that cannot be read never becomes a zero image: the worker returns its error text, and the main process
either stops naming the file (``on_error="raise"``) or lists the row as failed (``"skip"``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.utils.data

from cxrlt_core.data.images import load_image
from cxrlt_core.errors import InputError

__all__ = ["ON_ERROR", "ImageBatch", "InferenceImages", "collate_images", "image_loader"]

OnError = Literal["raise", "skip"]
ON_ERROR = ("raise", "skip")


@dataclasses.dataclass
class ImageBatch:
    """Images that were read (B, H, W) uint8, their row indices (B,), and the rows that failed as (row, message)."""

    images: torch.Tensor
    indices: np.ndarray
    failed: list[tuple[int, str]]


class InferenceImages(torch.utils.data.Dataset):
    """Rows ``rows`` of a list of image files, preprocessed with one :class:`~cxrlt_core.data.images.Preprocess`.

    Args:
        paths: every image file of the data set (row ``i`` is ``paths[i]``).
        preprocess: decoding, clipping and resizing settings (from the checkpoint).
        rows: the row indices this data set serves (a shard), default all.
        cache: an optional :class:`~cxrlt_core.data.image_cache.ImageCache` of decoded, resized images.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        preprocess: Any,
        rows: Sequence[int] | np.ndarray | None = None,
        cache: Any | None = None,
    ):
        self.paths = [os.fspath(p) for p in paths]
        self.preprocess = preprocess
        self.rows = np.arange(len(self.paths)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> tuple[np.ndarray | None, int, str]:
        row = int(self.rows[position])
        path = self.paths[row]
        try:
            image = self.cache.get(path) if self.cache is not None else load_image(path, self.preprocess)
        except InputError as exc:
            message = str(exc)
            return None, row, message if path in message else f"{path}: {message}"
        except Exception as exc:  # a decoder's own error type: keep its words, name the file
            return None, row, f"{path}: cannot read image ({type(exc).__name__}: {exc})"
        return image, row, ""


def collate_images(samples: list[tuple[np.ndarray | None, int, str]]) -> ImageBatch:
    """Stack the images that were read; list the rows that were not."""
    kept = [s for s in samples if s[0] is not None]
    failed = [(s[1], s[2]) for s in samples if s[0] is None]
    images = torch.from_numpy(np.stack([s[0] for s in kept])) if kept else torch.empty((0, 0, 0), dtype=torch.uint8)
    return ImageBatch(images=images, indices=np.array([s[1] for s in kept], dtype=np.int64), failed=failed)


def image_loader(
    dataset: InferenceImages, batch_size: int, num_workers: int = 0, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` in row order (no shuffling), batches collated by :func:`collate_images`."""
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise InputError(f"num_workers must be 0 or more, got {num_workers}")
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_images,
        pin_memory=pin_memory,
        prefetch_factor=2 if num_workers > 0 else None,
        persistent_workers=False,
    )


def image_paths(manifest: Any) -> list[Path]:
    """Every row's image file of a :class:`~cxrlt_core.data.manifest.Manifest`."""
    return [manifest.image_path(i) for i in range(len(manifest))]
