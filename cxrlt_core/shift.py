"""Input-shift check: is a radiograph unlike the images the model was trained on?

The model's own view of an image is its pooled backbone feature ``f`` (global average of the last stage, the
vector the heads read). On the training images we fit a mean ``mu`` and a shrunk covariance ``S`` (Ledoit & Wolf,
"A well-conditioned estimator for large-dimensional covariance matrices", J. Multivar. Anal. 2004; scikit-learn's
``LedoitWolf``), and score a new image by its Mahalanobis distance

    d(f) = sqrt((f - mu)^T S^-1 (f - mu))

(feature-space Mahalanobis OOD detection: Lee et al., NeurIPS 2018, here on the pooled features of one layer). The
warning threshold is the ``quantile`` (default 0.999) of *cross-fitted* training distances times ``margin``
(default 1.5): each fifth of the training images is scored by a fit on the other four fifths, so the distances are
those of unseen in-distribution images (in-sample distances would be too small), and the margin keeps in-distribution
test images below it. An image with ``d`` above the threshold is reported as unlike the training data.

Stored beside the checkpoint ``<stem>.safetensors`` as ``<stem>.shift.safetensors``: tensors ``mean`` (C,) and
``precision`` (C, C) (= S^-1), and in the safetensors metadata the threshold, quantile, margin, the number of images,
summary distances and the ``checkpoint_id`` of the weights it was fitted for (no pickle anywhere).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from cxrlt_core import runs
from cxrlt_core.atomic import atomic_path
from cxrlt_core.config import resolve_path
from cxrlt_core.data.images import read_radiograph
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import CxrltError, InputError
from cxrlt_core.explain import prepare_radiograph
from cxrlt_core.models.checkpoint import load_checkpoint

FORMAT = "cxrlt-shift"
QUANTILE = 0.999
MARGIN = 1.5
FOLDS = 5
MAX_IMAGES = 600
FEATURE = "global average of the last backbone stage"


def shift_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``<stem>.shift.safetensors`` beside checkpoint ``<stem>.safetensors`` (or its ``.json`` sidecar)."""
    path = Path(checkpoint)
    return path.with_name(path.name.split(".")[0] + ".shift.safetensors")


@torch.no_grad()
def pooled_features(model: torch.nn.Module, batch: torch.Tensor) -> np.ndarray:
    """(B, C) float64 global-average-pooled backbone features of ``batch`` (B, 3, H, W)."""
    model.eval()
    feat = model.forward_features(batch)
    return feat.float().mean(dim=(2, 3)).cpu().numpy().astype(np.float64)


def _fit_gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    fit = LedoitWolf().fit(features)
    return fit.location_, fit.precision_


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """sqrt((f - mu)^T P (f - mu)) for every row of ``features`` (N, C)."""
    centred = np.atleast_2d(features) - mean
    squared = np.einsum("ij,jk,ik->i", centred, precision, centred)
    return np.sqrt(np.maximum(squared, 0.0))


