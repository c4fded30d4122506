"""Class-aware repeat-factor sampling for long-tailed multi-label data, sharded across DDP ranks.

Repeat-factor sampling (Gupta et al., LVIS, CVPR 2019; detectron2's ``RepeatFactorTrainingSampler``), as the
CXR-LT 2026 winning code applies it to multi-label radiographs:

    r(c) = max(1, sqrt(T / f_c))                     per class c
    r_i  = min(r_max, max_{c positive in i} r(c))    per image i (1 when it has no positive label)

Each epoch image ``i`` appears ``round(r_i)`` times (or ``floor(r_i)`` + Bernoulli(frac(r_i)), stochastic rounding
as in detectron2), the list is shuffled with ``seed + epoch``, padded (by wrapping around) to a multiple of the number
of ranks × the batch size and dealt out to the ranks like ``torch.utils.data.DistributedSampler``: every repeated
index is served once per epoch, every batch is full, and only the padding (< ranks × batch size) repeats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch.utils.data

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

Frequency = Literal["share_of_positives", "image_prevalence"]
Rounding = Literal["deterministic", "stochastic"]
FREQUENCIES = ("share_of_positives", "image_prevalence")
ROUNDINGS = ("deterministic", "stochastic")


def class_frequencies(labels: np.ndarray, frequency: Frequency = "share_of_positives") -> np.ndarray:
    """Per-class frequency f_c from a label matrix (NaN = unknown, counted as not positive).

    ``share_of_positives`` (the winning code): f_c = n_c / Σ_k n_k, the class's share of all positive labels.
    ``image_prevalence`` (LVIS): f_c = n_c / N, the share of images with a positive label for c.
    """
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2:
        raise InputError(f"labels must be a (images, classes) matrix, got shape {labels.shape}")
    positives = np.nan_to_num(labels, nan=0.0) > 0.5
    counts = positives.sum(axis=0).astype(np.float64)
    if frequency == "share_of_positives":
        total = counts.sum()
    elif frequency == "image_prevalence":
        total = float(labels.shape[0])
    else:
        raise InputError(f"unknown class frequency {frequency!r}; choose one of: {', '.join(FREQUENCIES)}")
    return counts / total if total > 0 else np.zeros_like(counts)


def repeat_factors(
    labels: np.ndarray,
    T: float = 0.01,
    r_max: float = 10.0,
    frequency: Frequency = "share_of_positives",
) -> np.ndarray:
    """Per-image repeat factors r_i (float, ≥ 1) of class-aware repeat-factor sampling.

    r(c) = max(1, sqrt(T / f_c)) (classes with f_c = 0 never occur as positives and get r = 1);
    r_i = min(r_max, max over the positive classes of image i of r(c)), or 1 if image i has none.

    Args:
        labels: (n, C) label matrix, 1 positive, 0 negative, NaN unknown.
        T: frequency threshold; classes rarer than T are repeated.
        r_max: cap on an image's repeat factor.
        frequency: definition of f_c, see :func:`class_frequencies`.
    """
    if not T > 0:
        raise InputError(f"repeat-factor threshold T must be > 0, got {T}")
    if not r_max >= 1:
        raise InputError(f"r_max must be ≥ 1, got {r_max}")
    freq = class_frequencies(labels, frequency)
    # a class with no positives never decides an image's factor; its ratio is set to 0 (r(c) = 1)
    per_class = np.maximum(1.0, np.sqrt(np.divide(T, freq, out=np.zeros_like(freq), where=freq > 0)))
    positives = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=0.0) > 0.5
    per_image = np.where(positives, per_class[None, :], 1.0).max(axis=1, initial=1.0)
    return np.minimum(per_image, float(r_max))


class RepeatFactorSampler(torch.utils.data.Sampler[int]):
    """Epoch-wise repeat-factor sampler that also shards across DDP ranks (a DistributedSampler replacement).

    Every rank builds the same repeated, shuffled index list (seeded with ``seed + epoch``, and for stochastic
    rounding with the same generator), pads it by wrapping around to a multiple of ``num_replicas`` and takes
    every ``num_replicas``-th entry starting at ``rank``. Call :meth:`set_epoch` before each epoch.

    Args:
        factors: per-image repeat factors (all ones gives a plain shuffled, sharded epoch).
        rounding: ``deterministic`` repeats image i round(r_i) times (at least once); ``stochastic`` repeats it
            floor(r_i) times plus once more with probability r_i − floor(r_i), so the expected count is r_i.
        shuffle: shuffle the repeated list (off: images in order, repeats adjacent).
        seed: base seed, identical on every rank.
        num_replicas, rank: DDP world size and this process's rank (defaults: the initialised process group,
            else a single process).
        batch_size: pad to whole batches on every rank (1: pad to a multiple of the ranks only).
        drop_last: drop the tail instead of padding, so that no index is duplicated across ranks.
    """

    def __init__(
        self,
        factors: np.ndarray,
        rounding: Rounding = "deterministic",
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        batch_size: int = 1,
        drop_last: bool = False,
    ):
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 1 or len(factors) == 0:
            raise InputError(f"repeat factors must be a non-empty vector, got shape {factors.shape}")
        if not np.all(np.isfinite(factors)) or factors.min() < 1.0:
            raise InputError("repeat factors must be finite and ≥ 1")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if rounding not in ROUNDINGS:
            raise InputError(f"unknown rounding {rounding!r}; choose one of: {', '.join(ROUNDINGS)}")
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        if not 0 <= rank < num_replicas:
            raise InputError(f"rank {rank} is outside [0, {num_replicas})")
        self.factors = factors
        self.rounding = rounding
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.epoch = 0
        #: cap on this rank's samples per epoch (short smoke-test epochs end cleanly instead of being cut off)
        self.max_samples: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose repeats and order :meth:`__iter__` yields (same on every rank)."""
        self.epoch = int(epoch)

    def repeats(self, epoch: int | None = None) -> np.ndarray:
        """How many times each image appears in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self.rounding == "deterministic":
            # round half up (np.round would send 2.5 to 2); every image is seen at least once
            return np.maximum(1, np.floor(self.factors + 0.5)).astype(np.int64)
        rng = np.random.default_rng([self.seed, epoch, 1])
        whole = np.floor(self.factors)
        return (whole + (rng.random(len(self.factors)) < self.factors - whole)).astype(np.int64)

    def epoch_indices(self, epoch: int | None = None) -> np.ndarray:
        """The whole epoch's repeated (and shuffled) index list, before padding and sharding."""
        epoch = self.epoch if epoch is None else epoch
        indices = np.repeat(np.arange(len(self.factors), dtype=np.int64), self.repeats(epoch))
        if self.shuffle:
            indices = indices[np.random.default_rng([self.seed, epoch, 0]).permutation(len(indices))]
        return indices

    def _sizes(self, total: int) -> tuple[int, int]:
        """(samples per rank, padded total) for an epoch of ``total`` repeated indices."""
        unit = self.num_replicas * self.batch_size
        chunks = total // unit if self.drop_last else math.ceil(total / unit)
        per_rank = chunks * self.batch_size
        return per_rank, per_rank * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        per_rank, padded = self._sizes(len(indices))
        # np.resize repeats the list from its start, as DistributedSampler pads; drop_last truncates instead
        indices = np.resize(indices, padded) if padded > len(indices) else indices[:padded]
        return iter(indices[self.rank : padded : self.num_replicas][: self.max_samples].tolist())

    def __len__(self) -> int:
        per_rank = self._sizes(int(self.repeats().sum()))[0]
        return per_rank if self.max_samples is None else min(per_rank, self.max_samples)


