"""Classification heads on an unpooled feature map (B, C_feat, h, w), looked up by name in ``HEADS``.

Every head maps features to logits with ``forward(feat) -> (B, K)`` and also exposes a per-class spatial map with
``forward_with_maps(feat) -> (logits, maps (B, K, h, w))`` for the radiograph inspector. ``map_kind`` says what the
map holds ("attention": weights that sum to 1 over the positions; "score": a logit-like class score per position).

Entries:
    ``mlp``: the method's MLP head (GAP, then BN1d, Dropout, Linear, ReLU, BN1d, Dropout, Linear).
    ``csra``: the CXR-LT 2026 winning code's class-specific residual attention (BN2d + one attention branch).
    ``csra_mh``: the original multi-head CSRA of Zhu & Wu (ICCV 2021) with per-head softmax temperatures.
    ``linear``: global average pooling + one Linear layer (timm's own classifier).
    ``ml_decoder``: ML-Decoder (Ridnik et al., WACV 2023), label queries attending to the feature map, as
        CheXFusion (CXR-LT 2023 #1) uses it (see :mod:`cxrlt_core.models.ml_decoder`).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrlt_core.errors import InputError
from cxrlt_core.models.ml_decoder import MLDecoderHead
from cxrlt_core.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("head")

#: Softmax temperatures of the original multi-head CSRA (Zhu & Wu 2021); T = 99 stands for max pooling.
CSRA_TEMPERATURES: dict[int, tuple[int, ...]] = {
    1: (1,),
    2: (1, 99),
    4: (1, 2, 4, 99),
    6: (1, 2, 3, 4, 5, 99),
    8: (1, 2, 3, 4, 5, 6, 7, 99),
}
MAX_POOL_T = 99


def _eval_batch_norm(x: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Batch norm with the layer's running statistics whatever its mode (maps must not touch the statistics)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


@HEADS.register("mlp")
class MLPHead(nn.Module):
    """The method's MLP head: GAP → BN1d → Dropout → Linear(C, hidden) → ReLU → BN1d → Dropout → Linear(hidden, K).

    The last layer is Xavier-uniform initialised with bias ``bias_init`` (−2: every class starts at p ≈ 0.12), as in
    the winning team's MLP trainer.

    Maps (``map_kind = "score"``): the same MLP applied to each position's feature vector, with the batch norms'
    running statistics and no dropout, i.e. ``map[k, i, j] = MLP_eval(x[:, i, j])_k``. Because of the ReLU the mean of
    the map is not the logit (the logit is the MLP of the mean feature); it is the head's own class evidence at each
    position, which is what an overlay should show.

    Args:
        in_features: channels of the feature map.
        num_classes: number of outputs K.
        hidden: width of the hidden layer (512).
        dropout: dropout probability before each Linear (0.3).
        bias_init: initial bias of the last Linear (−2.0).
    """

    map_kind = "score"
    output_layers = ("classifier.6",)

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 512, dropout: float = 0.3, bias_init: float = -2.0
    ):
        super().__init__()
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(in_features),
            nn.Dropout(dropout),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.bias_init = float(bias_init)
        self.reset_last()

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of pooled features (B, C): the MLP alone (the backbone pooled, e.g. LN(GAP(x)))."""
        return self.classifier(pooled)

    def position_scores(self, cells: torch.Tensor) -> torch.Tensor:
        """The MLP in eval form (running statistics, no dropout) on per-position features (N, C) → (N, K)."""
        bn1, _, fc1, _, bn2, _, fc2 = self.classifier
        x = F.relu(fc1(_eval_batch_norm(cells, bn1)))
        return fc2(_eval_batch_norm(x, bn2))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.classify(feat.mean(dim=(2, 3)))

    def forward_with_maps(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.forward(feat)
        b, c, h, w = feat.shape
        x = self.position_scores(feat.permute(0, 2, 3, 1).reshape(b * h * w, c))
        maps = x.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return logits, maps

    def reset_last(self, bias_init: float | None = None) -> None:
        """Re-initialise the last Linear only: Xavier-uniform weight, constant bias (the Stage 1 → 2 surgery)."""
        last = self.classifier[-1]
        nn.init.xavier_uniform_(last.weight)
        nn.init.constant_(last.bias, self.bias_init if bias_init is None else bias_init)


@HEADS.register("linear")
class LinearHead(nn.Module):
    """Global average pooling then one Linear layer: timm's own classifier of ConvNeXt / MaxViT, the head of the
    CXR-LT 2024 teams that fine-tuned those backbones as they come (teams A and F).

    ``logit_k = W_k · mean_hw(x) + b_k``. Maps (``map_kind = "score"``): ``W_k · x_hw + b_k`` at each position;
    because the head is linear their spatial mean is exactly the logit.

    Args:
        in_features: channels of the feature map.
        num_classes: number of outputs K.
        dropout: dropout before the Linear layer (0).
    """

    map_kind = "score"

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(feat.mean(dim=(2, 3))))

    def forward_with_maps(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = torch.einsum("bchw,kc->bkhw", feat, self.fc.weight) + self.fc.bias[None, :, None, None]
        return self.forward(feat), maps


@HEADS.register("csra")
class CSRAHead(nn.Module):
    """Class-specific residual attention as in the CXR-LT 2026 winning code (one head, no temperature).

    With x the BN2d-normalised feature map, W, b the shared classifier and A a 1x1 conv without bias::

        a_k = softmax_hw((A x)_k)                                  attention of class k over positions
        logit_k = (W·GAP(x) + b)_k + λ · ((Σ_hw a_k,hw · x_hw)·W_k + b_k)

    The bias b appears in both terms (so the effective bias is (1 + λ)·b): this is exactly what the winning code
    computes (``logit_gap + lam * logit_csra`` with ``+ self.classifier.bias`` in both), kept so that its
    released weights load and behave the same. Parameter names (``bn``, ``classifier``, ``conv_att``) follow it too.

    Maps (``map_kind = "attention"``): the attention weights a_k (B, K, h, w), each summing to 1 over positions.

    Args:
        in_features: channels of the feature map.
        num_classes: number of outputs K.
        lam: weight λ of the attention branch (0.1).
    """

    map_kind = "attention"
    output_layers = ("classifier", "conv_att")

    def __init__(self, in_features: int, num_classes: int, lam: float = 0.1):
        super().__init__()
        self.lam = lam
        self.bn = nn.BatchNorm2d(in_features)
        self.classifier = nn.Linear(in_features, num_classes)
        self.conv_att = nn.Conv2d(in_features, num_classes, kernel_size=1, bias=False)

    def _logits_and_attention(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn(feat)
        b, c, h, w = x.shape
        logit_gap = self.classifier(x.mean(dim=(2, 3)))
        attention = torch.softmax(self.conv_att(x).flatten(2), dim=2)  # (B, K, hw)
        class_feat = torch.bmm(attention, x.flatten(2).transpose(1, 2))  # (B, K, C)
        logit_att = (class_feat * self.classifier.weight.unsqueeze(0)).sum(2) + self.classifier.bias
        return logit_gap + self.lam * logit_att, attention.reshape(b, -1, h, w)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self._logits_and_attention(feat)[0]

    def forward_with_maps(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._logits_and_attention(feat)


class CSRABranch(nn.Module):
    """One head of the original CSRA (Zhu & Wu, ICCV 2021, "Residual Attention: A Simple but Effective Method").

    With s = W x / ||W_k|| the class score map of a 1x1 conv without bias (the weight-norm division is in the
    authors' code; ``normalize_weight=False`` drops it)::

        base_k = mean_hw s_k,      att_k = Σ_hw s_k,hw · softmax_hw(T · s_k)_hw   (T = 99: att_k = max_hw s_k)
        logit_k = base_k + λ · att_k
    """

    def __init__(self, in_features: int, num_classes: int, temperature: float, lam: float, normalize_weight: bool):
        super().__init__()
        self.temperature = temperature
        self.lam = lam
        self.normalize_weight = normalize_weight
        self.head = nn.Conv2d(in_features, num_classes, kernel_size=1, bias=False)

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores s per position (B, K, h, w)."""
        score = self.head(x)
        if self.normalize_weight:
            score = score / torch.linalg.vector_norm(self.head.weight.flatten(1), dim=1).view(1, -1, 1, 1)
        return score

    def logits_from_scores(self, score: torch.Tensor) -> torch.Tensor:
        flat = score.flatten(2)
        base = flat.mean(dim=2)
        if self.temperature == MAX_POOL_T:
            att = flat.amax(dim=2)
        else:
            att = (flat * torch.softmax(flat * self.temperature, dim=2)).sum(dim=2)
        return base + self.lam * att

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_scores(self.score_map(x))


@HEADS.register("csra_mh")
class CSRAMultiHead(nn.Module):
    """The original multi-head CSRA (Zhu & Wu, ICCV 2021): the sum of ``num_heads`` CSRA branches.

    Branch temperatures follow the authors' table ``{1: [1], 2: [1, 99], 4: [1, 2, 4, 99], 6: [1..5, 99],
    8: [1..7, 99]}`` where T = 99 means max pooling; ``logit = Σ_heads (base + λ·att)`` (see :class:`CSRABranch`).

    Maps (``map_kind = "score"``): the class score maps s summed over branches (B, K, h, w); their spatial mean is
    the sum of the branches' ``base`` logits. (With T = 99 a branch's attention is one-hot: scores are what to show.)

    Args:
        in_features: channels of the feature map.
        num_classes: number of outputs K.
        num_heads: 1, 2, 4, 6 or 8.
        lam: weight λ of the attention term (0.1).
        normalize_weight: divide scores by ||W_k|| as the authors' code does (True).
        bn: put a BatchNorm2d on the feature map first, like the ``csra`` head (False: the original has none).
    """

    map_kind = "score"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_heads: int = 1,
        lam: float = 0.1,
        normalize_weight: bool = True,
        bn: bool = False,
    ):
        super().__init__()
        if num_heads not in CSRA_TEMPERATURES:
            raise ValueError(f"csra_mh num_heads must be one of {sorted(CSRA_TEMPERATURES)}, got {num_heads}")
        self.num_heads = num_heads
        self.bn = nn.BatchNorm2d(in_features) if bn else nn.Identity()
        self.multi_head = nn.ModuleList(
            CSRABranch(in_features, num_classes, t, lam, normalize_weight) for t in CSRA_TEMPERATURES[num_heads]
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = self.bn(feat)
        return sum(branch(x) for branch in self.multi_head)  # type: ignore[return-value]

    def forward_with_maps(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn(feat)
        logits, maps = 0.0, 0.0
        for branch in self.multi_head:
            score = branch.score_map(x)
            logits = logits + branch.logits_from_scores(score)
            maps = maps + score
        return logits, maps  # type: ignore[return-value]


HEADS.add("ml_decoder", MLDecoderHead)


def head_parameter_types(name: str) -> dict[str, Any]:
    """The parameters a recipe may give head ``name`` (``model.head_params``), with their types."""
    cls = HEADS.get(name)
    hints = typing.get_type_hints(cls.__init__)
    return {
        p: hints.get(p, Any)
        for p in inspect.signature(cls.__init__).parameters
        if p not in ("self", "in_features", "num_classes")
    }


HEAD_INITS = ("default", "winning_code")
"""How a fresh head is initialised: ``default`` keeps PyTorch's layer defaults (the MLP head's own Xavier last layer
included); ``winning_code`` is the winning code's surgery: for ``csra``, Xavier-uniform classifier weight and attention
conv, zero classifier bias; for ``mlp``, Xavier-uniform last Linear with bias −2 (what the MLP head does anyway)."""


def init_head(head: nn.Module, scheme: str = "default") -> nn.Module:
    """Apply the initialisation ``scheme`` (a name in :data:`HEAD_INITS`) to a freshly built head; returns it.

    Xavier-uniform (Glorot & Bengio 2010): ``U(−a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``; for a 1x1 conv the
    fans are the channels. Heads without a winning-code initialisation keep their defaults.
    """
    if scheme not in HEAD_INITS:
        raise InputError(f"unknown head_init {scheme!r}; choose one of: {', '.join(HEAD_INITS)}")
    if scheme == "default":
        return head
    if isinstance(head, CSRAHead):
        nn.init.xavier_uniform_(head.classifier.weight)
        nn.init.zeros_(head.classifier.bias)
        nn.init.xavier_uniform_(head.conv_att.weight)
    elif isinstance(head, MLPHead):
        head.reset_last()
    return head


def build_head(name: str, in_features: int, num_classes: int, params: dict | None = None) -> nn.Module:
    """Instantiate the registered head ``name``; unknown or bad parameters are an ``InputError`` naming them."""
    cls = HEADS.get(name)
    params = dict(params or {})
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "in_features", "num_classes")
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InputError(f"head {name!r} has no parameter(s) {unknown}; it accepts {accepted}")
    try:
        return cls(in_features, num_classes, **params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"head {name!r} with parameters {params}: {exc}") from None
