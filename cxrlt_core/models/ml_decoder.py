"""ML-Decoder: label queries that attend to the feature map through a small transformer decoder.

Ridnik et al., "ML-Decoder: Scalable and Versatile Classification Head" (WACV 2023); the head of CheXFusion
(Kim, CXR-LT 2023 #1), which adds a 2-D sine-cosine position encoding to the feature map first. Registered as the
``ml_decoder`` head in :mod:`cxrlt_core.models.heads`.

With x the feature map (B, C, h, w) and G query groups (one per class by default)::

    x ← x + PE(h, w)                                   (optional, ``pos_encoding=True``)
    m = ReLU(Linear_C→D(x_hw))                           memory: one token per position (B, hw, D)
    q = Q                                                G fixed random queries (learnable if asked) (G, D)
    per layer (no self-attention between queries, as the paper's "optimal" layer):
        q = LN1(q + Dropout(q));  q = LN2(q + Dropout(MHA(q, m, m)));  q = LN3(q + Dropout(FFN(q)))
    logit_k = q_g(k) · W_g(k)[:, j(k)] + b_k            group fully-connected: group g holds ⌈K / G⌉ classes,
                                                        class k = g·⌈K / G⌉ + j

Class k's map is the attention of its group's query over the positions (last layer, averaged over the heads): it
sums to 1 over h·w, like CSRA's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_position_encoding(channels: int, height: int, width: int) -> torch.Tensor:
    """2-D sine-cosine position encoding (C, h, w), as MAE's ``get_2d_sincos_pos_embed`` lays it out.

    The first half of the channels encodes the row, the second half the column; within a half of d = C/2
    channels, channel i < d/2 is sin(pos · ω_i) and channel d/2 + i is cos(pos · ω_i), ω_i = 10000^(−2i/d).
    Channel counts not divisible by 4 are padded up and cut back.
    """
    padded = 4 * math.ceil(channels / 4)
    quarter = padded // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def encode(positions: torch.Tensor) -> torch.Tensor:  # (n,) → (2·quarter, n)
        angles = omega[:, None] * positions[None, :].double()
        return torch.cat([torch.sin(angles), torch.cos(angles)])

    rows = encode(torch.arange(height))[:, :, None].expand(-1, height, width)
    cols = encode(torch.arange(width))[:, None, :].expand(-1, height, width)
    return torch.cat([rows, cols])[:channels].float()


class QueryDecoderLayer(nn.Module):
    """One ML-Decoder layer: cross-attention of the queries to the memory, then a feed-forward block."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out = nn.Linear(ffn_dim, dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = self.norm1(queries + self.drop1(queries))
        attended, weights = self.attn(q, memory, memory, need_weights=need_weights, average_attn_weights=True)
        q = self.norm2(q + self.drop2(attended))
        q = self.norm3(q + self.drop3(self.out(self.ffn(q))))
        return q, weights


class MLDecoderHead(nn.Module):
    """ML-Decoder head on a (B, C, h, w) feature map; see the module docstring for the formula.

    Maps (``map_kind = "attention"``): the last layer's attention of each class's query over the positions
    (B, K, h, w), each summing to 1 (in eval mode; in training mode attention dropout applies).

    Args:
        in_features: channels C of the feature map.
        num_classes: number of outputs K.
        num_groups: query groups G; −1 = min(100, K) (the paper's default: one query per class up to 100).
        embed_dim: decoder width D (768 in the paper and CheXFusion).
        num_heads: attention heads (8).
        ffn_dim: feed-forward width (2048).
        dropout: dropout in the decoder (0.1).
        num_layers: decoder layers (1).
        pos_encoding: add the 2-D sine-cosine position encoding to the feature map (CheXFusion: True).
        learn_queries: train the query embeddings (the paper keeps them fixed).
    """

    map_kind = "attention"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_groups: int = -1,
        embed_dim: int = 768,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        num_layers: int = 1,
        pos_encoding: bool = False,
        learn_queries: bool = False,
    ):
        super().__init__()
        groups = min(100, num_classes) if num_groups < 0 else min(int(num_groups), num_classes)
        if groups < 1 or num_layers < 1 or embed_dim % num_heads:
            raise ValueError(
                f"ml_decoder needs num_groups >= 1 (or -1), num_layers >= 1 and embed_dim divisible by num_heads; "
                f"got {num_groups}, {num_layers}, {embed_dim} / {num_heads}"
            )
        self.num_classes, self.num_groups = num_classes, groups
        self.per_group = math.ceil(num_classes / groups)
        self.pos_encoding = bool(pos_encoding)
        self.embed = nn.Linear(in_features, embed_dim)
        queries = torch.randn(groups, embed_dim)  # nn.Embedding's N(0, 1) initialisation
        if learn_queries:
            self.queries = nn.Parameter(queries)
        else:
            self.register_buffer("queries", queries)
        self.layers = nn.ModuleList(
            QueryDecoderLayer(embed_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers)
        )
        self.group_weight = nn.Parameter(torch.empty(groups, embed_dim, self.per_group))
        self.group_bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.xavier_normal_(self.group_weight)
        self.register_buffer("class_group", torch.arange(num_classes) // self.per_group, persistent=False)

    def _memory(self, feat: torch.Tensor) -> torch.Tensor:
        if self.pos_encoding:
            b, c, h, w = feat.shape
            feat = feat + sincos_position_encoding(c, h, w).to(feat.device, feat.dtype)
        return F.relu(self.embed(feat.flatten(2).transpose(1, 2)))

    def _decode(self, feat: torch.Tensor, need_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        memory = self._memory(feat)
        q = self.queries.to(memory.dtype).unsqueeze(0).expand(memory.shape[0], -1, -1)
        weights = None
        for index, layer in enumerate(self.layers):
            q, weights = layer(q, memory, need_weights=need_weights and index == len(self.layers) - 1)
        out = torch.einsum("bgd,gdj->bgj", q, self.group_weight.to(q.dtype))
        return out.flatten(1)[:, : self.num_classes] + self.group_bias, weights

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self._decode(feat, need_weights=False)[0]

    def forward_with_maps(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, weights = self._decode(feat, need_weights=True)
        b, _, h, w = feat.shape
        maps = weights[:, self.class_group]  # type: ignore[index]  # (B, K, hw): each class its group's row
        return logits, maps.reshape(b, self.num_classes, h, w)
