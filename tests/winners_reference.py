"""An independent re-implementation of the CXR-LT 2026 winning team's Task 1 steps, written from their published
description (repository hieuphamha19/CXR_LT: ``model.py``, ``tta.py``, ``ensemble_inference.py``,
``train_standard_head.py``), used as the oracle of the fidelity tests. Plain timm + torch + cv2, no cxrlt code.

What it does, step by step:
    decode: ``cv2.imread(path, IMREAD_UNCHANGED)``; a gray non-uint8 image is percentile-clipped on a strided sample
        of ~2000 pixels (0.5 / 99.5) and cast to uint8 by truncation; gray is replicated to RGB.
    resize: ``cv2.resize`` to size x size with INTER_LINEAR; ``x / 255``, minus ImageNet mean, over std; CHW.
    models: MLP model = ``timm.create_model(name, num_classes=0)`` (timm's pooling) + Sequential(BN1d, Dropout,
        Linear(C, 512), ReLU, BN1d, Dropout, Linear(512, K)) under ``classifier``; CSRA model = timm with
        ``global_pool=""`` + ``bn`` (BN2d) + ``head`` (``classifier`` Linear, ``conv_att`` 1x1 conv without bias),
        logit = classifier(GAP(x)) + λ · (Σ softmax(att) x · W + b).
    views: on the normalised tensor: flip = ``flip(dims=[3])``; rotation: ``affine_grid`` with
        [[cos, −sin, 0], [sin, cos, 0]] + ``grid_sample(bilinear, reflection)``; zoom-in: bilinear to int(H·f), crop
        from (int(H·f) − H) // 2; zoom-out: bilinear to int(H·f), reflect-pad (H − h) // 2 before, the rest after.
    merge: mean of sigmoids over views; ensemble: weights normalised to sum 1, weighted sum of probabilities;
        gating: p_c ← p_c · (1 − p_0)^α for c ≥ 1 (column 0 is Normal), then clip to [1e-6, 1 − 1e-6].
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------- models
class WinnerMLP(nn.Module):
    def __init__(self, backbone: str, num_classes: int, hidden: int = 512):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, drop_path_rate=0.0)
        c = self.backbone.num_features
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(c),
            nn.Dropout(0.3),
            nn.Linear(c, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(0.3),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


class WinnerCSRAHead(nn.Module):
    def __init__(self, c: int, k: int, lam: float = 0.1):
        super().__init__()
        self.lam = lam
        self.classifier = nn.Linear(c, k)
        self.conv_att = nn.Conv2d(c, k, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gap = self.classifier(x.mean(dim=(2, 3)))
        att = torch.softmax(self.conv_att(x).reshape(b, -1, h * w), dim=2)
        feat = torch.bmm(att, x.reshape(b, c, h * w).permute(0, 2, 1))
        return gap + self.lam * ((feat * self.classifier.weight[None]).sum(2) + self.classifier.bias)


class WinnerCSRA(nn.Module):
    def __init__(self, backbone: str, num_classes: int):
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="", drop_path_rate=0.0)
        c = self.backbone.num_features
        self.bn = nn.BatchNorm2d(c)
        self.head = WinnerCSRAHead(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.backbone(x)))


def randomise(model: nn.Module, seed: int, scale: float = 1.0) -> nn.Module:
    """Random weights and BatchNorm statistics, so that outputs depend on the input; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                if name.endswith("running_var"):
                    tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
                elif name.endswith("running_mean"):
                    tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
                elif name.endswith(".weight") and tensor.ndim == 1:
                    tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
                elif name.endswith(".bias") or tensor.ndim == 1:
                    tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator))
                else:
                    fan = max(1, tensor[0].numel()) if tensor.ndim > 1 else 1
                    tensor.copy_(scale * torch.randn(tensor.shape, generator=generator) / math.sqrt(fan))
    return model.eval()


# ------------------------------------------------------------------------------------------------------- images
def load(path: str, size: int) -> torch.Tensor:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 2:
        if image.dtype != np.uint8:
            flat = image.ravel()
            sampled = flat[:: max(1, flat.size // 2000)]
            lo, hi = np.percentile(sampled, (0.5, 99.5))
            if hi > lo:
                image = ((np.clip(image, lo, hi) - lo) / (hi - lo) * 255.0).astype(np.uint8)
            else:
                image = ((image / image.max()) * 255.0).astype(np.uint8)
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    image = (image.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(image).permute(2, 0, 1).float()


# -------------------------------------------------------------------------------------------------------- views
def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    a = torch.tensor([degrees * np.pi / 180])
    theta = torch.tensor([[torch.cos(a), -torch.sin(a), 0], [torch.sin(a), torch.cos(a), 0]], dtype=x.dtype)
    grid = F.affine_grid(theta[None].expand(x.shape[0], -1, -1), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _up(x: torch.Tensor, f: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    nh, nw = int(h * f), int(w * f)
    big = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    return big[:, :, (nh - h) // 2 : (nh - h) // 2 + h, (nw - w) // 2 : (nw - w) // 2 + w]


def _down(x: torch.Tensor, f: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    nh, nw = int(h * f), int(w * f)
    small = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    ph, pw = (h - nh) // 2, (w - nw) // 2
    return F.pad(small, (pw, w - nw - pw, ph, h - nh - ph), mode="reflect")


def _flip(x: torch.Tensor) -> torch.Tensor:
    return torch.flip(x, dims=[3])


VIEWS = {
    "medium": [
        lambda x: x,
        _flip,
        lambda x: _rotate(x, 5.0),
        lambda x: _rotate(x, -5.0),
        lambda x: _up(x, 1.1),
        lambda x: _down(x, 0.9),
    ],
    "flip_scale": [
        lambda x: x,
        _flip,
        lambda x: _up(x, 1.05),
        lambda x: _down(x, 0.95),
        lambda x: _flip(_up(x, 1.05)),
        lambda x: _flip(_down(x, 0.95)),
    ],
}


@torch.no_grad()
def view_probabilities(model: nn.Module, batch: torch.Tensor, tta: str) -> torch.Tensor:
    """(V, B, K) sigmoid probabilities, one model call per view."""
    return torch.stack([torch.sigmoid(model(view(batch))) for view in VIEWS[tta]])


def ensemble_and_gate(per_model: list[np.ndarray], weights: list[float], alpha: float) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    probs = sum(wi * p for wi, p in zip(w, per_model))
    gated = probs.copy()
    gated[:, 1:] = gated[:, 1:] * np.clip(1.0 - gated[:, :1], 0.0, 1.0) ** alpha
    return np.clip(gated, 1e-6, 1 - 1e-6)
