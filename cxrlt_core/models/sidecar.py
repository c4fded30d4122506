"""The checkpoint sidecar file: where it lies beside the weights and how it is read and checked.

A cxrlt checkpoint is ``<stem>.safetensors`` (weights) plus ``<stem>.json`` (this sidecar: the model's config and
how to feed it). This module knows the file format only, not the model, so the classifier (loading a checkpoint's
backbone as pretrained weights) and :mod:`cxrlt_core.models.checkpoint` (saving and loading whole models) both
build on it without importing each other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cxrlt_core.errors import InputError
from cxrlt_core.models.contract import InputContract

FORMAT = "cxrlt-checkpoint"
FORMAT_VERSION = 2


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<stem>.json`` beside ``<stem>.safetensors`` (accepts either path)."""
    return Path(path).with_suffix(".json")


def weights_path(path: str | os.PathLike[str]) -> Path:
    """``<stem>.safetensors`` beside ``<stem>.json`` (accepts either path)."""
    return Path(path).with_suffix(".safetensors")


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar of checkpoint ``path`` (``.safetensors`` or ``.json``).

    Raises:
        InputError: missing, not JSON, or not a cxrlt checkpoint sidecar (the message names the file).
    """
    side = sidecar_path(path)
    if not side.is_file():
        raise InputError(
            f"checkpoint sidecar {side} is missing: a cxrlt checkpoint is {weights_path(path).name} plus this .json, "
            "which holds the model config"
        )
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"checkpoint sidecar {side} is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("model"), dict):
        raise InputError(f"{side} is not a cxrlt checkpoint sidecar (needs format={FORMAT!r} and a model section)")
    version = info.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"checkpoint sidecar {side} has format version {version}; this cxrlt reads up to {FORMAT_VERSION}"
        )
    return _complete(info, str(side))


def _complete(info: dict[str, Any], source: str) -> dict[str, Any]:
    """Give a sidecar of any version an ``input`` section and a ``model`` section with the contract's fields."""
    contract = InputContract.from_sidecar(info, source)
    model = dict(info["model"])
    if "input" not in info and model.get("head") == "mlp" and "pooling" not in model:
        model["pooling"] = "feature_map"  # written before the option: its MLP averaged the normed map
    model.update(
        input_size=int(contract.image_size[0]),
        mean=list(contract.mean),
        std=list(contract.std),
        in_chans=int(contract.channels),
        class_names=list(contract.class_names),
        label_space=dict(contract.label_space) if contract.label_space else None,
    )
    return {**info, "model": model, "input": contract.to_dict()}
