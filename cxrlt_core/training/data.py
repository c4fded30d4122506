"""A recipe's data: manifests, the train / validation split, preprocessing, data sets and loaders."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data

from cxrlt_core.config import DataConfig, Recipe, resolve_path
from cxrlt_core.data.dataset import CxrDataset, collate_batch, seed_worker
from cxrlt_core.data.image_cache import ImageCache
from cxrlt_core.data.images import Preprocess
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.data.sampler import RepeatFactorSampler, build_train_sampler
from cxrlt_core.data.splits import patient_grouped_split, patient_shuffle_split
from cxrlt_core.errors import InputError
from cxrlt_core.fidelity import resolve_profile
from cxrlt_core.paths import default_workspace


@dataclasses.dataclass
class TrainData:
    """The manifests a run trains and validates on, and how their images are read."""

    train: Any
    val: Any
    classes: tuple[str, ...]
    label_space: Any
    preprocess: Any
    cache: Any | None
    split: str

    @property
    def class_counts(self) -> np.ndarray:
        """Positive images per class in the training manifest (NaN = unknown, not counted)."""
        return (np.nan_to_num(self.train.labels, nan=0.0) > 0.5).sum(axis=0).astype(np.int64)


def prepare_data(
    cfg: DataConfig, workspace: str | os.PathLike[str] | None = None, profile: Any | None = None
) -> TrainData:
    """Read the training (and validation) CSVs; without ``val_csv``, split the training patients 90 / 10.

    ``profile`` (a :class:`~cxrlt_core.fidelity.FidelityProfile`, default ``cxrlt``) decides the resize
    interpolation, the rounding to uint8 and the validation split (``images``: ``val_fraction`` of the images in
    whole patients, stratified draw; ``patients``: ``val_fraction`` of the patients, ``GroupShuffleSplit``).
    """
    profile = profile or resolve_profile("cxrlt")

    def read(csv: str | None) -> Any:
        return read_manifest(
            resolve_path(csv, workspace),
            image_root=resolve_path(cfg.image_root, workspace),
            label_space=cfg.label_space,
            id_column=cfg.id_column,
            uncertain=cfg.uncertain,
            meta_csv=resolve_path(cfg.meta_csv, workspace),
        )

    full = read(cfg.train_csv)
    if full.image_root is None:
        raise InputError(f"{full.path}: data.image_root is required to train (the folder the image ids are in)")
    if cfg.val_csv:
        train, val = full, read(cfg.val_csv)
        if tuple(val.classes) != tuple(train.classes):
            missing = sorted(set(train.classes) - set(val.classes))
            raise InputError(f"{val.path}: validation classes differ from training; missing {missing}")
        split = "val_csv"
    else:
        if profile.val_split == "patients":
            train_idx, val_idx = patient_shuffle_split(full, cfg.val_fraction, seed=cfg.split_seed)
        else:
            train_idx, val_idx = patient_grouped_split(full, cfg.val_fraction, seed=cfg.split_seed, labels=full.labels)
        train, val = full.subset(train_idx), full.subset(val_idx)
        split = "patient_grouped" if full.patients is not None else "image_grouped"
        if profile.val_split == "patients":
            split += "_shuffle"
    preprocess = Preprocess(
        image_size=cfg.image_size,
        clip_low=cfg.clip_low,
        clip_high=cfg.clip_high,
        interpolation=profile.interpolation,
        rounding=profile.rounding,
    )
    cache = None
    if cfg.cache:
        root = resolve_path(cfg.cache_dir, workspace) if cfg.cache_dir else _workspace_cache(workspace)
        cache = ImageCache(root, preprocess)
    return TrainData(train, val, tuple(train.classes), train.label_space, preprocess, cache, split)


def _workspace_cache(workspace: str | os.PathLike[str] | None) -> Path:
    return Path(workspace if workspace is not None else default_workspace()).resolve() / "cache" / "images"


def build_datasets(data: TrainData, recipe: Recipe, mean: Any, std: Any) -> tuple[CxrDataset, CxrDataset]:
    """Train (augmented) and validation data sets."""
    common = {"preprocess": data.preprocess, "cache": data.cache, "on_error": recipe.data.on_error}
    train = CxrDataset(
        data.train, train=True, augment=recipe.data.augment, mean=mean, std=std, seed=recipe.optim.seed, **common
    )
    val = CxrDataset(data.val, train=False, mean=mean, std=std, **common)
    return train, val


def resolve_num_workers(setting: int | str, device: torch.device) -> int:
    """DataLoader workers for ``optim.num_workers``; ``auto``: on CPU one worker when this process has at least two
    cores, else none; on a GPU one per core of this process's share of the machine minus one, at most 8.

    Measured on 2 CPU cores (``benchmarks/train_overhead_bench.py``, demo_csra): with no worker the method's
    augmentation runs between steps and the loop costs +11-12 % over forward + backward + AdamW; one worker prepares
    the next batches while the compute threads, which do not keep both cores busy on a small network, run (-2 %).
    """
    if setting != "auto":
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if device.type != "cuda":
        return 1 if share >= 2 else 0
    return max(1, min(8, share - 1))


def build_train_loader(
    dataset: CxrDataset,
    recipe: Recipe,
    rank: int,
    world_size: int,
    pin_memory: bool,
    workers: int = 0,
    kind: str = "repeat_factor",
) -> tuple[torch.utils.data.DataLoader, RepeatFactorSampler]:
    """The training loader (this rank's shard, whole batches only) over the recipe's sampler (``kind``
    ``repeat_factor``: repeat-factor sampling when ``sampler.enabled``), a plain shuffled epoch (``uniform``) or
    class-balanced sampling (``class_balanced``, the cRT phase)."""
    s = recipe.sampler
    # ``kind`` "repeat_factor" means the recipe's own sampler; a phase may name another registered one (cRT)
    name = (s.name if s.enabled else "uniform") if kind == "repeat_factor" else kind
    sampler = build_train_sampler(
        dataset.labels,
        name=name,
        T=s.T,
        r_max=s.r_max,
        frequency=s.frequency,
        rounding=s.rounding,
        seed=recipe.optim.seed,
        num_replicas=world_size,
        rank=rank,
        batch_size=recipe.optim.batch_size,
    )
    batch_size = recipe.optim.batch_size
    if recipe.optim.max_steps_per_epoch:
        sampler.max_samples = recipe.optim.max_steps_per_epoch * batch_size
    generator = torch.Generator().manual_seed(recipe.optim.seed * 1000 + rank)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        drop_last=False,  # the sampler pads every rank's epoch to whole batches
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=seed_worker,
        generator=generator,
    )
    return loader, sampler


def build_val_loader(
    dataset: CxrDataset, recipe: Recipe, rank: int, world_size: int, pin_memory: bool, workers: int = 0
) -> torch.utils.data.DataLoader:
    """The validation loader over this rank's shard ``rank::world_size`` (no padding, no repeats)."""
    indices = list(range(rank, len(dataset), world_size))
    limit = recipe.optim.max_val_batches
    if limit:
        indices = indices[: limit * (recipe.optim.val_batch_size or recipe.optim.batch_size)]
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=recipe.optim.val_batch_size or recipe.optim.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=seed_worker,
    )
