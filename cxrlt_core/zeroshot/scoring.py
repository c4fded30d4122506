"""Zero-shot scoring rules: image embeddings + per-class prompt embeddings -> per-class probabilities.

Every rule is a pure, vectorised function ``rule(image_embeddings, classes, alpha, logit_scale) -> (N, C)``:

- ``image_embeddings``: (N, D) image embeddings (unit-normalised here again, so any scale is accepted);
- ``classes``: one :class:`ClassEmbeddings` per class, (K, D) positive prompt embeddings and optionally (M, D)
  negative prompt embeddings;
- ``alpha``: the sharpness of the sigmoid rules (WhyXrayCLIP paper: 5);
- ``logit_scale``: the model's learned temperature ``exp(logit_scale)`` (100 for OpenAI CLIP), used by the softmax
  rule; ``None`` falls back to ``alpha``.

The text side is reduced to one (C, D) matrix per rule (cheap: C x K rows), so scoring N images costs one
(N, D) x (D, C) product: re-scoring 10k cached images after a prompt edit is a millisecond affair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

__all__ = [
    "DEFAULT_ALPHA",
    "SCORING_RULES",
    "ClassEmbeddings",
    "get_scoring_rule",
    "list_scoring_rules",
    "mean_cosine",
    "mean_embedding",
    "pos_neg_softmax",
    "sigmoid",
    "unit_rows",
]

DEFAULT_ALPHA = 5.0
"""α of the sigmoid rules (WhyXrayCLIP / CXR-LT 2026 winning code)."""

ScoringRule = Callable[[np.ndarray, Sequence["ClassEmbeddings"], float, "float | None"], np.ndarray]
SCORING_RULES: Registry[ScoringRule] = Registry("scoring rule")


@dataclasses.dataclass(frozen=True)
class ClassEmbeddings:
    """The text embeddings of one class's prompts.

    Attributes:
        positives: (K, D) embeddings of the prompts describing the finding (K >= 1).
        negatives: (M, D) embeddings of prompts describing its absence, or ``None``.
    """

    positives: np.ndarray
    negatives: np.ndarray | None = None

    def __post_init__(self) -> None:
        positives = np.atleast_2d(np.asarray(self.positives, dtype=np.float32))
        if positives.ndim != 2 or positives.shape[0] == 0:
            raise InputError(f"a class needs at least one prompt embedding, got shape {positives.shape}")
        object.__setattr__(self, "positives", positives)
        if self.negatives is not None:
            negatives = np.atleast_2d(np.asarray(self.negatives, dtype=np.float32))
            if negatives.shape[0] == 0:
                negatives = None
            elif negatives.shape[1] != positives.shape[1]:
                raise InputError(f"negative embeddings have width {negatives.shape[1]}, positives {positives.shape[1]}")
            object.__setattr__(self, "negatives", negatives)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (zero rows stay zero): ``x̂ = x / ||x||``."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``σ(x) = 1 / (1 + e^{-x})``, computed as ``(1 + tanh(x/2)) / 2`` (no overflow for large ``|x|``)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _check(image_embeddings: np.ndarray, classes: Sequence[ClassEmbeddings]) -> np.ndarray:
    images = np.asarray(image_embeddings, dtype=np.float32)
    if images.ndim != 2:
        raise InputError(f"image embeddings must be (N, D), got shape {images.shape}")
    if not classes:
        raise InputError("no classes to score")
    widths = {c.positives.shape[1] for c in classes}
    if widths != {images.shape[1]}:
        raise InputError(f"text embeddings have width {sorted(widths)}, image embeddings {images.shape[1]}")
    return unit_rows(images)


def _mean_prompt(classes: Sequence[ClassEmbeddings], negatives: bool = False) -> np.ndarray:
    """(C, D): per class the mean of its unit prompt embeddings, ``m_c = (1/K) Σ_k t̂_{c,k}`` (not re-normalised);
    of its negative prompts with ``negatives``."""
    return np.stack([unit_rows(c.negatives if negatives else c.positives).mean(axis=0) for c in classes])


@SCORING_RULES.register("mean_cosine")
def mean_cosine(
    image_embeddings: np.ndarray,
    classes: Sequence[ClassEmbeddings],
    alpha: float = DEFAULT_ALPHA,
    logit_scale: float | None = None,
) -> np.ndarray:
    """Mean prompt similarity through a sigmoid (WhyXrayCLIP paper; CXR-LT 2026 winners' Task 2 score).

    ``p_c = σ(α · (1/K) Σ_k ⟨v̂, t̂_{c,k}⟩)`` with unit image and text embeddings and α = 5.
    Since ``⟨v̂, ·⟩`` is linear this equals ``σ(α ⟨v̂, m_c⟩)`` with ``m_c`` the (unnormalised) mean prompt embedding.
    ``logit_scale`` is unused.
    """
    images = _check(image_embeddings, classes)
    return sigmoid(alpha * (images @ _mean_prompt(classes).T))


@SCORING_RULES.register("mean_embedding")
def mean_embedding(
    image_embeddings: np.ndarray,
    classes: Sequence[ClassEmbeddings],
    alpha: float = DEFAULT_ALPHA,
    logit_scale: float | None = None,
) -> np.ndarray:
    """open_clip's prompt ensembling (``build_zero_shot_classifier``), through the paper's sigmoid.

    ``p_c = σ(α ⟨v̂, m_c / ||m_c||⟩)`` with ``m_c = (1/K) Σ_k t̂_{c,k}``: the mean of the unit prompt embeddings,
    re-normalised. It differs from :func:`mean_cosine` by the factor ``1 / ||m_c||`` inside the sigmoid, which
    is larger for classes whose prompts disagree. ``logit_scale`` is unused.
    """
    images = _check(image_embeddings, classes)
    return sigmoid(alpha * (images @ unit_rows(_mean_prompt(classes)).T))


@SCORING_RULES.register("pos_neg_softmax")
def pos_neg_softmax(
    image_embeddings: np.ndarray,
    classes: Sequence[ClassEmbeddings],
    alpha: float = DEFAULT_ALPHA,
    logit_scale: float | None = None,
) -> np.ndarray:
    """CheXzero's positive-vs-negative softmax (Tiu et al., Nat. Biomed. Eng. 2022).

    With ``p̂_c`` and ``n̂_c`` the re-normalised means of the class's positive and negative prompt embeddings
    (open_clip ensembling on each side) and ``τ`` the model's logit scale (``alpha`` when ``logit_scale`` is None),

        ``p_c = softmax([τ⟨v̂, p̂_c⟩, τ⟨v̂, n̂_c⟩])_0 = σ(τ (⟨v̂, p̂_c⟩ − ⟨v̂, n̂_c⟩))``.

    CheXzero's code takes the softmax of the raw cosines (τ = 1); τ changes the spread of the probabilities, never
    their ranking (AP, AUC). Every class needs negative prompts (the prompt layer supplies ``"no <finding>"``).
    """
    images = _check(image_embeddings, classes)
    missing = [i for i, c in enumerate(classes) if c.negatives is None]
    if missing:
        raise InputError(f"pos_neg_softmax needs negative prompts for every class; classes {missing} have none")
    positives = unit_rows(_mean_prompt(classes))
    negatives = unit_rows(_mean_prompt(classes, negatives=True))
    tau = float(alpha if logit_scale is None else logit_scale)
    return sigmoid(tau * (images @ (positives - negatives).T))


def get_scoring_rule(name: str) -> ScoringRule:
    """The registered scoring rule called ``name`` (an ``InputError`` lists the choices otherwise)."""
    return SCORING_RULES.get(name)


def list_scoring_rules() -> list[str]:
    """Names of every registered scoring rule."""
    return SCORING_RULES.names()
