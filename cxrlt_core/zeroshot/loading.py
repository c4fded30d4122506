"""Load any open_clip model from one spec string, offline when its files are local.

Specs (``parse_model_spec``):

- ``hf-hub:ORG/NAME`` — an open_clip model on the Hugging Face Hub, read from the local HF cache
  (``$HF_HOME/hub``); e.g. WhyXrayCLIP ``hf-hub:yyupenn/whyxrayclip`` (tokenizer ``ViT-L-14``) or BiomedCLIP
  ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``.
- ``ARCH:TAG`` — an open_clip architecture and pretrained tag (``ViT-B-32:openai``; ``open_clip.list_pretrained()``).
- ``local-dir:PATH`` — a folder holding ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and the
  weights (``open_clip_model.safetensors``, else ``open_clip_pytorch_model.bin``), open_clip's own local format;
  a plain folder path holding ``open_clip_config.json`` is accepted too. The demo CLIP is saved this way.
- ``ARCH@/path/to/checkpoint.safetensors`` (or ``.pt``/``.bin``), or ``ARCH`` with ``checkpoint=FILE``.

Loading goes through ``open_clip.create_model`` (``require_pretrained=True``: a model whose weights cannot be
found is an error, never a silently random model), and the image transform is open_clip's validation transform
built from the model's preprocess config (its size, mean and std).

Weights: safetensors files are read with ``safetensors`` (no code can run). ``.bin``/``.pt``/``.pth`` files are
read by open_clip's ``load_state_dict`` with ``torch.load(weights_only=True)``, which refuses pickled code but is
still a pickle parser: prefer safetensors (the Hub loader picks ``open_clip_model.safetensors`` over
``open_clip_pytorch_model.bin`` when a repository has both).

Offline (``HF_HUB_OFFLINE=1``, or no network) with the files absent, loading fails with one line naming what to
download and where to put it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from huggingface_hub import constants, try_to_load_from_cache
from safetensors.torch import save_file

from cxrlt_core.atomic import atomic_path, write_json
from cxrlt_core.errors import InputError

__all__ = [
    "HF_WEIGHT_FILES",
    "KNOWN_TOKENIZERS",
    "LOCAL_WEIGHT_FILES",
    "ModelSpec",
    "ZeroShotModel",
    "file_fingerprint",
    "load_model",
    "parse_model_spec",
    "save_local_dir",
]

HF_CONFIG_FILE = "open_clip_config.json"
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
LOCAL_WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
SMALL_TEXT_BATCH = 8
"""Text batches up to this size are encoded with one CPU thread (see ``ZeroShotModel.encode_text``)."""
PROMPTS_FILE = "prompts.yaml"
"""A prompt set saved beside a local-dir model: the default set for that model."""

KNOWN_TOKENIZERS = {
    # Hub repositories whose open_clip_config.json does not name their tokenizer (or that users expect by name).
    "yyupenn/whyxrayclip": "ViT-L-14",
}
"""Tokenizer used for Hub models when none is given: repo id -> open_clip tokenizer name."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SPEC_FORMS = "hf-hub:ORG/NAME, ARCH:TAG, local-dir:PATH or ARCH@CHECKPOINT"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes:
        kind: ``"hf-hub"``, ``"pretrained"`` (ARCH:TAG), ``"local-dir"`` or ``"checkpoint"`` (ARCH + file).
        arch: open_clip architecture name (``None`` for hf-hub and local-dir, whose config travels with them).
        source: the repo id, pretrained tag, folder or checkpoint file.
        tokenizer: open_clip tokenizer name overriding the model's own, or ``None``.
    """

    kind: str
    arch: str | None
    source: str
    tokenizer: str | None = None

    def __str__(self) -> str:
        if self.kind == "hf-hub":
            return f"hf-hub:{self.source}"
        if self.kind == "local-dir":
            return f"local-dir:{self.source}"
        if self.kind == "pretrained":
            return f"{self.arch}:{self.source}"
        return f"{self.arch}@{self.source}"


def parse_model_spec(
    spec: str, checkpoint: str | os.PathLike[str] | None = None, tokenizer: str | None = None
) -> ModelSpec:
    """Parse a model spec string (forms in the module docstring); checks syntax and names, not files.

    Raises:
        InputError: an empty or malformed spec, an unknown architecture or pretrained tag.
    """
    spec = (spec or "").strip()
    if not spec:
        raise InputError(f"empty model spec; give one of {SPEC_FORMS}")
    if checkpoint is not None:
        if ":" in spec or "@" in spec:
            raise InputError(f"model {spec!r}: give a bare architecture with --checkpoint (e.g. ViT-B-16)")
        return ModelSpec("checkpoint", _check_arch(spec), os.fspath(checkpoint), tokenizer)
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:") :].strip()
        if not _REPO_ID.match(repo):
            raise InputError(f"model {spec!r}: expected hf-hub:ORG/NAME")
        return ModelSpec("hf-hub", None, repo, tokenizer or KNOWN_TOKENIZERS.get(repo))
    if spec.startswith("local-dir:"):
        folder = spec[len("local-dir:") :].strip()
        if not folder:
            raise InputError(f"model {spec!r}: no folder after local-dir:")
        return ModelSpec("local-dir", None, folder, tokenizer)
    if "@" in spec:
        arch, _, path = spec.partition("@")
        if not path:
            raise InputError(f"model {spec!r}: no checkpoint file after '@'")
        return ModelSpec("checkpoint", _check_arch(arch.strip()), path.strip(), tokenizer)
    if Path(spec).is_dir() and (Path(spec) / HF_CONFIG_FILE).is_file():
        return ModelSpec("local-dir", None, spec, tokenizer)
    if ":" in spec:
        arch, _, tag = spec.partition(":")

        arch = _check_arch(arch.strip())
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if tag not in tags:
            raise InputError(
                f"model {spec!r}: unknown pretrained tag {tag!r} for {arch}; known: {', '.join(tags) or 'none'}"
            )
        return ModelSpec("pretrained", arch, tag, tokenizer)

    arch = _check_arch(spec)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    hint = f" (e.g. {arch}:{tags[0]})" if tags else ""
    raise InputError(f"model {spec!r} names an architecture but no weights; use {SPEC_FORMS}{hint}")


def _check_arch(arch: str) -> str:
    names = open_clip.list_models()
    if arch in names:
        return arch
    close = difflib.get_close_matches(arch, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown open_clip architecture {arch!r}{hint}")


def file_fingerprint(path: str | os.PathLike[str], sample: int = 1 << 20, stride: int = 64 << 20) -> str:
    """A quick identity for a (large) weights file: blake2b over its size and 1 MiB every 64 MiB plus the tail.

    Any retraining changes every sampled region, and hashing a 1.7 GB ViT-L reads ~28 MB instead of all of it.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as handle:
        for offset in range(0, size, stride):
            handle.seek(offset)
            digest.update(handle.read(sample))
        handle.seek(max(0, size - sample))
        digest.update(handle.read(sample))
    return digest.hexdigest()