def cross_fitted_distances(features: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Distance of every row to a fit on the other folds (rows assigned to ``folds`` folds at random)."""
    n = len(features)
    if n < 2 * folds:
        raise InputError(f"the shift check needs at least {2 * folds} training images, got {n}")
    fold = np.random.default_rng(seed).permutation(n) % folds
    out = np.empty(n)
    for k in range(folds):
        mean, precision = _fit_gaussian(features[fold != k])
        out[fold == k] = mahalanobis(features[fold == k], mean, precision)
    return out


@dataclasses.dataclass
class ShiftModel:
    """A fitted input-shift check (see the module docstring)."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    info: dict[str, Any]

    def distance(self, features: np.ndarray) -> np.ndarray:
        return mahalanobis(features, self.mean, self.precision)

    def check(self, features: np.ndarray) -> list[ShiftResult]:
        """One verdict per row of ``features``."""
        return [ShiftResult(float(d), self.threshold) for d in self.distance(features)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        meta = {"format": FORMAT, "threshold": repr(float(self.threshold)), "info": json.dumps(self.info)}
        tensors = {"mean": self.mean.astype(np.float64), "precision": self.precision.astype(np.float64)}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShiftModel:
        try:
            with safe_open(str(path), framework="numpy") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise InputError(f"{path}: not a cxrlt shift file (format {meta.get('format')!r})")
                mean, precision = handle.get_tensor("mean"), handle.get_tensor("precision")
            return cls(mean, precision, float(meta["threshold"]), json.loads(meta.get("info", "{}")))
        except (OSError, ValueError, KeyError, json.JSONDecodeError, SafetensorError) as exc:
            raise InputError(f"{path}: cannot read the shift file ({exc})") from None


@dataclasses.dataclass(frozen=True)
class ShiftResult:
    """The distance of one image and whether it is beyond the threshold."""

    distance: float
    threshold: float

    @property
    def shifted(self) -> bool:
        return self.distance > self.threshold

    @property
    def ratio(self) -> float:
        return self.distance / self.threshold if self.threshold > 0 else float("inf")


def fit_shift(
    features: np.ndarray, quantile: float = QUANTILE, margin: float = MARGIN, seed: int = 0, **info: Any
) -> ShiftModel:
    """Fit the check on training ``features`` (N, C): mean and Ledoit-Wolf precision on all rows, threshold
    ``margin * quantile(cross-fitted distances)``."""
    if not 0.5 <= quantile < 1.0 or margin < 1.0:
        raise InputError(f"quantile must be in [0.5, 1) and margin >= 1, got {quantile}, {margin}")
    features = np.asarray(features, dtype=np.float64)
    held_out = cross_fitted_distances(features, seed=seed)
    mean, precision = _fit_gaussian(features)
    threshold = float(margin * np.quantile(held_out, quantile))
    summary = {
        "feature": FEATURE,
        "n_images": len(features),
        "dim": int(features.shape[1]),
        "quantile": quantile,
        "margin": margin,
        "folds": FOLDS,
        "cross_fitted_median": float(np.median(held_out)),
        "cross_fitted_max": float(held_out.max()),
        **info,
    }
    return ShiftModel(mean, precision, threshold, summary)


def pick_rows(n: int, limit: int = MAX_IMAGES, seed: int = 0) -> np.ndarray:
    """At most ``limit`` of ``n`` rows, a seeded random sample in increasing order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def features_of_images(
    model: torch.nn.Module,
    sidecar: dict,
    paths: Sequence[str | os.PathLike[str]],
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Pooled features of image files, each read and preprocessed exactly as the Inspect page and ``predict`` do."""
    rows = []
    for start in range(0, len(paths), batch_size):
        chunk = [prepare_radiograph(read_radiograph(p), sidecar)[1] for p in paths[start : start + batch_size]]
        rows.append(pooled_features(model, torch.cat(chunk)))
        if progress is not None:
            progress(min(start + batch_size, len(paths)), len(paths))
    return np.concatenate(rows)


def fit_for_checkpoint(
    checkpoint: str | os.PathLike[str],
    csv: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    limit: int = MAX_IMAGES,
    quantile: float = QUANTILE,
    margin: float = MARGIN,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fit the check of ``checkpoint`` on (at most ``limit``) images of the training ``csv`` and save it beside."""
    model, sidecar = load_checkpoint(checkpoint)
    manifest = read_manifest(csv, image_root=image_root, require_labels=False)
    rows = pick_rows(len(manifest), limit)
    paths = [Path(image_root) / str(manifest.ids[i]) for i in rows]
    features = features_of_images(model, sidecar, paths, progress=progress)
    fitted = fit_shift(
        features, quantile, margin, checkpoint_id=sidecar.get("checkpoint_id"), training_csv=Path(csv).name
    )
    return fitted.save(shift_path(checkpoint))


def load_for_checkpoint(checkpoint: str | os.PathLike[str], sidecar: dict | None = None) -> ShiftModel | None:
    """The check stored beside ``checkpoint``, or ``None`` when there is none or it was fitted for other weights."""
    path = shift_path(checkpoint)
    if not path.is_file():
        return None
    fitted = ShiftModel.load(path)
    wanted = (sidecar or {}).get("checkpoint_id")
    if wanted and fitted.info.get("checkpoint_id") not in (None, wanted):
        return None
    return fitted


def fit_after_training(run_dir: str | os.PathLike[str], recipe: Any, workspace: Any, log: Any) -> Path | None:
    """Fit the check of a finished run's best checkpoint on its training CSV (called by the training loop).

    A failure is logged and leaves the run without a check (the Inspect page then says so); it never fails the run.
    """
    checkpoint = runs.checkpoint_path(run_dir, "best")
    if not checkpoint.exists():
        return None
    try:
        path = fit_for_checkpoint(
            checkpoint,
            resolve_path(recipe.data.train_csv, workspace),
            resolve_path(recipe.data.image_root, workspace),
        )
    except (CxrltError, OSError, ValueError) as exc:
        log.warning("input-shift check not fitted: %s", exc)
        return None
    fitted = ShiftModel.load(path)
    log.info(
        "input-shift check fitted on %d training images: threshold %.2f", fitted.info["n_images"], fitted.threshold
    )
    return path
