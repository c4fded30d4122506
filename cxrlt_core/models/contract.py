"""The typed input contract of a Task 1 model: how an image must be fed to it and what its outputs mean.

One :class:`InputContract` holds everything a reader needs to feed a checkpoint exactly as it was trained:

    image size, interpolation, rounding, percentile clipping (the :class:`~cxrlt_core.data.images.Preprocess`),
    channels, mean / std, class names, label space, and the TTA view geometry of its fidelity profile.

It is written once, as the ``input`` section of the checkpoint sidecar (:mod:`cxrlt_core.models.checkpoint`), and
attached to the loaded model as ``model.input_contract`` (as timm attaches ``pretrained_cfg`` and open_clip
``preprocess_cfg``); inference, the Inspect page, Grad-CAM and export read it from there. Older sidecars (separate
``preprocess`` / ``normalize`` sections and the model config's ``input_size`` / ``mean`` / ``std``) are read into
the same contract. Nothing is guessed: a sidecar without mean and std is an error, never ImageNet by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from cxrlt_core.data.images import Preprocess, apply_preprocess, to_model_tensor
from cxrlt_core.errors import InputError

__all__ = ["CONTRACT_VERSION", "TTA_GEOMETRIES", "InputContract", "attach_contract", "contract_of"]

CONTRACT_VERSION = 1
#: How TTA views are made (:mod:`cxrlt_core.inference.tta`): ``cxrlt`` pads with black and crops ``round(H / f)``
#: for zoom-in; ``winning_code`` pads by reflection and zooms in by upsampling to ``int(H · f)``, then centre crop.
TTA_GEOMETRIES = ("cxrlt", "winning_code")

_PREPROCESS_KEYS = tuple(f.name for f in dataclasses.fields(Preprocess))


@dataclasses.dataclass(frozen=True)
class InputContract:
    """How to feed a model and read its outputs.

    Attributes:
        preprocess: decoding to the gray uint8 image: size, interpolation, rounding, clipping, intensity mode.
        mean, std: per-channel normalisation, ``(x / 255 − mean) / std``.
        channels: input channels (the gray image replicated).
        class_names: output names, in order.
        label_space: ``LabelSpace.to_dict()`` of the outputs, or None.
        tta_geometry: a name in :data:`TTA_GEOMETRIES`.
    """

    preprocess: Preprocess
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3
    class_names: tuple[str, ...] = ()
    label_space: Mapping[str, Any] | None = None
    tta_geometry: str = "cxrlt"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "label_space", dict(self.label_space) if self.label_space else None)
        if int(self.channels) < 1 or len(self.mean) != self.channels or len(self.std) != self.channels:
            raise InputError(f"input contract: mean and std need {self.channels} values each")
        if min(self.std) <= 0:
            raise InputError(f"input contract: std must be positive, got {self.std}")
        if self.tta_geometry not in TTA_GEOMETRIES:
            choices = ", ".join(TTA_GEOMETRIES)
            raise InputError(f"input contract: unknown tta_geometry {self.tta_geometry!r}; choose one of: {choices}")

    # ------------------------------------------------------------------------------------------------- properties
    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.preprocess.height, self.preprocess.width

    @property
    def normal(self) -> str | None:
        """The label space's Normal / No Finding class, if it names one."""
        return (self.label_space or {}).get("normal")

    # ---------------------------------------------------------------------------------------------- round trips
    def to_dict(self) -> dict[str, Any]:
        """The sidecar's ``input`` section: plain JSON types, one flat mapping."""
        return {
            "version": CONTRACT_VERSION,
            **self.preprocess.to_dict(),
            "channels": int(self.channels),
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": list(self.class_names),
            "label_space": dict(self.label_space) if self.label_space else None,
            "tta_geometry": self.tta_geometry,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "input contract") -> InputContract:
        """Inverse of :meth:`to_dict`; missing mean / std or unknown keys are an ``InputError`` naming ``source``."""
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: the input section must be a mapping")
        version = data.get("version", CONTRACT_VERSION)
        if not isinstance(version, int) or version > CONTRACT_VERSION:
            raise InputError(f"{source}: input contract version {version}; this cxrlt reads up to {CONTRACT_VERSION}")
        own = {"version", "channels", "mean", "std", "class_names", "label_space", "tta_geometry"}
        unknown = sorted(set(data) - own - set(_PREPROCESS_KEYS))
        if unknown:
            raise InputError(f"{source}: unknown input contract keys {unknown}")
        missing = [key for key in ("mean", "std", "image_size") if data.get(key) is None]
        if missing:
            raise InputError(f"{source}: the input contract has no {', '.join(missing)}")
        try:
            return cls(
                preprocess=Preprocess.from_dict({k: data[k] for k in _PREPROCESS_KEYS if k in data}),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
                channels=int(data.get("channels", len(data["mean"]))),
                class_names=tuple(data.get("class_names") or ()),
                label_space=data.get("label_space"),
                tta_geometry=str(data.get("tta_geometry", "cxrlt")),
            )
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None

    @classmethod
    def from_sidecar(cls, info: Mapping[str, Any], source: str = "checkpoint sidecar") -> InputContract:
        """The contract of a checkpoint sidecar: its ``input`` section, or the older separate sections.

        Older sidecars keep the preprocessing in ``preprocess`` (or only ``model.input_size``), mean / std in
        ``model`` (and a copy in ``normalize``), classes in ``model.class_names`` and the label space in
        ``model.label_space``; they predate fidelity profiles, so their TTA geometry is ``cxrlt``.
        """
        if isinstance(info.get("input"), Mapping):
            return cls.from_dict(info["input"], source)
        model = info.get("model") if isinstance(info.get("model"), Mapping) else {}
        norm = info.get("normalize") if isinstance(info.get("normalize"), Mapping) else {}
        preprocess = info.get("preprocess")
        if not isinstance(preprocess, Mapping):
            size = model.get("input_size")
            if size is None:
                raise InputError(f"{source}: no input section, preprocess or model.input_size")
            preprocess = {"image_size": size}
        mean = model.get("mean") or norm.get("mean")
        std = model.get("std") or norm.get("std")
        if not mean or not std:
            raise InputError(f"{source}: the sidecar does not say which mean and std the model was trained with")
        data = {
            **preprocess,
            "mean": mean,
            "std": std,
            "channels": model.get("in_chans", norm.get("in_chans", len(mean))),
            "class_names": model.get("class_names") or info.get("classes") or (),
            "label_space": model.get("label_space") or info.get("label_space"),
        }
        return cls.from_dict(data, source)

    def replace(self, **changes: Any) -> InputContract:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------------- feeding
    def prepare(self, image: np.ndarray) -> np.ndarray:
        """A decoded radiograph (any dtype) → the gray uint8 image the model sees (``apply_preprocess``)."""
        return apply_preprocess(image, self.preprocess)

    def to_tensor(self, gray: np.ndarray) -> torch.Tensor:
        """Gray uint8 (H, W) or (N, H, W) → normalised float32 (C, H, W) or (N, C, H, W)."""
        return torch.from_numpy(to_model_tensor(gray, self.mean, self.std))

    def normalise(self, gray: torch.Tensor) -> torch.Tensor:
        """A float tensor of gray levels (N, 1, H, W) in [0, 255] → (N, C, H, W), ``(x / 255 − mean) / std``.

        Computed as :func:`~cxrlt_core.data.images.to_model_tensor` does (float32 ``x · 1/(255·std) − mean/std``),
        on ``gray``'s device.
        """
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        scale = torch.tensor((1.0 / (255.0 * std)).astype(np.float32), device=gray.device).view(1, -1, 1, 1)
        shift = torch.tensor((mean / std).astype(np.float32), device=gray.device).view(1, -1, 1, 1)
        return gray * scale - shift


def attach_contract(model: torch.nn.Module, contract: InputContract) -> torch.nn.Module:
    """Attach ``contract`` to ``model`` as ``model.input_contract`` (returns the model)."""
    model.input_contract = contract  # type: ignore[assignment]
    return model


def contract_of(model: torch.nn.Module, source: str = "model") -> InputContract:
    """The contract attached to ``model`` (or to the model inside a DDP / EMA / compile wrapper).

    Raises:
        InputError: none is attached; a model loaded with :func:`~cxrlt_core.models.checkpoint.load_checkpoint`
            always has one.
    """
    for candidate in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        contract = getattr(candidate, "input_contract", None)
        if isinstance(contract, InputContract):
            return contract
    raise InputError(f"{source} carries no input contract; load it with load_checkpoint")


def contract_for_classes(
    preprocess: Preprocess,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str],
    label_space: Mapping[str, Any] | None = None,
    tta_geometry: str = "cxrlt",
) -> InputContract:
    """Convenience constructor used by training: channels follow ``mean``."""
    return InputContract(preprocess, tuple(mean), tuple(std), len(mean), tuple(class_names), label_space, tta_geometry)
