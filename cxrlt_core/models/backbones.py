"""timm backbones without classifier, and where their pretrained weights come from.

A backbone is ``timm.create_model(name, num_classes=0, drop_path_rate=...)``. For the CSRA model (and every head that
reads a feature map) it is made with ``global_pool=""``: calling it returns the unpooled feature map
(B, C_feat, H/32, W/32) — for ConvNeXt with the final LayerNorm of timm's head applied at every position, exactly as
the winning code's CSRA model's ``self.backbone(x)``. For the MLP model it keeps timm's default pooling, as the
winning code's MLP model (``timm.create_model(name, num_classes=0)``): for ConvNeXt that is LN(GAP(x)), which is not
GAP(LN(x)) (see :class:`~cxrlt_core.models.classifier.ModelConfig` ``pooling``).

Weight sources (``ModelConfig.pretrained``), see :func:`pretrained_source`:
    ``None``: random init.
    ``"timm"``: timm's default pretrained tag of the backbone (e.g. ``timm/convnextv2_base.fcmae_ft_in22k_in1k``).
    ``"<name>.<tag>"``: a timm tag of the same architecture, e.g. ``"convnextv2_base.fcmae_ft_in22k_in1k_384"``.
    ``"hf-hub:org/name"``: weights from a Hugging Face hub repository, for the backbone's architecture.
    a file path: ``.safetensors`` or ``.pth/.pt/.bin/.ckpt`` (read with ``torch.load(weights_only=True)``); the
        classifier module handles files that hold a whole classifier (a cxrlt checkpoint, the winners' weights).

Hub weights are looked up in the local Hugging Face cache first and loaded from there without touching the network;
when they are not cached and the machine is offline the error says what is missing and how to provide it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import timm
import torch
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from timm.models._hub import hf_split
from torch import nn

from cxrlt_core.errors import InputError

_log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
#: Hub file names timm tries, in order (``timm.models._hub.load_state_dict_from_hf``).
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: Keys under which training scripts nest a state dict; EMA first, as timm prefers it.
_NESTED_KEYS = ("state_dict_ema", "model_ema", "model_state_dict", "state_dict", "model")


@dataclasses.dataclass
class PretrainedReport:
    """What loading pretrained weights did.

    Attributes:
        source: where the weights came from (a file, a hub id, a timm tag).
        loaded: number of tensors loaded.
        missing: model keys left at their initial value.
        dropped: keys in the source that were not used (classifier of another head or class count, ...).
        note: one line on anything a user should know (e.g. why a head was re-initialised).
    """

    source: str
    loaded: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)
    note: str = ""

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"pretrained weights from {self.source}: {self.loaded} tensors loaded"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_preview(self.missing)})")
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped ({_preview(self.dropped)})")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preview(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


# ------------------------------------------------------------------------------------------------------ sources
def pretrained_source(value: str | None) -> str:
    """Classify a ``pretrained`` setting: ``"none"``, ``"timm"``, ``"tag"``, ``"hub"`` or ``"file"``.

    Raises:
        InputError: the value looks like a file path but no such file exists.
    """
    if value is None or str(value).strip().lower() in ("", "none", "false", "random"):
        return "none"
    text = str(value).strip()
    if text.lower() in ("timm", "true", "imagenet", "default"):
        return "timm"
    if text.startswith("hf-hub:"):
        return "hub"
    path = Path(os.path.expanduser(text))
    if path.is_file():
        return "file"
    if os.sep in text or "/" in text or text.lower().endswith(WEIGHT_SUFFIXES):
        raise InputError(f"pretrained weights file {text} does not exist")
    return "tag"


def _offline() -> bool:
    """True when huggingface_hub is in offline mode (the constant is read at import, the variable maybe later)."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE) or env