# ------------------------------------------------------------------------------------------------ class-balanced
# Class-balanced sampling for multi-label data (the sampler of classifier re-training, cRT).
#
# Kang et al. ("Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR 2020) re-train the
# classifier with class-balanced sampling: pick a class uniformly, then an image of that class uniformly. For
# multi-label images the probability of drawing image i is then
#
#     π_i = (1 / C') · Σ_{c positive in i} 1 / n_c          (C' = classes with at least one positive)
#
# and images without a positive label are never drawn. An epoch has as many draws as the data set has images
# (multinomial counts with a seeded generator, the same on every rank), sharded like the repeat-factor sampler.


def class_balanced_probabilities(labels: np.ndarray) -> np.ndarray:
    """π_i of the module docstring for a (images, classes) label matrix (NaN = unknown = not positive)."""
    positives = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=0.0) > 0.5
    counts = positives.sum(axis=0)
    present = counts > 0
    if not present.any():
        raise InputError("class-balanced sampling needs at least one positive label")
    per_class = np.divide(1.0, counts, out=np.zeros(len(counts)), where=present) / present.sum()
    return positives @ per_class


class ClassBalancedSampler(RepeatFactorSampler):
    """Draws ``len(labels)`` images per epoch with the probabilities of :func:`class_balanced_probabilities`."""

    def __init__(self, labels: np.ndarray, **kwargs):
        probabilities = class_balanced_probabilities(labels)
        super().__init__(np.ones(len(probabilities)), **kwargs)
        self.probabilities = probabilities

    def repeats(self, epoch: int | None = None) -> np.ndarray:
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, 2])
        p = self.probabilities / self.probabilities.sum()
        return rng.multinomial(len(p), p).astype(np.int64)


