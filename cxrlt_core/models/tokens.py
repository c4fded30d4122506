"""Feature maps from foundation-style timm backbones: token sequences and channels-last maps become (B, C, h, w).

- ViTs (including DINOv2 with register tokens) return tokens (B, N, C): the ``num_prefix_tokens`` class / register
  tokens are dropped and the N − prefix patch tokens laid out on the patch grid (input size / patch size).
- Swin returns channels-last maps (B, H, W, C) (``output_fmt == "NHWC"``): permuted to (B, C, H, W).
- ConvNeXt, MaxViT, EfficientNetV2 return (B, C, h, w) already.

:func:`cam_reshape_transform` does the same to any intermediate layer's output, as pytorch-grad-cam's
``reshape_transform`` (applied to the activations and to their gradients) for Grad-CAM on token outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cxrlt_core.errors import InputError


def patch_grid(backbone: nn.Module, input_hw: Sequence[int], tokens: int) -> tuple[int, int]:
    """(h, w) of ``tokens`` patch tokens for an input of ``input_hw`` pixels: input / patch size, else a square."""
    patch = getattr(getattr(backbone, "patch_embed", None), "patch_size", None)
    if patch is not None:
        ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
        h, w = int(input_hw[0]) // ph, int(input_hw[1]) // pw
        if h * w == tokens:
            return h, w
    side = math.isqrt(tokens)
    if side * side == tokens:
        return side, side
    raise InputError(f"cannot lay {tokens} patch tokens of {type(backbone).__name__} out on a grid for {input_hw} px")


def to_feature_map(feat: torch.Tensor, backbone: nn.Module, input_hw: Sequence[int]) -> torch.Tensor:
    """A backbone's (or one of its layers') output as a (B, C, h, w) map; see the module docstring."""
    if feat.ndim == 3:
        tokens = feat[:, int(getattr(backbone, "num_prefix_tokens", 0) or 0) :]
        h, w = patch_grid(backbone, input_hw, tokens.shape[1])
        return tokens.transpose(1, 2).reshape(feat.shape[0], feat.shape[2], h, w)
    if feat.ndim == 4 and str(getattr(backbone, "output_fmt", "NCHW")) == "NHWC":
        return feat.permute(0, 3, 1, 2)
    return feat


def cam_reshape_transform(backbone: nn.Module, input_hw: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """pytorch-grad-cam ``reshape_transform`` for a target layer of ``backbone`` fed ``input_hw`` pixels."""
    size = (int(input_hw[0]), int(input_hw[1]))

    def transform(tensor: torch.Tensor) -> torch.Tensor:
        return to_feature_map(tensor, backbone, size)

    return transform
