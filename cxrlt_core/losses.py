"""Multi-label losses for long-tailed training, looked up by name in ``LOSSES`` and built by :func:`build_loss`.

Every loss is an ``nn.Module`` called as ``loss(logits (B, C), targets (B, C))`` → scalar, where ``targets`` are floats
in {0, 1} and NaN marks an unknown label. Unknown entries are masked out: with ``reduction="mean"`` (default) the loss
is the mean of the per-entry losses over the *known* entries (so an all-unknown row is the same as dropping the row);
``reduction="sum"`` sums them (Ridnik et al.'s ASL code and the winners' MLP trainer return ``-loss.sum()``).
Losses are computed in float32 whatever the logits' dtype (AMP).

Logit adjustment (any loss, ``logit_adjust_tau=τ``): during training the loss sees ``z − τ·log π_c`` with π_c the
class prior, exactly as the CXR-LT 2026 winners' ``LogitAdjustment``: π_c = n_c / Σ_k n_k, the class's share of all
positive labels (``logit_adjust_prior="share"``), or n_c / N (``"prevalence"``); n_c floored at 1 and 1e-8 added
inside the log, as there. It is applied only while the module is in training mode (``loss.train()``); validation
losses (``loss.eval()``) and inference use the raw logits. Note the sign: Menon et al. (ICLR 2021)'s logit-adjusted
softmax loss *adds* τ·log π during training, which is ``logit_adjust_tau = −τ`` here.

Entries: ``bce``, ``asl`` (Ridnik et al., ICCV 2021), ``db`` (Distribution-Balanced loss, two variants:
``variant="code"``, the CXR-LT 2026 winning code's, default; ``variant="paper"``, Wu et al., ECCV 2020),
``wbce`` and ``wasl`` (the class-weighted BCE / ASL of CheXFusion, CXR-LT 2023 #1, used by teams B, C, D, F and G
in 2024) and ``ldam_drw`` (LDAM with deferred re-weighting, Cao et al., NeurIPS 2019, in a multi-label form).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

LOSSES: Registry[type[nn.Module]] = Registry("loss")
REDUCTIONS = ("mean", "sum")
PRIORS = ("share", "prevalence")


def _counts(class_counts: Any) -> np.ndarray | None:
    if class_counts is None:
        return None
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise InputError(f"class_counts must be a non-empty 1-D array of positives per class, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise InputError("class_counts must be finite and non-negative")
    return counts


def _per_class(name: str, value: Sequence[float], num_classes: int | None) -> torch.Tensor:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (num_classes is not None and arr.size != num_classes):
        raise InputError(f"{name} needs one value per class ({num_classes}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError(f"{name} must be finite and non-negative")
    return torch.tensor(arr, dtype=torch.float32)


class MultiLabelLoss(nn.Module):
    """Base class: NaN masking, reduction and logit adjustment around a per-entry loss ``elementwise(z, y)``.

    Args:
        class_counts: positives per class in the training set (n_c), needed by rebalancing and logit adjustment.
        num_images: training images N.
        logit_adjust_tau: τ of the logit adjustment (0 = off; the winners' MLP trainer used 1).
        logit_adjust_prior: ``"share"`` (π_c = n_c / Σ n, the winning code) or ``"prevalence"`` (π_c = n_c / N).
        reduction: ``"mean"`` over known entries or ``"sum"``.
    """

    def __init__(
        self,
        class_counts: Any = None,
        num_images: int | None = None,
        *,
        logit_adjust_tau: float = 0.0,
        logit_adjust_prior: str = "share",
        reduction: str = "mean",
    ):
        super().__init__()
        self.counts = _counts(class_counts)
        self.num_images = None if num_images is None else int(num_images)
        if self.num_images is not None and self.num_images < 1:
            raise InputError(f"num_images must be at least 1, got {num_images}")
        if self.counts is not None and self.num_images is not None and self.counts.max() > self.num_images:
            raise InputError(f"a class has {int(self.counts.max())} positives but there are only {num_images} images")
        if reduction not in REDUCTIONS:
            raise InputError(f"unknown reduction {reduction!r}; choose one of: {', '.join(REDUCTIONS)}")
        if logit_adjust_prior not in PRIORS:
            raise InputError(f"unknown logit_adjust_prior {logit_adjust_prior!r}; choose one of: {', '.join(PRIORS)}")
        self.reduction = reduction
        self.logit_adjust_tau = float(logit_adjust_tau)
        self.logit_adjust_prior = logit_adjust_prior
        log_prior = torch.zeros(0)
        if self.logit_adjust_tau:
            counts = self._require_counts("logit adjustment", need_images=logit_adjust_prior == "prevalence")
            # As the winning code: counts floored at 1 (its calculate_class_counts), 1e-8 inside the log.
            counts = np.maximum(counts, 1.0)
            total = counts.sum() if logit_adjust_prior == "share" else float(self.num_images)  # type: ignore[arg-type]
            log_prior = torch.tensor(np.log(counts / total + 1e-8), dtype=torch.float32)
        self.register_buffer("log_prior", log_prior, persistent=False)

    @property
    def num_classes(self) -> int | None:
        return None if self.counts is None else int(self.counts.size)

    def _require_counts(self, what: str, need_images: bool = False) -> np.ndarray:
        if self.counts is None or (need_images and self.num_images is None):
            raise InputError(f"{what} needs the training set's class_counts{' and num_images' if need_images else ''}")
        return self.counts

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-entry loss (B, C) for float32 logits and targets in which unknown entries are 0."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Told by the training loop before each epoch (0-based); losses with a schedule (``ldam_drw``) use it."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape != targets.shape or logits.ndim != 2:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must both be (B, C)")
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes but class_counts has {self.num_classes}")
        z = logits.float()
        y = targets.to(device=z.device, dtype=torch.float32)
        known = ~torch.isnan(y)
        y = torch.where(known, y, torch.zeros_like(y))
        if self.training and self.logit_adjust_tau:
            z = z - self.logit_adjust_tau * self.log_prior.to(z.device)
        per_entry = torch.where(known, self.elementwise(z, y), torch.zeros_like(z))
        total = per_entry.sum()
        if self.reduction == "sum":
            return total
        return total / known.sum().clamp(min=1)


@LOSSES.register("bce")
class BCELoss(MultiLabelLoss):
    """Binary cross-entropy on logits: ``ℓ = −[p_c · y · log σ(z) + (1 − y) · log(1 − σ(z))]``.

    Args:
        pos_weight: None, one weight p_c per class, or ``"balanced"``: p_c = (N − n_c) / max(n_c, 1)
            (PyTorch ``BCEWithLogitsLoss(pos_weight=...)`` semantics).
    """

    def __init__(
        self, class_counts: Any = None, num_images: int | None = None, *, pos_weight: Any = None, **kwargs: Any
    ):
        super().__init__(class_counts, num_images, **kwargs)
        weight: torch.Tensor | None = None
        if isinstance(pos_weight, str):
            if pos_weight != "balanced":
                raise InputError(f"unknown pos_weight {pos_weight!r}; use 'balanced' or one number per class")
            counts = self._require_counts("pos_weight='balanced'", need_images=True)
            weight = torch.tensor((self.num_images - counts) / np.maximum(counts, 1.0), dtype=torch.float32)
        elif pos_weight is not None:
            weight = _per_class("pos_weight", pos_weight, self.num_classes)
        self.register_buffer("pos_weight", weight, persistent=False)

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight, reduction="none")


@LOSSES.register("asl")
class AsymmetricLoss(MultiLabelLoss):
    """Asymmetric loss (Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021).

    With p = σ(z) and the shifted probability p_m = max(p − m, 0) for negatives (m = ``clip``)::

        ℓ = −w_c · [ y · (1 − p)^γ+ · log(max(p, ε)) + (1 − y) · p_m^γ− · log(max(1 − p_m, ε)) ]

    As in the authors' code the focusing weights are treated as constants in the backward pass
    (``detach_focal_weight=True``, their ``disable_torch_grad_focal_loss``).

    Args:
        gamma_neg: γ− (4).
        gamma_pos: γ+ (0; the winners' trainer used 0, the authors' code defaults to 1).
        clip: probability margin m for negatives (0.05; 0 disables shifting).
        eps: ε floor inside the logs (1e-8).
        class_weights: None, one weight w_c per class, or ``"inverse"`` / ``"sqrt_inverse"``: (1/n_c)^{1 or 1/2}
            normalised to mean 1 (n_c floored at 1).
        detach_focal_weight: no gradient through the focusing weights.
    """

    def __init__(
        self,
        class_counts: Any = None,
        num_images: int | None = None,
        *,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        class_weights: Any = None,
        detach_focal_weight: bool = True,
        **kwargs: Any,
    ):
        super().__init__(class_counts, num_images, **kwargs)
        if gamma_neg < 0 or gamma_pos < 0 or not 0 <= clip < 1 or eps <= 0:
            raise InputError(
                "asl needs gamma_neg, gamma_pos >= 0, 0 <= clip < 1 and eps > 0; "
                f"got {gamma_neg}, {gamma_pos}, {clip}, {eps}"
            )
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = (
            float(gamma_neg),
            float(gamma_pos),
            float(clip),
            float(eps),
        )
        self.detach_focal_weight = bool(detach_focal_weight)
        weights: torch.Tensor | None = None
        if isinstance(class_weights, str):
            powers = {"inverse": 1.0, "sqrt_inverse": 0.5}
            if class_weights not in powers:
                raise InputError(
                    f"unknown class_weights {class_weights!r}; use {sorted(powers)} or one number per class"
                )
            inv = (1.0 / np.maximum(self._require_counts(f"class_weights={class_weights!r}"), 1.0)) ** powers[
                class_weights
            ]
            weights = torch.tensor(inv / inv.mean(), dtype=torch.float32)
        elif class_weights is not None:
            weights = _per_class("class_weights", class_weights, self.num_classes)
        self.register_buffer("class_weights", weights, persistent=False)

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        p_neg = (p - self.clip).clamp(min=0) if self.clip > 0 else p
        log_pos = torch.log(p.clamp(min=self.eps))
        log_neg = torch.log((1 - p_neg).clamp(min=self.eps))
        w_pos = (1 - p) ** self.gamma_pos
        w_neg = p_neg**self.gamma_neg
        if self.detach_focal_weight:
            w_pos, w_neg = w_pos.detach(), w_neg.detach()
        loss = -(targets * w_pos * log_pos + (1 - targets) * w_neg * log_neg)
        if self.class_weights is not None:
            loss = loss * self.class_weights
        return loss


_DB_CODE = {"beta": 0.9999, "weight_power": 0.5, "max_margin": 0.2}
_DB_PAPER = {
    "map_alpha": 10.0,
    "map_beta": 0.2,
    "map_gamma": 0.1,
    "neg_scale": 5.0,
    "init_bias": 0.1,
    "focal": True,
    "focal_gamma": 2.0,
    "focal_balance": 2.0,
}
#: Published parameter sets of the paper variant (``preset``). ``coco`` and ``voc``: the Distribution-Balanced loss
#: authors' configs (github.com/wutong16/DistributionBalancedLoss, configs/coco/LT_resnet50_pfc_DB.py and
#: configs/voc/LT_resnet50_pfc_DB.py: map_param, logit_reg, focal); ``constructor``: their ``ResampleLoss``
#: constructor defaults, with which the re-balancing weight hardly varies (about 10.5-11.0).
DB_PAPER_PRESETS = {
    "coco": {**_DB_PAPER, "map_alpha": 0.1, "map_beta": 10.0, "map_gamma": 0.2, "neg_scale": 2.0, "init_bias": 0.05},
    "voc": {**_DB_PAPER, "map_alpha": 0.1, "map_beta": 10.0, "map_gamma": 0.3, "neg_scale": 5.0, "init_bias": 0.05},
    "constructor": dict(_DB_PAPER),
}


@LOSSES.register("db")
class DistributionBalancedLoss(MultiLabelLoss):
    """Distribution-Balanced loss, in the CXR-LT 2026 winning code's form or the original paper's.

    ``variant="code"`` (default; the winners' ``DistributionBalancedLoss`` in ``train_csra_head.py``)::

        eff_c = (1 − β) / (1 − β^{n_c}),  normalised by its mean           (n_c floored at 1)
        w_c = eff_c^α          (α = weight_power = 0.5), on positive AND negative terms
        m_c = max_margin · minmax(1 / eff_c)   (max_margin = 0.2: the most frequent class 0.2, the rarest 0)
        ℓ = w_c · BCE(z − y · m_c, y)

    (the code's negative-tolerant branch is off in its recipe and is not reproduced; it guards the min-max with
    +1e-6 terms, which change margins by < 1e-6.)

    ``variant="paper"`` (Wu et al., "Distribution-Balanced Loss for Multi-Label Classification in Long-Tailed
    Datasets", ECCV 2020; their ``ResampleLoss`` with ``reweight_func="rebalance"``, ``logit_reg`` and ``focal``)::

        r_ic = (1/n_c) / Σ_{k: y_ik = 1} (1/n_k)                 (sampling-probability ratio; +∞ for a row without
                                                                     known positives, so σ(·) = 1 there)
        w_ic = α_m + σ(β_m · (r_ic − γ_m))                       (``preset`` coco, the default: α_m = 0.1, β_m = 10,
                                                                     γ_m = 0.2, the authors' COCO config; voc: γ_m 0.3;
                                                                     constructor: 10, 0.2, 0.1)
        ν_c = −κ · log(N / n_c − 1) / λ                          (coco: κ = init_bias = 0.05, λ = neg_scale = 2;
                                                                     voc: 0.05, 5; constructor: 0.1, 5;
                                                                     n_c clipped to [1, N − 1])
        z' = z + ν_c;  positives: ℓ = w · BCE(z', 1);  negatives: ℓ = (w / λ) · BCE(λ · z', 0)
        focal (default on, as the published configs): ℓ ← focal_balance · (1 − p_t)^γ · ℓ, p_t = exp(−BCE(·))

    The per-entry losses are then averaged (mmdet's mean over all entries; here over known entries).

    Args:
        variant: ``"code"`` or ``"paper"``; parameters of the other variant are an error.
        beta, weight_power, max_margin: code variant (0.9999, 0.5, 0.2).
        preset: paper variant: ``coco`` (default), ``voc`` or ``constructor`` (:data:`DB_PAPER_PRESETS`).
        map_alpha, map_beta, map_gamma, neg_scale, init_bias, focal, focal_gamma, focal_balance: paper variant,
            each overriding the preset (coco: 0.1, 10, 0.2, 2, 0.05, True, 2, 2).
    """

    def __init__(
        self,
        class_counts: Any = None,
        num_images: int | None = None,
        *,
        variant: str = "code",
        preset: str | None = None,
        beta: float | None = None,
        weight_power: float | None = None,
        max_margin: float | None = None,
        map_alpha: float | None = None,
        map_beta: float | None = None,
        map_gamma: float | None = None,
        neg_scale: float | None = None,
        init_bias: float | None = None,
        focal: bool | None = None,
        focal_gamma: float | None = None,
        focal_balance: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(class_counts, num_images, **kwargs)
        given = {k: v for k, v in locals().items() if k in {*_DB_CODE, *_DB_PAPER} and v is not None}
        if variant not in ("code", "paper"):
            raise InputError(f"unknown db variant {variant!r}; choose code or paper")
        if variant == "code" and preset is not None:
            raise InputError("db variant 'code' does not take preset (it belongs to the paper variant)")
        if variant == "paper" and (preset or "coco") not in DB_PAPER_PRESETS:
            raise InputError(f"unknown db preset {preset!r}; choose one of: {', '.join(DB_PAPER_PRESETS)}")
        paper = DB_PAPER_PRESETS[preset or "coco"] if variant == "paper" else _DB_PAPER
        own, other = (_DB_CODE, _DB_PAPER) if variant == "code" else (paper, _DB_CODE)
        foreign = sorted(k for k in given if k in other)
        if foreign:
            raise InputError(f"db variant {variant!r} does not take {foreign} (they belong to the other variant)")
        self.preset = (preset or "coco") if variant == "paper" else None
        self.variant = variant
        self.params = {**own, **given}
        counts = np.maximum(self._require_counts("the db loss", need_images=variant == "paper"), 1.0)
        if variant == "code":
            self._init_code(counts, **self.params)
        else:
            self._init_paper(counts, **self.params)

    def _init_code(self, counts: np.ndarray, beta: float, weight_power: float, max_margin: float) -> None:
        if not 0 < beta < 1:
            raise InputError(f"db beta must be in (0, 1), got {beta}")
        eff = (1.0 - beta) / (1.0 - np.power(beta, counts))
        eff = eff / eff.mean()
        inv = 1.0 / eff
        spread = inv.max() - inv.min()
        margins = max_margin * (inv - inv.min()) / spread if spread > 0 else np.zeros_like(inv)
        self.register_buffer("weights", torch.tensor(eff**weight_power, dtype=torch.float32), persistent=False)
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32), persistent=False)

    def _init_paper(self, counts: np.ndarray, neg_scale: float, init_bias: float, **_: Any) -> None:
        if neg_scale <= 0:
            raise InputError(f"db neg_scale must be positive, got {neg_scale}")
        n = float(self.num_images)  # type: ignore[arg-type]
        if n > 1:
            ratio = n / np.clip(counts, 1.0, n - 1.0) - 1.0
            bias = -np.log(ratio) * init_bias / neg_scale
        else:
            bias = np.zeros_like(counts)
        self.register_buffer("freq_inv", torch.tensor(1.0 / counts, dtype=torch.float32), persistent=False)
        self.register_buffer("neg_bias", torch.tensor(bias, dtype=torch.float32), persistent=False)

    def rebalance_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """Paper variant: w_ic = α_m + σ(β_m · (r_ic − γ_m)) from the row's known positives."""
        p = self.params
        repeat_rate = (targets * self.freq_inv).sum(dim=1, keepdim=True)
        ratio = self.freq_inv / repeat_rate.clamp(min=torch.finfo(torch.float32).tiny)
        mapped = torch.sigmoid(p["map_beta"] * (ratio - p["map_gamma"]))
        mapped = torch.where(repeat_rate > 0, mapped, torch.ones_like(mapped))
        return p["map_alpha"] + mapped

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.variant == "code":
            z = logits - targets * self.margins
            return self.weights * F.binary_cross_entropy_with_logits(z, targets, reduction="none")
        p = self.params
        lam = float(p["neg_scale"])
        weight = self.rebalance_weights(targets)
        z = logits + self.neg_bias
        z = z * (lam * (1 - targets) + targets)
        weight = weight * ((1 - targets) / lam + targets)
        bce = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
        loss = weight * bce
        if p["focal"]:
            pt = torch.exp(-bce)
            loss = p["focal_balance"] * (1 - pt) ** p["focal_gamma"] * loss
        return loss


def prevalence_weights(counts: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """CheXFusion's class weights: p_c = n_c / N, positive weight exp(1 − p_c), negative weight exp(p_c)."""
    prevalence = np.asarray(counts, dtype=np.float64) / float(num_images)
    return np.exp(1.0 - prevalence), np.exp(prevalence)


def _register_prevalence_weights(loss: MultiLabelLoss, what: str) -> None:
    """Give ``loss`` the per-class buffers ``pos_w`` = exp(1 − p_c) and ``neg_w`` = exp(p_c)."""
    counts = loss._require_counts(what, need_images=True)
    pos, neg = prevalence_weights(counts, loss.num_images)  # type: ignore[arg-type]
    loss.register_buffer("pos_w", torch.tensor(pos, dtype=torch.float32), persistent=False)
    loss.register_buffer("neg_w", torch.tensor(neg, dtype=torch.float32), persistent=False)


def _entry_weights(loss: nn.Module, targets: torch.Tensor) -> torch.Tensor:
    """w_ic = y_ic · pos_w_c + (1 − y_ic) · neg_w_c."""
    return targets * loss.pos_w + (1 - targets) * loss.neg_w


@LOSSES.register("wbce")
class WeightedBCELoss(MultiLabelLoss):
    """Class-weighted BCE of CheXFusion (Kim, ICCV 2023 workshop; its ``BCEwithClassWeights``)::

        p_c = n_c / N,   w_ic = y_ic · exp(1 − p_c) + (1 − y_ic) · exp(p_c)
        ℓ_ic = w_ic · BCE(z_ic, y_ic),   averaged over the (known) entries

    A rare class (p_c → 0) weighs positives e ≈ 2.72 and negatives 1; a class on every image the reverse.
    """

    def __init__(self, class_counts: Any = None, num_images: int | None = None, **kwargs: Any):
        super().__init__(class_counts, num_images, **kwargs)
        _register_prevalence_weights(self, "the wbce loss")

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return _entry_weights(self, targets) * bce


@LOSSES.register("wasl")
class WeightedAsymmetricLoss(AsymmetricLoss):
    """Class-weighted ASL of CheXFusion (CXR-LT 2023 #1; the weighted ASL of teams B, C, D, F, G in 2024).

    With p = σ(z), p_m = max(p − m, 0) and the weights of :class:`WeightedBCELoss`::

        ℓ_ic = −w_ic · [ y · (1 − p)^γ+ · log(max(p, ε)) + (1 − y) · p_m^γ− · log(max(1 − p_m, ε)) ]

    with CheXFusion's values γ− = 4, γ+ = 1, m = 0.05, ε = 1e-8, averaged over the entries. As in its code the
    gradient also flows through the focusing weights (``detach_focal_weight=False``; Ridnik et al.'s
    ``disable_torch_grad_focal_loss`` is the other choice). ``class_weights`` of ``asl`` may multiply on top.
    """

    def __init__(
        self,
        class_counts: Any = None,
        num_images: int | None = None,
        *,
        gamma_neg: float = 4.0,
        gamma_pos: float = 1.0,
        clip: float = 0.05,
        detach_focal_weight: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            class_counts,
            num_images,
            gamma_neg=gamma_neg,
            gamma_pos=gamma_pos,
            clip=clip,
            detach_focal_weight=detach_focal_weight,
            **kwargs,
        )
        _register_prevalence_weights(self, "the wasl loss")

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _entry_weights(self, targets) * super().elementwise(logits, targets)


@LOSSES.register("ldam_drw")
class LDAMDRWLoss(MultiLabelLoss):
    """LDAM with deferred re-weighting (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019), in a multi-label (one binary problem per class) form::

        Δ_c = max_margin · n_c^(−1/4) / max_k n_k^(−1/4)          (the rarest class gets max_margin)
        ℓ_ic = w_c(e) · BCE(s · (z_ic − y_ic · Δ_c), y_ic)
        w_c(e) = 1 before epoch ``drw_epoch``; from then on the class-balanced weight of Cui et al. (CVPR 2019)
                 (1 − β) / (1 − β^{n_c}), normalised to sum to the number of classes          (β = 0.9999)

    How it differs from the single-label original: the original subtracts Δ_y from the true class's logit only
    and takes a softmax cross-entropy over classes, with a cosine classifier (normalised features and weights)
    whose logits lie in [−1, 1], hence its scale s = 30; its DRW weight is that of the sample's one class. Here
    every class is its own sigmoid problem: the margin is subtracted from the logit of every *positive* class of
    an image (negatives are untouched), the class weight w_c multiplies both the positive and the negative term of
    class c, and the heads give unnormalised logits, so the default scale is s = 1 (set ``scale`` for a
    normalised head). n_c is floored at 1.

    Args:
        max_margin: Δ of the rarest class (0.5, the original's ``max_m``).
        scale: s (1.0).
        drw_epoch: first (0-based) epoch with class-balanced weights (the original: 160 of 200 epochs).
        beta: β of the class-balanced weights (0.9999).
    """

    def __init__(
        self,
        class_counts: Any = None,
        num_images: int | None = None,
        *,
        max_margin: float = 0.5,
        scale: float = 1.0,
        drw_epoch: int = 0,
        beta: float = 0.9999,
        **kwargs: Any,
    ):
        super().__init__(class_counts, num_images, **kwargs)
        if max_margin < 0 or scale <= 0 or drw_epoch < 0 or not 0 < beta < 1:
            raise InputError(
                "ldam_drw needs max_margin >= 0, scale > 0, drw_epoch >= 0 and 0 < beta < 1; "
                f"got {max_margin}, {scale}, {drw_epoch}, {beta}"
            )
        counts = np.maximum(self._require_counts("the ldam_drw loss"), 1.0)
        inv_quarter = counts**-0.25
        margins = max_margin * inv_quarter / inv_quarter.max()
        balanced = (1.0 - beta) / (1.0 - np.power(beta, counts))
        balanced = balanced / balanced.sum() * len(counts)
        self.scale, self.drw_epoch = float(scale), int(drw_epoch)
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32), persistent=False)
        self.register_buffer("balanced", torch.tensor(balanced, dtype=torch.float32), persistent=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def reweighting(self) -> bool:
        """Whether the class-balanced weights are on (epoch ≥ ``drw_epoch``)."""
        return self.epoch >= self.drw_epoch

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = self.scale * (logits - targets * self.margins)
        loss = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
        return loss * self.balanced if self.reweighting else loss


def build_loss(name: str, class_counts: Any = None, num_images: int | None = None, **params: Any) -> MultiLabelLoss:
    """Instantiate registered loss ``name`` for a training set with ``class_counts`` positives per class.

    Raises:
        InputError: unknown loss, unknown parameter (the message lists the accepted ones) or a bad value.
    """
    cls = LOSSES.get(name)
    accepted = sorted(
        {
            p
            for klass in cls.__mro__
            if isinstance(klass, type) and issubclass(klass, MultiLabelLoss)
            for p, spec in inspect.signature(klass.__init__).parameters.items()
            if spec.kind is inspect.Parameter.KEYWORD_ONLY
        }
    )
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(f"loss {name!r} has no parameter(s) {unknown}; it accepts {accepted}")
    loss = cls(class_counts, num_images, **params)
    return loss  # type: ignore[return-value]


def loss_parameter_types(name: str) -> dict[str, Any]:
    """The keyword parameters a recipe may give loss ``name`` (``loss.params``), with their types."""
    cls = LOSSES.get(name)
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, MultiLabelLoss):
            hints = typing.get_type_hints(klass.__init__)
            for p, spec in inspect.signature(klass.__init__).parameters.items():
                if spec.kind is inspect.Parameter.KEYWORD_ONLY:
                    out[p] = hints.get(p, Any)
    return out


def loss_parameters(name: str) -> dict[str, Any]:
    """Keyword parameters of loss ``name`` with their defaults (for recipes and the UI)."""
    cls = LOSSES.get(name)
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, MultiLabelLoss):
            for p, spec in inspect.signature(klass.__init__).parameters.items():
                if spec.kind is inspect.Parameter.KEYWORD_ONLY:
                    out[p] = spec.default
    return out


__all__ = [
    "LOSSES",
    "AsymmetricLoss",
    "BCELoss",
    "DistributionBalancedLoss",
    "LDAMDRWLoss",
    "MultiLabelLoss",
    "WeightedAsymmetricLoss",
    "WeightedBCELoss",
    "build_loss",
    "loss_parameters",
    "prevalence_weights",
]
