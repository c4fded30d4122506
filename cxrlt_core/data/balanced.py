"""Class-balanced sampling for multi-label data (the sampler of classifier re-training, cRT).

Kang et al. ("Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR 2020) re-train the
classifier with class-balanced sampling: pick a class uniformly, then an image of that class uniformly. For
multi-label images the probability of drawing image i is then

    π_i = (1 / C') · Σ_{c positive in i} 1 / n_c          (C' = classes with at least one positive)

and images without a positive label are never drawn. An epoch has as many draws as the data set has images
(multinomial counts with a seeded generator, the same on every rank), sharded like the repeat-factor sampler.
"""

from __future__ import annotations

import numpy as np

from cxrlt_core.data.sampler import RepeatFactorSampler
from cxrlt_core.errors import InputError


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
