"""Checkpoints: safetensors weights + a JSON sidecar that rebuilds and feeds the model; resumable training state.

Files for a checkpoint ``best.safetensors``:
    ``best.safetensors``: the model's state dict (plain tensors, no pickle), a ``checkpoint_id`` in its metadata.
    ``best.json``: the sidecar: format, the same ``checkpoint_id``, ``model`` (the architecture: backbone, head and
        its params, number of classes, pooling), ``input`` (the :class:`~cxrlt_core.models.contract.InputContract`:
        size, interpolation, rounding, clipping, channels, mean/std, class names, label space, TTA geometry — stored
        here once), run id, epoch, metrics, cxrlt version, creation time, plus any extra keys the caller passed.

Sidecars written before the ``input`` section (``preprocess`` and ``normalize`` sections, the input fields inside
``model``) are read into the same form by :func:`read_sidecar`; in memory a sidecar always has ``input`` and a
complete ``model`` section. Their MLP models averaged the per-position-normed feature map, so they load with
``pooling: feature_map``.
    ``best.state.pt``: optional resumable training state (:func:`save_training_state`).

Both files are written atomically (temporary file + rename), weights first; the shared ``checkpoint_id`` lets
:func:`load_checkpoint` detect a sidecar and weights that come from different saves (a crash between the two writes).
Loading never unpickles: safetensors for weights, JSON for the sidecar, ``torch.load(weights_only=True)`` for the state.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cxrlt_core import __version__
from cxrlt_core.atomic import atomic_path, json_safe, write_json
from cxrlt_core.data.images import Preprocess
from cxrlt_core.errors import InputError
from cxrlt_core.models.classifier import CxrClassifier, ModelConfig, build_model
from cxrlt_core.models.contract import InputContract, attach_contract
from cxrlt_core.models.sidecar import FORMAT, FORMAT_VERSION, read_sidecar, sidecar_path, weights_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "capture_rng_state",
    "load_checkpoint",
    "load_training_state",
    "read_sidecar",
    "restore_rng_state",
    "save_checkpoint",
    "save_training_state",
    "sidecar_path",
    "training_state_path",
    "weights_path",
]

_RESERVED = (
    "format",
    "format_version",
    "checkpoint_id",
    "weights",
    "model",
    "cxrlt_version",
    "created",
    "normalize",
)
#: ModelConfig fields that belong to the input contract: written in ``input`` only.
_CONTRACT_FIELDS = ("input_size", "mean", "std", "in_chans", "class_names", "label_space")


def training_state_path(path: str | os.PathLike[str]) -> Path:
    """Where the resumable training state of checkpoint ``<stem>.safetensors`` goes: ``<stem>.state.pt``."""
    return Path(path).with_suffix(".state.pt")


# ---------------------------------------------------------------------------------------------------- weights
def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; a tensor sharing storage with an earlier one (tied weights) is cloned."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        if ptr in seen:
            tensor = tensor.clone()
        elif ptr != -1:
            seen.add(ptr)
        out[key] = tensor
    return out


def _contract_for(inner: nn.Module, cfg: ModelConfig, given: Any, preprocess: Any) -> InputContract:
    """The contract to store: given by the caller, else attached to the model, else built from ``cfg``."""

    if isinstance(given, InputContract):
        return given
    if isinstance(given, Mapping):
        return InputContract.from_dict(given, "sidecar input")
    if isinstance(preprocess, Mapping):
        preprocess = Preprocess.from_dict(preprocess)
    attached = getattr(inner, "input_contract", None)
    if isinstance(attached, InputContract):
        return attached.replace(preprocess=preprocess) if isinstance(preprocess, Preprocess) else attached
    pre = preprocess if isinstance(preprocess, Preprocess) else Preprocess(int(cfg.input_size))
    return InputContract(pre, cfg.mean, cfg.std, cfg.in_chans, tuple(cfg.class_names), cfg.label_space)


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, sidecar: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (``.safetensors``) and its sidecar to ``<stem>.json``, atomically.

    Args:
        path: target file, ending in ``.safetensors``.
        model: a :class:`CxrClassifier`, or a DDP / timm EMA / torch.compile wrapper of one.
        sidecar: extra information: ``run_id``, ``epoch``, ``metrics`` (dict), ``input`` (an
            :class:`InputContract`; default: the one attached to the model, else one built from its config and
            ``preprocess``), ``profile`` (the fidelity profile) and any other JSON-serialisable keys (kept as
            given). ``preprocess``, ``classes`` and ``label_space`` are folded into ``input``.

    Returns:
        The sidecar path.
    """
    target = Path(path)
    if target.suffix != ".safetensors":
        raise InputError(f"checkpoint path {target} must end in .safetensors")
    inner = getattr(model, "module", model)  # DDP, timm ModelEma
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    cfg = getattr(inner, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise InputError("save_checkpoint needs a CxrClassifier (a model built by build_model) to record its config")
    raw = dict(sidecar or {})
    contract = _contract_for(inner, cfg, raw.pop("input", None), raw.pop("preprocess", None))
    for folded in ("classes", "label_space", "integrity"):  # integrity: recomputed for this save
        raw.pop(folded, None)
    extra = json_safe(raw)
    clash = sorted(k for k in extra if k in _RESERVED)
    if clash:
        raise InputError(f"sidecar keys {clash} are written by save_checkpoint itself")
    checkpoint_id = uuid.uuid4().hex
    info: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "checkpoint_id": checkpoint_id,
        "weights": target.name,
        "model": {k: v for k, v in cfg.to_dict().items() if k not in _CONTRACT_FIELDS},
        "input": contract.to_dict(),
        "run_id": extra.pop("run_id", None),
        "epoch": extra.pop("epoch", None),
        "metrics": dict(extra.pop("metrics", None) or {}),
        "cxrlt_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    try:
        json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint sidecar for {target} is not JSON-serialisable: {exc}") from None

    # Integrity: the weights carry a digest of the sidecar's content, the sidecar a digest of the weights' bytes.
    side_digest = sidecar_digest(info)
    metadata = {"format": FORMAT, "checkpoint_id": checkpoint_id, "sidecar_sha256": side_digest}
    with atomic_path(target) as tmp:
        save_file(_plain_state(inner), str(tmp), metadata=metadata)
        weights_digest = file_sha256(tmp)
    info["integrity"] = {"sidecar_sha256": side_digest, "weights_sha256": weights_digest}
    side = sidecar_path(target)
    write_json(side, info)
    return side


def sidecar_digest(info: Mapping[str, Any]) -> str:
    """SHA-256 of a sidecar's content without its ``integrity`` entry, as canonical JSON (sorted keys, no spaces,
    NaN written as null as the file has it): any change to a value (two class names swapped) changes it."""
    body = json_safe({k: v for k, v in info.items() if k != "integrity"})
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_integrity(path: str | os.PathLike[str], metadata: Mapping[str, str]) -> None:
    """Check that checkpoint ``path``'s sidecar and weights are the ones saved together, unchanged since.

    The digest of the sidecar's content must equal the one in the weights' metadata (and in the sidecar's own
    ``integrity``), and the weights' bytes the digest in the sidecar. Checkpoints saved before digests existed have
    neither and pass.

    Raises:
        InputError: naming the changed file.
    """
    side = sidecar_path(path)
    raw = json.loads(side.read_text(encoding="utf-8"))
    stored = raw.get("integrity") if isinstance(raw.get("integrity"), Mapping) else {}
    expected = metadata.get("sidecar_sha256") or stored.get("sidecar_sha256")
    if expected and sidecar_digest(raw) != expected:
        raise InputError(
            f"checkpoint sidecar {side} was changed after it was saved: its content no longer matches the digest "
            f"stored with the weights {weights_path(path).name} (class names, input settings or other values may be "
            "wrong); use the sidecar written with these weights"
        )
    if stored.get("weights_sha256") and file_sha256(weights_path(path)) != stored["weights_sha256"]:
        raise InputError(
            f"checkpoint weights {weights_path(path)} were changed after they were saved: their bytes no longer match "
            f"the digest in {side.name}; use the weights written with this sidecar"
        )


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[CxrClassifier, dict]:
    """Rebuild the model from the sidecar alone and load its weights; returns ``(model in eval mode, sidecar)``.

    The model carries its :class:`InputContract` as ``model.input_contract``. Pretrained weights named in the
    config are not fetched (the checkpoint has all weights).

    Raises:
        InputError: missing or bad sidecar or weights, a sidecar from another save, or keys that do not match.
    """
    weights = weights_path(path)
    info = read_sidecar(path)
    if not weights.is_file():
        raise InputError(f"checkpoint weights {weights} are missing (its sidecar {sidecar_path(path).name} exists)")
    try:
        cfg = ModelConfig.from_dict(info["model"])
    except InputError as exc:
        raise InputError(f"checkpoint sidecar {sidecar_path(path)}: {exc}") from None

    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(weights), device="cpu")
    except Exception as exc:
        raise InputError(f"checkpoint weights {weights} are not a readable safetensors file: {exc}") from None
    saved_id, side_id = metadata.get("checkpoint_id"), info.get("checkpoint_id")
    if saved_id and side_id and saved_id != side_id:
        raise InputError(
            f"checkpoint weights {weights.name} and sidecar {sidecar_path(path).name} come from different saves "
            "(an interrupted write?); use a complete checkpoint"
        )
    try:
        model = build_model(ModelConfig.from_dict({**cfg.to_dict(), "pretrained": None}))
    except InputError as exc:
        raise InputError(f"checkpoint sidecar {sidecar_path(path)}: {exc}") from None
    model.cfg = cfg
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        raise InputError(
            f"checkpoint weights {weights} do not match the model in {sidecar_path(path).name}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    verify_integrity(path, metadata)  # after the structural checks, which say more about what is wrong
    model.load_state_dict(state)
    attach_contract(model, InputContract.from_dict(info["input"], str(sidecar_path(path))))
    return model.to(map_location).eval(), info


# ---------------------------------------------------------------------------------------------- training state
_PLAIN = (torch.Tensor, bool, int, float, str, type(None))


def _check_plain(obj: Any, where: str) -> None:
    """Raise ``InputError`` naming the first value ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise InputError(f"training state key {where}[{key!r}] must be a str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise InputError(
        f"training state value {where} is a {type(obj).__name__}; keep only tensors, numbers, strings, None and "
        "lists/dicts of them (convert numpy values with torch.as_tensor or float(); RNG states with capture_rng_state)"
    )


def save_training_state(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Write the resumable training state atomically with ``torch.save``.

    ``state`` holds only tensors, numbers, strings, None and lists/dicts of them — optimizer, scheduler, GradScaler
    and EMA ``state_dict()``s qualify; RNG states go through :func:`capture_rng_state` (numpy and Python states
    become tensors) — so that :func:`load_training_state` can read it with ``torch.load(weights_only=True)``.
    This is checked before writing.
    """
    _check_plain(dict(state), "state")
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_training_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training state written by :func:`save_training_state` (``torch.load(weights_only=True)``)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"training state {file} does not exist")
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"training state {file} cannot be read safely: {first}") from None
    if not isinstance(state, dict):
        raise InputError(f"training state {file} does not hold a dict")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy (legacy global), torch CPU and CUDA generator states as tensors and numbers."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when present and CUDA is available)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to("cpu", torch.uint8) for s in state["cuda"]])
