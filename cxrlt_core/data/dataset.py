"""The training / validation data set: manifest rows → normalised (3, H, W) tensors and NaN-aware targets.

Decoding, percentile clipping, resizing and augmentation run in DataLoader workers. A failed image read is never
a zero image: with ``on_error="raise"`` it stops the job naming the file; with ``on_error="skip"`` the sample is
dropped from its batch by :func:`collate_batch` and reported (index, file, reason) so that the run lists it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import signal
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.utils.data

from cxrlt_core.data.augment import AugmentConfig, apply_augment, build_train_augment
from cxrlt_core.data.images import IMAGENET_MEAN, IMAGENET_STD, load_image
from cxrlt_core.errors import InputError

OnError = Literal["raise", "skip"]
ON_ERROR = ("raise", "skip")


@dataclasses.dataclass
class Batch:
    """A collated batch: images (B, 3, H, W), targets (B, C) with NaN unknown, manifest indices (B,), and the
    samples dropped because their image could not be read, as (index, message) pairs."""

    images: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor
    failed: list[tuple[int, str]]

    def __len__(self) -> int:
        return int(self.indices.numel())

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)`` in its pinning thread."""
        return dataclasses.replace(self, images=self.images.pin_memory(), targets=self.targets.pin_memory())


class CxrDataset(torch.utils.data.Dataset):
    """Radiographs of a manifest as model inputs.

    Args:
        manifest: rows to serve (``image_path(i)``, ``labels`` (n, C) float with NaN unknown).
        preprocess: ``cxrlt_core.data.images.Preprocess`` (clipping, resize to the model's input size).
        train: apply the train augmentation.
        augment: augmentation settings (default: the method's); ignored when ``train`` is false.
        cache: an ``ImageCache`` of decoded, resized images, or ``None`` to decode every time.
        on_error: ``raise`` (stop, naming the file) or ``skip`` (drop the sample and report it).
        mean, std: per-channel normalisation of the model (default ImageNet).
        seed: seed of the augmentation in the main process; workers reseed with :func:`seed_worker`.
    """

    def __init__(
        self,
        manifest: Any,
        preprocess: Any,
        train: bool = False,
        augment: AugmentConfig | None = None,
        cache: Any | None = None,
        on_error: OnError = "raise",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        seed: int | None = None,
    ):
        if on_error not in ON_ERROR:
            raise InputError(f"unknown image error policy {on_error!r}; choose one of: {', '.join(ON_ERROR)}")
        self.manifest = manifest
        self.preprocess = preprocess
        self.train = train
        self.cache = cache
        self.on_error = on_error
        self.labels = np.asarray(manifest.labels, dtype=np.float32)
        self.mean = torch.tensor(tuple(mean or IMAGENET_MEAN), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(tuple(std or IMAGENET_STD), dtype=torch.float32).view(-1, 1, 1)
        if self.mean.numel() != self.std.numel():
            raise InputError(f"mean has {self.mean.numel()} channels but std has {self.std.numel()}")
        self.augment = build_train_augment(augment or AugmentConfig(), preprocess.height, seed) if train else None
        self.seed = int(seed or 0)
        # The epoch, shared with (persistent) loader workers: each process reseeds its augmentation at the start
        # of an epoch from (seed, epoch, worker), so a resumed run draws what an uninterrupted one does.
        self._epoch = multiprocessing.RawValue("q", -1)
        self._seeded_epoch = -1

    def __len__(self) -> int:
        return len(self.manifest)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: the augmentation of every process is reseeded from ``(seed, epoch, worker)``."""
        self._epoch.value = int(epoch)

    def _reseed_for_epoch(self) -> None:
        """Seed of this process's augmentation (and, in a worker, its global RNGs) for the current epoch:
        ``SeedSequence([seed, epoch, worker + 1])`` (worker -1 is the main process), independent of the past."""
        epoch = int(self._epoch.value)
        if epoch < 0 or epoch == self._seeded_epoch or self.augment is None:
            return
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else -1
        seed = int(np.random.SeedSequence([self.seed, epoch, worker + 1]).generate_state(1)[0])
        self.augment.set_random_seed(seed)
        if info is not None:  # a worker's own global RNGs; the main process's belong to the training loop
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
        self._seeded_epoch = epoch

    def reseed(self, seed: int) -> None:
        """Reseed the augmentation (called once in each DataLoader worker)."""
        if self.augment is not None:
            self.augment.set_random_seed(seed % 2**32)

    def read(self, index: int) -> np.ndarray:
        """The preprocessed (H, W) uint8 image of row ``index``; an unreadable file raises ``InputError`` naming it."""
        path = self.manifest.image_path(index)
        try:
            image = self.cache.get(path) if self.cache is not None else load_image(path, self.preprocess)
        except InputError as exc:
            raise exc if str(path) in str(exc) else InputError(f"{path}: {exc}") from exc
        except Exception as exc:  # a decoder's own error type: keep its words, name the file
            raise InputError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
        if image is None or image.dtype != np.uint8 or image.ndim != 2:
            raise InputError(f"{path}: image loader returned {None if image is None else (image.dtype, image.shape)}")
        return image

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W) uint8 → (channels, H, W) float32, gray replicated, (x / 255 − mean) / std."""
        gray = torch.from_numpy(np.ascontiguousarray(image)).to(torch.float32).div_(255.0)
        return (gray.unsqueeze(0) - self.mean) / self.std

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, torch.Tensor | str, int]:
        try:
            image = self.read(index)
        except InputError as exc:
            if self.on_error == "raise":
                raise
            return None, str(exc), int(index)
        self._reseed_for_epoch()
        image = apply_augment(self.augment, image)
        return self.to_tensor(image), torch.from_numpy(self.labels[index]), int(index)


def collate_batch(samples: list[tuple[torch.Tensor | None, torch.Tensor | str, int]]) -> Batch:
    """Stack samples into a :class:`Batch`, dropping (and listing) those whose image failed to read."""
    kept = [s for s in samples if s[0] is not None]
    failed = [(int(s[2]), str(s[1])) for s in samples if s[0] is None]
    if not kept:
        return Batch(torch.empty(0), torch.empty(0), torch.empty(0, dtype=torch.long), failed)
    return Batch(
        images=torch.stack([s[0] for s in kept]),  # type: ignore[misc]
        targets=torch.stack([s[1] for s in kept]),  # type: ignore[misc]
        indices=torch.tensor([s[2] for s in kept], dtype=torch.long),
        failed=failed,
    )


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's augmentation its own seed, derived from the loader's."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return

    # a stop (SIGTERM to the process group) is the training process's to handle: it ends its workers itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # OpenCV's own thread pool in every worker would fight the training threads for the cores (and make OpenMP
    # spin); a worker is already one of several parallel processes
    cv2.setNumThreads(1)
    dataset = info.dataset
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    if isinstance(dataset, CxrDataset):
        dataset.reseed(info.seed)
    np.random.seed(info.seed % 2**32)
