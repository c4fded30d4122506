"""Task 1 models: timm backbones, registered heads (MLP, CSRA variants), checkpoints that rebuild themselves."""

from cxrlt_core.models.backbones import PretrainedReport, pretrained_source, read_state_dict
from cxrlt_core.models.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_training_state,
    read_sidecar,
    restore_rng_state,
    save_checkpoint,
    save_training_state,
    sidecar_path,
    training_state_path,
)
from cxrlt_core.models.classifier import IMAGENET_MEAN, IMAGENET_STD, CxrClassifier, ModelConfig, build_model
from cxrlt_core.models.heads import HEADS, build_head

__all__ = [
    "HEADS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CxrClassifier",
    "ModelConfig",
    "PretrainedReport",
    "build_head",
    "build_model",
    "capture_rng_state",
    "load_checkpoint",
    "load_training_state",
    "pretrained_source",
    "read_sidecar",
    "read_state_dict",
    "restore_rng_state",
    "save_checkpoint",
    "save_training_state",
    "sidecar_path",
    "training_state_path",
]