def _hub_target(backbone: str, pretrained: str, kind: str) -> tuple[str, str | None, tuple[str, ...]]:
    """(timm model name to create, hub repo id or None, candidate file names) for a hub-backed source."""
    if kind == "hub":
        repo = pretrained[len("hf-hub:") :]
        return backbone, repo, HUB_WEIGHT_FILES
    name = backbone if kind == "timm" else pretrained
    arch, _ = timm.models.split_model_name_tag(name)
    backbone_arch, _ = timm.models.split_model_name_tag(backbone)
    if arch != backbone_arch:
        raise InputError(
            f"pretrained tag {pretrained!r} is for architecture {arch!r} but the backbone is {backbone_arch!r}; "
            f"use a tag of {backbone_arch} (timm.list_pretrained('{backbone_arch}*')) or a weights file"
        )
    try:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False) if timm.is_model(arch) else None
    except RuntimeError:  # timm: "Invalid pretrained tag"
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise InputError(f"timm has no pretrained weights named {name!r}; see timm.list_pretrained('{arch}*')")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_WEIGHT_FILES
    return name, cfg.hf_hub_id or None, files


def _cached_hub_file(repo: str, files: tuple[str, ...]) -> str | None:
    repo_id, revision = hf_split(repo)
    for filename in files:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _missing_weights_error(backbone: str, repo: str | None, cause: str = "") -> InputError:
    reason = f" ({cause})" if cause else ""
    if repo is None:
        return InputError(
            f"pretrained weights for backbone {backbone!r} are missing: timm's download failed{reason}; on a machine "
            f"with internet run `python -c \"import timm; timm.create_model('{backbone}', pretrained=True)\"` and copy "
            f"the torch hub cache ({torch.hub.get_dir()}) here, or set pretrained to a local weights file "
            "(.safetensors/.pth)"
        )
    return InputError(
        f"pretrained weights for backbone {backbone!r} are missing: hub repository {repo} is not in the local "
        f"Hugging Face cache and cannot be downloaded{reason}; on a machine with internet run `hf download {repo}` "
        f"and copy the Hugging Face cache folder here ({constants.HF_HUB_CACHE}, or point HF_HOME at it), "
        "or set pretrained to a local weights file (.safetensors/.pth)"
    )