@dataclasses.dataclass
class ZeroShotModel:
    """A loaded open_clip model with its tokenizer and open_clip's preprocessing.

    Attributes:
        spec: what was loaded.
        model: the open_clip model (eval mode).
        tokenizer: open_clip tokenizer (texts -> token tensor).
        transform: open_clip's validation transform (PIL image -> normalised (3, H, W) tensor).
        preprocess_cfg: open_clip's preprocess config (size, mean, std, interpolation, resize_mode, fill_color).
        model_id: stable identity of architecture + weights, used to key embedding caches.
        weights_path: the weights file read, when known.
        folder: the model folder for local-dir specs (may hold ``prompts.yaml``).
    """

    spec: ModelSpec
    model: Any
    tokenizer: Callable[..., Any]
    transform: Callable[..., Any]
    preprocess_cfg: dict[str, Any]
    model_id: str
    device: str = "cpu"
    weights_path: Path | None = None
    folder: Path | None = None
    embed_dim: int = 0

    @property
    def logit_scale(self) -> float:
        """``exp(logit_scale)``: the model's learned softmax temperature (100 for OpenAI CLIP)."""
        with torch.no_grad():
            return float(self.model.logit_scale.exp().item())

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.preprocess_cfg.get("size", 224)
        return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))

    @property
    def default_prompts_path(self) -> Path | None:
        """``prompts.yaml`` saved with a local-dir model, if any."""
        if self.folder is not None and (self.folder / PROMPTS_FILE).is_file():
            return self.folder / PROMPTS_FILE
        return None

    def encode_image_tensor(self, images: Any) -> np.ndarray:
        """(B, 3, H, W) preprocessed tensor -> (B, D) float32 unit image embeddings."""
        with torch.inference_mode():
            features = self.model.encode_image(images.to(self.device), normalize=True)
        return features.float().cpu().numpy()

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Texts -> (T, D) float32 unit text embeddings (tokenised by the model's tokenizer)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embed_dim or 1), dtype=np.float32)
        out = []
        # A prompt edit encodes one or two texts: on CPU, one thread avoids the intra-op barrier waits that make a
        # tiny forward pass several times slower when the cores are shared (measured 0.1 s vs 0.5-1.6 s at load 7).
        threads = torch.get_num_threads()
        single = self.device == "cpu" and len(texts) <= SMALL_TEXT_BATCH and threads > 1
        if single:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), batch_size):
                    tokens = self.tokenizer(texts[start : start + batch_size]).to(self.device)
                    out.append(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        finally:
            if single:
                torch.set_num_threads(threads)
        return np.concatenate(out)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly metadata for predictions files and reports."""
        return {
            "model": str(self.spec),
            "model_id": self.model_id,
            "tokenizer": self.spec.tokenizer,
            "preprocess_cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in self.preprocess_cfg.items()},
            "logit_scale": self.logit_scale,
        }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _hf_cache_dir() -> str:
    return str(constants.HF_HUB_CACHE)


def _cached_hf_file(repo: str, filename: str) -> str | None:
    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def _hf_download_hint(repo: str) -> str:
    return (
        f"on a machine with internet run `hf download {repo} {HF_CONFIG_FILE} {HF_WEIGHT_FILES[0]}"
        f" --local-dir DIR` (or {HF_WEIGHT_FILES[1]} where the repo has no safetensors), copy DIR here and use"
        f" --model local-dir:DIR, or copy that machine's Hugging Face cache to {_hf_cache_dir()}"
    )


@contextlib.contextmanager
def quiet_open_clip():
    """open_clip logs at INFO/WARNING for every load, and huggingface_hub each retry of a failed download; keep the
    user's terminal to our own one-line messages."""
    loggers = [logging.getLogger(), logging.getLogger("huggingface_hub"), logging.getLogger("transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    # transformers (imported by open_clip when installed) draws a "Loading weights" bar for Hugging Face towers.
    hf_logging = sys.modules.get("transformers.utils.logging")
    bars = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def _local_dir_overrides(folder: Path, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """A local-dir model with a Hugging Face text tower keeps that tower's config.json beside its weights.

    open_clip rebuilds the tower from ``text_cfg.hf_model_name``; pointing it at the folder the model was loaded from
    (rather than the path written at save time) keeps a moved or copied model folder loadable offline.
    """
    text_cfg = dict(model_cfg.get("text_cfg", {}))
    if "hf_model_name" not in text_cfg or not (folder / "config.json").is_file():
        return {}
    text_cfg["hf_model_name"] = str(folder.resolve())
    text_cfg["hf_model_pretrained"] = False  # the CLIP checkpoint holds the tower's weights
    return {"text_cfg": text_cfg}


def _local_weights(folder: Path) -> Path | None:
    for name in LOCAL_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pth"))
    return found[0] if found else None


def load_model(
    spec: str | ModelSpec,
    device: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    tokenizer: str | None = None,
) -> ZeroShotModel:
    """Load the model named by ``spec`` (see :func:`parse_model_spec`) in eval mode.

    Args:
        spec: a spec string or a parsed :class:`ModelSpec`.
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available.
        checkpoint: a weights file for a bare ``ARCH`` spec.
        tokenizer: an open_clip tokenizer name overriding the model's own (e.g. ``ViT-L-14``).

    Raises:
        InputError: one line: unknown names, missing files, files absent offline (with how to get them),
            or weights that do not fit the architecture.
    """
    if not isinstance(spec, ModelSpec):
        spec = parse_model_spec(spec, checkpoint=checkpoint, tokenizer=tokenizer)
    elif tokenizer:
        spec = dataclasses.replace(spec, tokenizer=tokenizer)
    source = _model_source(spec)

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, transform, tokenizer_fn = _create_model(spec, source, device)
    weights, identity = source.weights, source.identity
    if spec.kind == "hf-hub":
        weights_file = next((w for f in HF_WEIGHT_FILES if (w := _cached_hf_file(spec.source, f))), None)
        weights = Path(weights_file) if weights_file else None
        identity = f"hf-hub:{spec.source}@{file_fingerprint(weights) if weights else 'unknown'}"
    identity = f"{identity}|tokenizer={spec.tokenizer}"
    model_id = _model_slug(spec) + "-" + hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
    loaded = ZeroShotModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer_fn,
        transform=transform,
        preprocess_cfg=dict(open_clip.get_model_preprocess_cfg(model)),
        model_id=model_id,
        device=str(device),
        weights_path=weights,
        folder=source.folder,
    )
    loaded.embed_dim = int(loaded.encode_text(["x"]).shape[1])
    return loaded


@dataclasses.dataclass
class _Source:
    """Where a spec's model comes from: the open_clip model name, the identity its cache id is hashed from (the
    hf-hub one is completed after loading), the local folder and weights file, and open_clip keyword arguments."""

    name: str
    identity: str | None
    folder: Path | None = None
    weights: Path | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _model_source(spec: ModelSpec) -> _Source:
    """Check that the spec's files are there (one-line errors) and say how open_clip should build it."""
    if spec.kind == "hf-hub":
        config_file = _cached_hf_file(spec.source, HF_CONFIG_FILE)
        weights_file = next((w for f in HF_WEIGHT_FILES if (w := _cached_hf_file(spec.source, f))), None)
        if (config_file is None or weights_file is None) and _offline():
            missing = HF_CONFIG_FILE if config_file is None else f"{' or '.join(HF_WEIGHT_FILES)}"
            raise InputError(
                f"model {spec}: {missing} not found in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids"
                f" downloading; {_hf_download_hint(spec.source)}"
            )
        return _Source(str(spec), None)
    if spec.kind == "local-dir":
        return _local_dir_source(spec)
    if spec.kind == "checkpoint":
        weights = Path(spec.source).expanduser()
        if not weights.is_file():
            raise InputError(f"model {spec}: checkpoint file {weights} not found")
        identity = f"{spec.arch}@{file_fingerprint(weights)}"
        return _Source(spec.arch, identity, weights=weights, kwargs={"pretrained": str(weights)})
    return _Source(spec.arch, f"{spec.arch}:{spec.source}:open_clip", kwargs={"pretrained": spec.source})


def _local_dir_source(spec: ModelSpec) -> _Source:
    """A local-dir model: its folder, config (``model_cfg`` required) and weights, all checked."""
    folder = Path(spec.source).expanduser()
    if not folder.is_dir():
        raise InputError(f"model {spec}: folder {folder} not found")
    config_path = folder / HF_CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"model {spec}: {config_path} not found (a local-dir model needs {HF_CONFIG_FILE})")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"model {spec}: {config_path} is not valid JSON ({_one_line(exc)})") from None
    if not isinstance(config, dict) or "model_cfg" not in config:
        raise InputError(f"model {spec}: {config_path} has no 'model_cfg'")
    weights = _local_weights(folder)
    if weights is None:
        raise InputError(f"model {spec}: no weights in {folder} (expected {LOCAL_WEIGHT_FILES[0]})")
    identity = json.dumps(config, sort_keys=True) + file_fingerprint(weights)
    kwargs = _local_dir_overrides(folder, config["model_cfg"])
    return _Source(f"local-dir:{folder}", identity, folder=folder, weights=weights, kwargs=kwargs)


def _create_model(spec: ModelSpec, source: _Source, device: str) -> tuple[Any, Any, Any]:
    """open_clip's model (eval mode), image transform and tokenizer; any failure is one :class:`InputError` line."""
    try:
        with quiet_open_clip():
            model, _, transform = open_clip.create_model_and_transforms(
                source.name, device=device, require_pretrained=True, weights_only=True, **source.kwargs
            )
            token_source = spec.tokenizer or (source.name if spec.kind in ("hf-hub", "local-dir") else spec.arch)
            tokenizer_fn = open_clip.get_tokenizer(token_source)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(_load_failure(spec, exc)) from None
    model.eval()
    return model, transform, tokenizer_fn


def save_local_dir(
    model: Any,
    folder: str | os.PathLike[str],
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any] | None = None,
) -> Path:
    """Save an open_clip model in open_clip's local-dir format, loadable as ``local-dir:FOLDER``.

    Writes ``open_clip_config.json`` (``{"model_cfg": ..., "preprocess_cfg": ...}``, the layout of open_clip's Hub
    configs) and ``open_clip_model.safetensors`` (every tensor of the state dict, copied so that none is shared),
    each atomically.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dict(preprocess_cfg or open_clip.get_model_preprocess_cfg(model))
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    state = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(folder / LOCAL_WEIGHT_FILES[0]) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_json(folder / HF_CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": cfg})
    return folder


def _model_slug(spec: ModelSpec) -> str:
    """A readable folder-name prefix for caches: ``whyxrayclip``, ``ViT-B-32-openai``, ``demo_clip``."""
    if spec.kind == "hf-hub":
        base = spec.source.split("/")[-1]
    elif spec.kind == "local-dir":
        base = Path(spec.source).name or "local"
    elif spec.kind == "pretrained":
        base = f"{spec.arch}-{spec.source}"
    else:
        base = f"{spec.arch}-{Path(spec.source).stem}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:48] or "model"


def _load_failure(spec: ModelSpec, exc: BaseException) -> str:
    text = _one_line(exc)
    lowered = text.lower()
    network = any(
        word in lowered
        for word in (
            "offline",
            "connection",
            "resolve",
            "network",
            "max retries",
            "cannot find the requested files",
            "localentrynotfound",
        )
    )
    if spec.kind == "hf-hub" and network:
        return f"model {spec}: cannot download its files from the Hugging Face Hub (no network?); " + _hf_download_hint(
            spec.source
        )
    if spec.kind == "pretrained" and network:
        return (
            f"model {spec}: weights for tag {spec.source!r} are not in the local cache and cannot be downloaded"
            f" (no network?); on a machine with internet run open_clip.create_model({spec.arch!r},"
            f" pretrained={spec.source!r}), copy its cache to {_hf_cache_dir()}, or pass the file as {spec.arch}@FILE"
        )
    if any(word in lowered for word in ("size mismatch", "missing key", "unexpected key", "width changed")):
        return f"model {spec}: the weights do not fit the architecture ({text[:300]})"
    return f"model {spec}: cannot load ({text[:400]})"