SamplerFactory = Callable[..., "RepeatFactorSampler"]

#: Training samplers by name (``sampler.name`` in a recipe; the cRT phase's ``optim.crt.sampler``). A factory is
#: called as ``factory(labels, T=, r_max=, frequency=, rounding=, seed=, num_replicas=, rank=, batch_size=)`` and
#: returns a sharded epoch sampler; a new sampler is one registered function.
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


@SAMPLERS.register("repeat_factor")
def repeat_factor_sampler(
    labels: np.ndarray,
    T: float = 0.01,
    r_max: float = 10.0,
    frequency: Frequency = "share_of_positives",
    rounding: Rounding = "deterministic",
    **sharding: Any,
) -> RepeatFactorSampler:
    """Class-aware repeat-factor sampling (module docstring)."""
    factors = repeat_factors(labels, T=T, r_max=r_max, frequency=frequency)
    return RepeatFactorSampler(factors, rounding=rounding, **sharding)


@SAMPLERS.register("uniform")
def uniform_sampler(labels: np.ndarray, rounding: Rounding = "deterministic", **options: Any) -> RepeatFactorSampler:
    """Every image once per epoch (r_i = 1): a plain shuffled epoch."""
    sharding = {k: v for k, v in options.items() if k in ("seed", "num_replicas", "rank", "batch_size")}
    return RepeatFactorSampler(np.ones(len(labels)), rounding=rounding, **sharding)


@SAMPLERS.register("class_balanced")
def class_balanced_sampler(labels: np.ndarray, **options: Any) -> RepeatFactorSampler:
    """Class-balanced sampling (:class:`ClassBalancedSampler`, the cRT phase's sampler)."""
    sharding = {k: v for k, v in options.items() if k in ("seed", "num_replicas", "rank", "batch_size")}
    return ClassBalancedSampler(labels, **sharding)


def build_train_sampler(
    labels: np.ndarray,
    enabled: bool = True,
    T: float = 0.01,
    r_max: float = 10.0,
    frequency: Frequency = "share_of_positives",
    rounding: Rounding = "deterministic",
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
    batch_size: int = 1,
    name: str = "repeat_factor",
) -> RepeatFactorSampler:
    """The training sampler ``name`` from :data:`SAMPLERS`; ``enabled=False`` is ``uniform``, a plain shuffled
    epoch."""
    factory = SAMPLERS.get(name if enabled else "uniform")
    return factory(
        labels,
        T=T,
        r_max=r_max,
        frequency=frequency,
        rounding=rounding,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
        batch_size=batch_size,
    )
