"""The Task 1 classifier: a timm backbone, a registered head, and the config that rebuilds both.

``ModelConfig`` is everything needed to rebuild the network (it travels in every checkpoint's sidecar);
``build_model(cfg)`` turns it into a :class:`CxrClassifier`, loading pretrained weights when ``cfg.pretrained`` says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from timm.optim import param_groups_layer_decay
from torch import nn

from cxrlt_core.errors import InputError
from cxrlt_core.models.backbones import (
    PretrainedReport,
    create_backbone,
    feature_channels,
    last_stage,
    load_backbone_state,
    pretrained_source,
    read_state_dict,
)
from cxrlt_core.models.heads import HEAD_INITS, build_head, init_head
from cxrlt_core.models.sidecar import read_sidecar, sidecar_path
from cxrlt_core.models.tokens import cam_reshape_transform, to_feature_map

_log = logging.getLogger(__name__)

POOLINGS = ("pooled", "feature_map")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class ModelConfig:
    """How to build a Task 1 model; round-trips through :meth:`to_dict` / :meth:`from_dict` (JSON, YAML).

    Attributes:
        backbone: any timm model name ("convnextv2_base" in the paper, "convnextv2_atto" for the demo).
        head: a name in ``HEADS``: "mlp", "csra" or "csra_mh".
        head_params: keyword arguments of the head, e.g. ``{"hidden": 512, "dropout": 0.3, "bias_init": -2.0}``
            (mlp), ``{"lam": 0.1}`` (csra), ``{"num_heads": 4, "lam": 0.1}`` (csra_mh).
        num_classes: number of outputs; 0 means ``len(class_names)``.
        class_names: output names, in order.
        label_space: ``LabelSpace.to_dict()`` of the training label space, or None.
        drop_path_rate: stochastic depth of the backbone (0.2).
        pretrained: weight source, see :func:`cxrlt_core.models.backbones.pretrained_source`.
        input_size: square input side in pixels (512).
        in_chans: input channels (3: the gray radiograph replicated).
        mean, std: per-channel normalisation (ImageNet).
        channels_last: keep the model in channels-last memory format (faster convs with AMP on GPU).
        pooling: ``"pooled"``: the backbone pools as timm's ``num_classes=0`` model does (ConvNeXt: LN(GAP(x))),
            the winning MLP model's path, the default of the ``mlp`` head; ``"feature_map"``: the head reads the
            unpooled map (CSRA and the other map heads; for ``mlp`` it averages the per-position-normed map,
            GAP(LN(x)), as cxrlt checkpoints made before this option did). ``None`` picks by head.
        head_init: a name in :data:`~cxrlt_core.models.heads.HEAD_INITS` for a freshly built head.
        output_stride: the backbone's total stride (32; 16 or 8 dilate the last stages for finer maps, timm).
    """

    backbone: str = "convnextv2_atto"
    head: str = "mlp"
    head_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_classes: int = 0
    class_names: list[str] = dataclasses.field(default_factory=list)
    label_space: dict[str, Any] | None = None
    drop_path_rate: float = 0.2
    pretrained: str | None = None
    input_size: int = 512
    in_chans: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels_last: bool = False
    pooling: str | None = None
    head_init: str = "default"
    output_stride: int = 32

    def __post_init__(self) -> None:
        self.head_params = dict(self.head_params or {})
        self.class_names = [str(c) for c in (self.class_names or [])]
        self.num_classes = int(self.num_classes or len(self.class_names))
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if self.num_classes < 1:
            raise InputError("model config needs num_classes >= 1 or a list of class_names")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise InputError(
                f"model config: num_classes is {self.num_classes} but {len(self.class_names)} class_names are given"
            )
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans or min(self.std) <= 0:
            raise InputError(f"model config: mean and std need {self.in_chans} values each (std > 0)")
        if not 0.0 <= float(self.drop_path_rate) < 1.0:
            raise InputError(f"model config: drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.pooling is None:
            self.pooling = "pooled" if self.head == "mlp" else "feature_map"
        if self.pooling not in POOLINGS:
            raise InputError(f"model config: unknown pooling {self.pooling!r}; choose one of: {', '.join(POOLINGS)}")
        if self.pooling == "pooled" and self.head != "mlp":
            raise InputError(f"model config: head {self.head!r} reads a feature map; use pooling feature_map")
        if self.head_init not in HEAD_INITS:
            raise InputError(f"model config: unknown head_init {self.head_init!r}; choose one of: {HEAD_INITS}")
        if int(self.output_stride) not in (8, 16, 32):
            raise InputError(f"model config: output_stride must be 8, 16 or 32, got {self.output_stride}")
        if int(self.input_size) < 32:
            raise InputError(f"model config: input_size must be at least 32 pixels, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        out = dataclasses.asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an ``InputError`` naming them."""
        if not isinstance(data, Mapping):
            raise InputError(f"model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


class CxrClassifier(nn.Module):
    """Backbone → features → head → logits (B, K).

    With ``cfg.pooling == "feature_map"`` the head reads the unpooled map (B, C_feat, h, w); with ``"pooled"`` the
    backbone pools as timm does (``backbone(x)`` is (B, C_feat)) and the head classifies that vector.

    Attributes:
        cfg: the :class:`ModelConfig` it was built from.
        backbone: the timm model (``num_classes=0, global_pool=""``).
        head: the registered head.
        pretrained_report: what loading pretrained weights did, or None.
    """

    def __init__(self, cfg: ModelConfig, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.head = head
        self.pretrained_report: PretrainedReport | None = None

    @property
    def pooled(self) -> bool:
        return self.cfg.pooling == "pooled"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled feature map (B, C_feat, H/32, W/32) (with ``pooled``: before timm's pooling and head norm)."""
        feat = self.backbone.forward_features(x) if self.pooled else self.backbone(x)
        if not self.pooled:
            feat = to_feature_map(feat, self.backbone, x.shape[-2:])  # ViT tokens, Swin's NHWC → (B, C, h, w)
        if feat.ndim != 4:
            raise InputError(
                f"backbone {self.cfg.backbone!r} returns shape {tuple(feat.shape)}, not a (B, C, h, w) feature map; "
                "use model pooling 'feature_map' (token backbones) or a convolutional timm backbone"
            )
        return feat

    def pool(self, feat: torch.Tensor) -> torch.Tensor:
        """``pooled`` models: timm's own pooling of a feature map, (B, C, h, w) → (B, C) (ConvNeXt: LN(GAP))."""
        return self.backbone.forward_head(feat, pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooled:
            return self.head.classify(self.backbone(x))
        return self.head(self.forward_features(x))

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K) and per-class spatial maps (B, K, h, w); see the head's ``map_kind``.

        ``pooled`` models: each position's feature vector goes through the backbone's pooling path as a 1 x 1 map
        (for ConvNeXt: its LayerNorm) and then the head in eval form (``MLPHead.position_scores``).
        """
        if not self.pooled:
            return self.head.forward_with_maps(self.forward_features(x))
        feat = self.forward_features(x)
        logits = self.head.classify(self.pool(feat))
        b, c, h, w = feat.shape
        cells = self.pool(feat.permute(0, 2, 3, 1).reshape(b * h * w, c, 1, 1))
        maps = self.head.position_scores(cells).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return logits, maps

    # -- parameters ----------------------------------------------------------------------------------------
    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def param_groups(
        self,
        backbone_lr: float,
        head_lr: float,
        backbone_wd: float,
        head_wd: float,
        trainable_only: bool = False,
        decay_norm_and_bias: bool = False,
        layer_decay: float | None = None,
    ) -> list[dict[str, Any]]:
        """AdamW parameter groups: backbone and head, each split into decayed and not decayed.

        As timm's ``param_groups_weight_decay``: biases, 1-D parameters (norm scales and shifts, GRN) and the names
        in ``backbone.no_weight_decay()`` get no weight decay. ``decay_norm_and_bias=True`` decays everything (what
        the winning code's plain ``AdamW(weight_decay=...)`` did). Each group has a ``"name"``
        (``backbone``, ``backbone_no_decay``, ``head``, ``head_no_decay``); empty groups are left out.

        Args:
            trainable_only: leave out parameters with ``requires_grad=False`` (e.g. a frozen backbone).
            layer_decay: layer-wise learning-rate decay of the backbone (BEiT / ViT fine-tuning; timm's
                ``param_groups_layer_decay``): the layer at depth i of L gets ``backbone_lr × decay^(L − i)``, the
                embedding the smallest rate, the last block ``backbone_lr``. Backbone groups are then named
                ``backbone_layer<k>``.
        """
        skip = set(getattr(self.backbone, "no_weight_decay", lambda: ())() or ())
        groups: list[dict[str, Any]] = []
        parts = [("backbone", self.backbone, backbone_lr, backbone_wd), ("head", self.head, head_lr, head_wd)]
        if layer_decay is not None:
            groups += self._layer_decay_groups(backbone_lr, backbone_wd, layer_decay, skip, decay_norm_and_bias)
            parts = parts[1:]
        for part, module, lr, wd in parts:
            decay, no_decay = [], []
            for name, param in module.named_parameters():
                if trainable_only and not param.requires_grad:
                    continue
                plain = decay_norm_and_bias or not (
                    param.ndim <= 1 or name.endswith(".bias") or (part == "backbone" and name in skip)
                )
                (decay if plain else no_decay).append(param)
            if decay:
                groups.append({"name": part, "params": decay, "lr": lr, "weight_decay": wd})
            if no_decay:
                groups.append({"name": f"{part}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
        return groups

    def _layer_decay_groups(
        self, lr: float, wd: float, layer_decay: float, skip: set[str], decay_norm_and_bias: bool
    ) -> list[dict[str, Any]]:
        raw = param_groups_layer_decay(
            self.backbone,
            weight_decay=wd,
            no_weight_decay_list=skip,
            weight_decay_exclude_1d=not decay_norm_and_bias,
            layer_decay=layer_decay,
        )  # skips parameters without requires_grad
        return [
            {
                "name": f"backbone_layer{k}",
                "params": g["params"],
                "lr": lr * g["lr_scale"],
                "weight_decay": g["weight_decay"],
            }
            for k, g in enumerate(raw)
            if g["params"]
        ]

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Stop (or restart) gradients into the backbone; phase 1 of the method trains the head only.

        Only ``requires_grad`` changes: dropout, drop-path and normalisation layers keep following ``train()`` /
        ``eval()``, as in the winning code.
        """
        for param in self.backbone.parameters():
            param.requires_grad_(not frozen)

    def feature_layer(self) -> nn.Module:
        """The backbone's last stage, the usual Grad-CAM target layer."""
        return last_stage(self.backbone)

    def cam_reshape_transform(self, input_hw: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        """Grad-CAM's ``reshape_transform`` for :meth:`feature_layer`: token and channels-last outputs → (B, C, h, w)
        (:mod:`cxrlt_core.models.tokens`); the identity for convolutional feature maps."""
        return cam_reshape_transform(self.backbone, input_hw)


def build_model(cfg: ModelConfig, transfer: str = "auto") -> CxrClassifier:
    """Build the classifier described by ``cfg``, with pretrained weights if ``cfg.pretrained`` is set.

    ``transfer`` (a name in :data:`TRANSFERS`) says what happens to the head of a pretrained file that holds a whole
    classifier (:func:`load_pretrained_file`).

    Raises:
        InputError: unknown backbone or head, bad head parameters, weights missing or not fitting.
    """
    kind = pretrained_source(cfg.pretrained)
    backbone, report = create_backbone(
        cfg.backbone,
        float(cfg.drop_path_rate),
        int(cfg.in_chans),
        cfg.pretrained,
        pooled=cfg.pooling == "pooled",
        output_stride=int(cfg.output_stride),
        input_size=int(cfg.input_size),
    )
    head = init_head(build_head(cfg.head, feature_channels(backbone), cfg.num_classes, cfg.head_params), cfg.head_init)
    model = CxrClassifier(cfg, backbone, head)
    if kind == "file":
        report = load_pretrained_file(model, Path(str(cfg.pretrained)).expanduser(), transfer)
    model.pretrained_report = report
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


# ------------------------------------------------------------------------------------------- pretrained files
def _winner_head_key(key: str, head: str) -> str | None:
    """Map a top-level key of the CXR-LT 2026 winners' released models to our head's key (else None)."""
    if head == "csra" and key.startswith("bn."):
        return key
    if head == "mlp" and key.startswith("classifier."):
        return key
    return None


TRANSFERS = ("auto", "keep_hidden", "reinit_head")
"""What happens to the head of a pretrained classifier (Stage 1 → Stage 2):

``auto``: kept whole when it is the same head with the same classes, else re-initialised;
``keep_hidden``: every head tensor that fits is kept except the class-specific output layers (the head's
``output_layers``: the MLP's last Linear, CSRA's classifier and attention conv), which keep their fresh
initialisation — the winning MLP trainer's surgery;
``reinit_head``: the whole head is re-initialised; only the backbone is transferred."""


def load_pretrained_file(model: CxrClassifier, path: Path, transfer: str = "auto") -> PretrainedReport:
    """Load a weights file into ``model``: a cxrlt checkpoint, another whole classifier, or a bare backbone.

    - cxrlt checkpoint (``.safetensors`` with a ``.json`` sidecar): the backbone is loaded; the head as ``transfer``
      says (:data:`TRANSFERS`; ``auto``: kept when its type, parameters and classes are the same, otherwise its
      keys are dropped and the head keeps its fresh initialisation).
    - a classifier state dict with ``backbone.*`` keys (the winners' ``model_state_dict`` layouts: MLP model
      ``classifier.0..6``, CSRA model ``bn.*`` + ``head.classifier`` / ``head.conv_att``): same; with ``auto``
      the head is kept only if every head tensor is present with the right shape.
    - anything else is a timm backbone state dict (:func:`load_backbone_state`).
    """
    if transfer not in TRANSFERS:
        raise InputError(f"unknown transfer {transfer!r}; choose one of: {', '.join(TRANSFERS)}")

    state = read_state_dict(path)
    source = str(path)
    source_cfg: ModelConfig | None = None
    if path.suffix == ".safetensors" and sidecar_path(path).is_file():
        source_cfg = ModelConfig.from_dict(read_sidecar(path)["model"])
    elif not any(k.startswith("backbone.") for k in state):
        return load_backbone_state(model.backbone, state, source)

    backbone_state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    report = load_backbone_state(model.backbone, backbone_state, source)
    report.missing = [f"backbone.{k}" for k in report.missing]
    report.dropped = [f"backbone.{k}" for k in report.dropped]

    head_state: dict[str, torch.Tensor] = {}
    other: list[str] = []
    for key, value in state.items():
        if key.startswith("head."):
            head_state[key[len("head.") :]] = value
        elif not key.startswith("backbone."):
            mapped = _winner_head_key(key, model.cfg.head)
            if mapped is None:
                other.append(key)
            else:
                head_state[mapped] = value
    target = model.head.state_dict()
    if transfer == "keep_hidden":
        return _keep_hidden(model, head_state, other, report)
    reason = "transfer policy reinit_head" if transfer == "reinit_head" else ""
    reason = reason or _head_mismatch(model.cfg, source_cfg, head_state, target)
    if reason:
        report.dropped += [f"head.{k}" for k in head_state] + other
        report.missing += [f"head.{k}" for k in target]
        report.note = f"head re-initialised: {reason}"
    else:
        model.head.load_state_dict(head_state)
        report.loaded += len(head_state)
        report.dropped += other
        report.note = "head loaded"
    (_log.warning if report.missing else _log.info)(report.summary())
    return report


def _keep_hidden(
    model: CxrClassifier, head_state: Mapping[str, torch.Tensor], other: list[str], report: PretrainedReport
) -> PretrainedReport:
    """``keep_hidden``: load the source head's tensors that fit, except the head's class-specific output layers."""
    outputs = tuple(f"{name}." for name in getattr(model.head, "output_layers", ()))
    target = model.head.state_dict()
    kept = {
        k: v
        for k, v in head_state.items()
        if k in target and not k.startswith(outputs) and tuple(v.shape) == tuple(target[k].shape)
    }
    hidden = [k for k in target if not k.startswith(outputs)]
    if hidden and not kept:
        raise InputError(
            f"transfer keep_hidden: the source head has none of this {model.cfg.head!r} head's hidden layers "
            f"(expected keys like {_keys(hidden)}); use transfer reinit_head"
        )
    missing_hidden = [k for k in hidden if k not in kept]
    if missing_hidden:
        raise InputError(f"transfer keep_hidden: the source head lacks or misfits {_keys(missing_hidden)}")
    model.head.load_state_dict(kept, strict=False)
    report.loaded += len(kept)
    report.dropped += [f"head.{k}" for k in head_state if k not in kept] + other
    report.missing += [f"head.{k}" for k in target if k not in kept]
    report.note = f"head hidden layers kept; re-initialised {', '.join(getattr(model.head, 'output_layers', ()))}"
    _log.info(report.summary())
    return report


def _head_mismatch(
    cfg: ModelConfig,
    source_cfg: ModelConfig | None,
    head_state: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
) -> str:
    """Why the source head cannot be reused ('' when it can)."""
    if source_cfg is not None:
        if source_cfg.head != cfg.head:
            return f"source head is {source_cfg.head!r}, this model's is {cfg.head!r}"
        if source_cfg.head_params != cfg.head_params:
            return f"head parameters differ ({source_cfg.head_params} vs {cfg.head_params})"
        if source_cfg.num_classes != cfg.num_classes:
            return f"source has {source_cfg.num_classes} classes, this model {cfg.num_classes}"
        if source_cfg.class_names and cfg.class_names and source_cfg.class_names != cfg.class_names:
            return "class names differ"
    if not head_state:
        return "the source has no head weights"
    missing = [k for k in target if k not in head_state]
    extra = [k for k in head_state if k not in target]
    shape = [k for k in target if k in head_state and tuple(head_state[k].shape) != tuple(target[k].shape)]
    if missing or extra:
        return f"head tensors differ (missing {_keys(missing)}, unexpected {_keys(extra)})"
    if shape:
        return f"head tensor shapes differ ({_keys(shape)})"
    return ""


def _keys(keys: Sequence[str]) -> str:
    return "[" + ", ".join(list(keys)[:3]) + (", ...]" if len(keys) > 3 else "]")