def _hub_unreachable(timeout: float = 3.0) -> str:
    """Why the hub cannot be reached ('' if it can): one quick TCP connect instead of the hub client's retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return ""  # behind a proxy a direct connect proves nothing; let the hub client try
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"cannot reach {constants.ENDPOINT}: {exc}"
    return ""


def _is_download_error(exc: BaseException) -> bool:
    """Network, offline-mode and missing-file errors of huggingface_hub, httpx, urllib (not programming errors)."""
    package = type(exc).__module__.split(".")[0]
    return isinstance(exc, (OSError, ConnectionError)) or package in ("huggingface_hub", "httpx", "requests", "urllib3")


def _download_hub_file(repo: str, files: tuple[str, ...], backbone: str) -> str:
    """Download the first of ``files`` that the hub repository has (into the HF cache); errors become InputError."""
    repo_id, revision = hf_split(repo)
    last: BaseException | None = None
    for filename in files:
        try:
            return hf_hub_download(repo_id, filename, revision=revision)
        except LocalEntryNotFoundError as exc:  # offline or unreachable: no point trying other names
            raise _missing_weights_error(backbone, repo, _first_line(exc)) from None
        except EntryNotFoundError as exc:  # the repository has no file of that name; try the next
            last = exc
        except Exception as exc:
            if _is_download_error(exc):
                raise _missing_weights_error(backbone, repo, _first_line(exc)) from None
            raise
    raise InputError(f"hub repository {repo} has none of the weight files {list(files)} ({_first_line(last)})")


# ------------------------------------------------------------------------------------------------------ creation
def create_backbone(
    name: str,
    drop_path_rate: float = 0.2,
    in_chans: int = 3,
    pretrained: str | None = None,
    pooled: bool = False,
    output_stride: int = 32,
    input_size: int | None = None,
) -> tuple[nn.Module, PretrainedReport | None]:
    """Create timm backbone ``name`` without classifier, with hub/timm weights if asked.

    ``pooled=False`` (the CSRA path): ``global_pool=""``, so calling the backbone returns the feature map after the
    model's head norm applied at every position. ``pooled=True`` (the MLP path): timm's default pooling, exactly as
    ``timm.create_model(name, num_classes=0)``; calling it returns pooled features (B, C), for ConvNeXt LN(GAP(x)),
    and ``forward_features`` the map before pooling and norm. The state-dict keys are the same either way.

    Hub weights are read from the local Hugging Face cache when present (no network request at all, so this works
    offline and never waits on retries), else downloaded into it; then loaded with :func:`load_backbone_state`,
    which checks every shape and reports missing keys. Weights that timm hosts only at a URL go through timm's own
    download. File sources are not loaded here (the caller decides whether a file holds a backbone or a whole
    classifier).

    ``input_size``: models with a fixed input size (ViT, DINOv2, Swin, MaxViT) are built for it (timm's
    ``img_size``; pretrained position embeddings are resampled by the model's ``checkpoint_filter_fn``); others
    ignore it.

    Raises:
        InputError: unknown model name; weights not available (offline and not cached); weights that do not fit.
    """
    kind = pretrained_source(pretrained)
    arch, _ = timm.models.split_model_name_tag(name)
    if not timm.is_model(arch):
        raise InputError(f"unknown timm backbone {name!r}; see timm.list_models('convnextv2*') for names")
    kwargs: dict[str, Any] = dict(num_classes=0, drop_path_rate=drop_path_rate, in_chans=in_chans)
    if not pooled:
        kwargs["global_pool"] = ""
    if output_stride != 32:  # dilated last stage(s): finer feature maps, same weights (timm ``output_stride``)
        kwargs["output_stride"] = output_stride
    if input_size is not None and _takes_img_size(arch):
        kwargs["img_size"] = int(input_size)
    if kind in ("none", "file"):
        return timm.create_model(name, pretrained=False, **kwargs), None

    model_name, repo, files = _hub_target(name, str(pretrained), kind)
    if repo:
        weights = _cached_hub_file(repo, files)
        if weights is None:
            if _offline():
                raise _missing_weights_error(name, repo, "offline: HF_HUB_OFFLINE is set")
            unreachable = _hub_unreachable()
            if unreachable:
                raise _missing_weights_error(name, repo, unreachable)
            weights = _download_hub_file(repo, files, name)
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        return model, load_backbone_state(model, read_state_dict(weights), f"{repo} ({weights})")
    try:
        model = timm.create_model(model_name, pretrained=True, **kwargs)
    except Exception as exc:
        if _is_download_error(exc):
            raise _missing_weights_error(name, None, _first_line(exc)) from None
        raise
    report = PretrainedReport(source=f"timm {model_name} (url)", loaded=len(model.state_dict()))
    _log.info(report.summary())
    return model, report


def _takes_img_size(arch: str) -> bool:
    """Whether timm builds model ``arch`` for a fixed input size (``fixed_input_size`` in its pretrained config:
    ViT, DINOv2, Swin, MaxViT), so that its constructor takes ``img_size``."""
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except RuntimeError:
        return False
    return bool(getattr(cfg, "fixed_input_size", False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def feature_channels(backbone: nn.Module) -> int:
    """Channels of the backbone's unpooled output."""
    return int(backbone.num_features)


def last_stage(backbone: nn.Module) -> nn.Module:
    """The module that produces the last feature map (the Grad-CAM target layer), from timm's ``feature_info``."""
    info = getattr(backbone, "feature_info", None)
    if info:
        last = info[-1]
        name = last["module"] if isinstance(last, dict) else None
        if name:
            return backbone.get_submodule(name)
    stages = getattr(backbone, "stages", None)
    if isinstance(stages, nn.Sequential) and len(stages):
        return stages[-1]
    raise InputError(f"cannot find the last stage of backbone {type(backbone).__name__} (no feature_info or stages)")


# ---------------------------------------------------------------------------------------------------- files
def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weights file without unpickling code: safetensors, or ``torch.load(weights_only=True)``.

    Nested training checkpoints (``{"state_dict": ...}``, ``{"model_state_dict": ...}``, EMA first) are unwrapped and
    DDP ``module.`` prefixes stripped. Non-tensor entries are ignored.

    Raises:
        InputError: missing file, unsupported suffix, a pickle that holds code or objects, or no tensors.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"weights file {file} does not exist")
    suffix = file.suffix.lower()
    if suffix == ".safetensors":
        try:
            data: Any = load_file(str(file), device="cpu")
        except Exception as exc:
            raise InputError(f"weights file {file} is not a readable safetensors file: {_first_line(exc)}") from None
    elif suffix in WEIGHT_SUFFIXES:
        try:
            data = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise InputError(
                f"weights file {file} holds Python objects other than tensors; refusing to unpickle it "
                f"(save a plain state dict or .safetensors): {_first_line(exc)}"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            raise InputError(f"weights file {file} cannot be read: {_first_line(exc)}") from None
    else:
        raise InputError(f"weights file {file} has an unsupported type; use one of {', '.join(WEIGHT_SUFFIXES)}")
    if isinstance(data, dict):
        for key in _NESTED_KEYS:
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict):
        raise InputError(f"weights file {file} does not hold a state dict (got {type(data).__name__})")
    state = {_strip_prefix(str(k)): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(f"weights file {file} holds no tensors")
    return state


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _misfits(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> int:
    return sum(k in target and tuple(v.shape) != tuple(target[k].shape) for k, v in state.items())


def _fit(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(tensors that fit, −tensors of a matching key but another shape): larger is better."""
    return sum(k in target and tuple(v.shape) == tuple(target[k].shape) for k, v in state.items()), -_misfits(
        state, target
    )


def load_backbone_state(backbone: nn.Module, state: dict[str, torch.Tensor], source: str) -> PretrainedReport:
    """Load a backbone state dict (timm layout) into ``backbone``, reporting what was missing or dropped.

    If most keys do not match, the model family's timm ``checkpoint_filter_fn`` (e.g. ConvNeXt's conversion of the
    original Facebook checkpoints) is applied first. The first conv is adapted to ``in_chans`` with timm's
    ``adapt_input_conv``. Keys the backbone lacks (an ImageNet classifier ``head.fc``) are dropped and reported.

    Raises:
        InputError: a tensor's shape does not fit (another architecture), or nothing matches at all.
    """
    target = backbone.state_dict()
    state = dict(state)
    if sum(k in target for k in state) < len(target) / 2 or _misfits(state, target):
        # also for misfits: a ViT built for another input size resamples its position embedding in the filter
        filter_fn = getattr(sys.modules.get(type(backbone).__module__), "checkpoint_filter_fn", None)
        if filter_fn is not None:
            try:
                converted = filter_fn(dict(state), backbone)
            except Exception:  # a filter for another layout may fail on this one; keep the original keys
                converted = None
            if converted and _fit(converted, target) > _fit(state, target):
                state = converted
    first_conv = (getattr(backbone, "pretrained_cfg", None) or {}).get("first_conv")
    conv_key = f"{first_conv}.weight" if isinstance(first_conv, str) else None
    if conv_key in state and conv_key in target and state[conv_key].shape[1] != target[conv_key].shape[1]:
        state[conv_key] = adapt_input_conv(target[conv_key].shape[1], state[conv_key])
    loadable, dropped, wrong = {}, [], []
    for key, value in state.items():
        if key not in target:
            dropped.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            wrong.append(f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}")
        else:
            loadable[key] = value
    arch = getattr(backbone, "pretrained_cfg", {}).get("architecture", type(backbone).__name__)
    if wrong:
        raise InputError(
            f"weights from {source} do not fit backbone {arch!r}: {len(wrong)} tensors differ in shape "
            f"({_preview(wrong)}); is it another architecture?"
        )
    if not loadable:
        raise InputError(
            f"weights from {source} hold no tensors of backbone {arch!r} (keys like {_preview(list(state))})"
        )
    backbone.load_state_dict(loadable, strict=False)
    missing = [k for k in target if k not in loadable]
    report = PretrainedReport(source=source, loaded=len(loadable), missing=missing, dropped=dropped)
    (_log.warning if missing else _log.info)(report.summary())
    return report
