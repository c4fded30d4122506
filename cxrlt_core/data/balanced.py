"""Class-balanced sampling for multi-label data (the sampler of classifier re-training, cRT).

Kang et al. ("Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR 2020) re-train the
classifier with class-balanced sampling: pick a class uniformly, then an image of that class uniformly. For
multi-label images the probability of drawing image i is then

    π_i = (1 / C') · Σ_{c positive in i} 1 / n_c          (C' = classes with at least one positive)

and images without a positive label are never drawn. An epoch has as many draws as the data set has images
(multinomial counts with a seeded generator, the same on every rank), sharded like the repeat-factor sampler.
"""

from __future__ import annotations

# The sampler lives in cxrlt_core.data.sampler beside the other registered samplers (``class_balanced``).
from cxrlt_core.data.sampler import ClassBalancedSampler, class_balanced_probabilities

__all__ = ["ClassBalancedSampler", "class_balanced_probabilities"]
