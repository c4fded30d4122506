"""Train-time augmentation of the CXR-LT 2026 Task 1 method, with albumentations, on uint8 grayscale images.

The winning code's pipeline (docs/method.md), ported from albumentations 1.x to 2.0 names:
horizontal flip p 0.5; ``ShiftScaleRotate(shift 0.03, scale 0.05, rotate 7°)`` p 0.4 → ``Affine``;
CLAHE (clip 2, 8×8 tiles) p 0.2; brightness/contrast ±0.08 p 0.2; Gaussian noise (variance 1–5 grey levels²,
i.e. σ 1–√5 of 255) p 0.15; coarse dropout of 6 holes of 24 px at 512 px (scaled with the image size) p 0.15.
It runs after resizing, on the (H, W) uint8 image, before normalisation.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import cv2
import numpy as np

REFERENCE_SIZE = 512  # the image size the winning code's pixel sizes (dropout holes) were chosen for


@dataclasses.dataclass
class AugmentConfig:
    """Probabilities and magnitudes of the train augmentation (defaults: the winning code)."""

    enabled: bool = True
    hflip_p: float = 0.5
    affine_p: float = 0.4
    shift: float = 0.03
    scale: float = 0.05
    rotate_deg: float = 7.0
    clahe_p: float = 0.2
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    brightness_contrast_p: float = 0.2
    brightness_contrast: float = 0.08
    noise_p: float = 0.15
    noise_var: tuple[float, float] = (1.0, 5.0)
    dropout_p: float = 0.15
    dropout_holes: int = 6
    dropout_size: int = 24


def _import_albumentations() -> Any:
    # albumentations otherwise asks PyPI for a newer version at import time: no network calls from a training job
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def build_train_augment(cfg: AugmentConfig, image_size: int, seed: int | None = None) -> Any | None:
    """The albumentations ``Compose`` for training images of ``image_size`` px, or ``None`` when disabled."""
    if not cfg.enabled:
        return None
    A = _import_albumentations()

    hole = max(1, round(cfg.dropout_size * image_size / REFERENCE_SIZE))
    sigma = tuple(math.sqrt(v) / 255.0 for v in cfg.noise_var)
    transforms = [
        A.HorizontalFlip(p=cfg.hflip_p),
        A.Affine(
            translate_percent=(-cfg.shift, cfg.shift),
            scale=(1.0 - cfg.scale, 1.0 + cfg.scale),
            rotate=(-cfg.rotate_deg, cfg.rotate_deg),
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            p=cfg.affine_p,
        ),
        A.CLAHE(clip_limit=cfg.clahe_clip, tile_grid_size=(cfg.clahe_tiles, cfg.clahe_tiles), p=cfg.clahe_p),
        A.RandomBrightnessContrast(
            brightness_limit=cfg.brightness_contrast,
            contrast_limit=cfg.brightness_contrast,
            p=cfg.brightness_contrast_p,
        ),
        A.GaussNoise(std_range=sigma, p=cfg.noise_p),
        A.CoarseDropout(
            num_holes_range=(cfg.dropout_holes, cfg.dropout_holes),
            hole_height_range=(hole, hole),
            hole_width_range=(hole, hole),
            fill=0,
            p=cfg.dropout_p,
        ),
    ]
    return A.Compose(transforms, seed=seed)


def apply_augment(augment: Any | None, image: np.ndarray) -> np.ndarray:
    """Apply ``augment`` (or nothing) to a (H, W) uint8 image; the result has the same shape and dtype."""
    if augment is None:
        return image
    return augment(image=image)["image"]
