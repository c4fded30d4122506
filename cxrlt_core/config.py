"""Training recipes: dataclasses that round-trip to YAML, with ``key=value`` overrides and checked types.

A recipe (``train_jobs/*.yaml``) has the sections ``data``, ``model``, ``loss``, ``sampler``, ``optim``, ``tracking``,
``profile`` (the fidelity profile, ``cxrlt_core.fidelity``) and the recipe's ``name`` / ``description`` / ``card``
(where it comes from: ``cxrlt_core.recipe_cards``). Every key is optional except ``data.train_csv``; missing keys take
the defaults below, which are the CXR-LT 2026 winning code's
values (docs/method.md). Unknown keys, values of the wrong type and impossible values (a negative learning rate) are
one :class:`~cxrlt_core.errors.InputError` naming the file and the key.

Paths may start with ``${workspace}`` (the run's workspace), ``${shared_data}`` (the folder named by
``$CXRLT_SHARED_DATA``) or ``${repo}`` (the source tree); other relative paths are relative to the current folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from cxrlt_core.data.augment import AugmentConfig
from cxrlt_core.errors import InputError
from cxrlt_core.fidelity import resolve_profile
from cxrlt_core.paths import REPO_ROOT, default_workspace, shared_data_dir
from cxrlt_core.recipes import resolve_recipe

AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass
class DataConfig:
    """Where the images and labels are, how they are split and preprocessed."""

    train_csv: str = ""
    val_csv: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    image_root: str | None = None
    meta_csv: str | None = None
    label_space: str | None = None
    id_column: str | None = None
    uncertain: Literal["ignore", "zero", "one"] = "ignore"
    image_size: int = 512
    clip_low: float = 0.5
    clip_high: float = 99.5
    cache: bool = True
    cache_dir: str | None = None
    on_error: Literal["raise", "skip"] = "raise"
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def check(self) -> None:
        if not self.train_csv:
            raise InputError("data.train_csv is required")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"data.val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.image_size < 16:
            raise InputError(f"data.image_size must be at least 16, got {self.image_size}")
        if not 0.0 <= self.clip_low < self.clip_high <= 100.0:
            raise InputError(
                f"data.clip_low/clip_high must satisfy 0 <= low < high <= 100, got {self.clip_low}, {self.clip_high}"
            )


@dataclasses.dataclass
class ModelSection:
    """The network: a timm backbone by name and a registered head (``cxrlt_core.models``).

    ``pretrained`` may also be ``run:NAME`` (that run's ``checkpoints/best.safetensors`` in the workspace, e.g. a
    Stage 1 run); ``transfer`` says what happens to its head (``cxrlt_core.models.classifier.TRANSFERS``).
    """

    backbone: str = "convnextv2_base"
    head: str = "csra"
    head_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    drop_path_rate: float = 0.2
    pretrained: str | None = None
    transfer: Literal["auto", "keep_hidden", "reinit_head"] = "auto"
    mean: list[float] | None = None
    std: list[float] | None = None
    output_stride: int = 32  # 16 or 8: dilate the last stage(s) for finer feature maps (timm ``output_stride``)

    def check(self) -> None:
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise InputError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.output_stride not in (8, 16, 32):
            raise InputError(f"model.output_stride must be 8, 16 or 32, got {self.output_stride}")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) != 3:
                raise InputError(f"model.{key} needs 3 values (one per channel), got {value}")


@dataclasses.dataclass
class LossConfig:
    """A registered loss (``cxrlt_core.losses``: bce, asl, db) and its keyword parameters."""

    name: str = "db"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SamplerConfig:
    """The epoch's sampler, a name in ``cxrlt_core.data.sampler.SAMPLERS`` (default class-aware repeat-factor
    sampling); ``enabled: false`` is a plain shuffled epoch (the ``uniform`` sampler)."""

    enabled: bool = True
    name: str = "repeat_factor"
    T: float = 0.01
    r_max: float = 10.0
    frequency: Literal["share_of_positives", "image_prevalence"] = "share_of_positives"
    rounding: Literal["deterministic", "stochastic"] = "deterministic"

    def check(self) -> None:
        if not self.T > 0:
            raise InputError(f"sampler.T must be > 0, got {self.T}")
        if not self.r_max >= 1:
            raise InputError(f"sampler.r_max must be >= 1, got {self.r_max}")


@dataclasses.dataclass
class Phase1Config:
    """Head-only training with the backbone frozen, constant learning rate (AdamW)."""

    epochs: int = 10
    lr: float = 1e-3
    wd: float = 0.01


@dataclasses.dataclass
class Phase2Config:
    """Full fine-tuning (AdamW): per-step linear warm-up, then cosine decay to ``min_lr_ratio`` × the peak."""

    epochs: int = 60
    backbone_lr: float = 1.5e-5
    head_lr: float = 1.5e-4
    backbone_wd: float = 0.01
    head_wd: float = 0.05
    warmup_epochs: float = 5.0
    min_lr_ratio: float = 0.01
    layer_decay: float | None = None  # layer-wise rate decay of the backbone (ViT fine-tuning: 0.65-0.75); null = off


@dataclasses.dataclass
class EmaConfig:
    """Exponential moving average of the weights during phase 2; validation and checkpoints use it."""

    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = False


@dataclasses.dataclass
class SwaConfig:
    """Stochastic weight averaging (Izmailov et al., UAI 2018) with ``torch.optim.swa_utils.AveragedModel``: the
    end-of-epoch weights of the last ``epochs`` phase-2 epochs are averaged (buffers too, so BatchNorm statistics
    need no extra pass); validation and checkpoints use the average from the first averaged epoch on. With EMA on,
    the EMA's weights are what is averaged, so the two combine. The recipe's schedule is kept (no SWA rate)."""

    enabled: bool = False
    epochs: int = 3


@dataclasses.dataclass
class CrtConfig:
    """Classifier re-training (cRT; Kang et al., ICLR 2020) as a third phase after phase 2: the backbone frozen (and
    in eval mode), the head re-initialised and trained with AdamW at a constant rate on ``sampler``, a name in
    ``cxrlt_core.data.sampler.SAMPLERS``: ``class_balanced`` (class first, then an image of it), ``repeat_factor``
    (the recipe's sampler), ``uniform``, ..."""

    epochs: int = 0
    lr: float = 1e-3
    wd: float = 1e-4
    sampler: str = "class_balanced"


@dataclasses.dataclass
class OptimConfig:
    """Optimisation and the training loop's switches."""

    phase1: Phase1Config = dataclasses.field(default_factory=Phase1Config)
    phase2: Phase2Config = dataclasses.field(default_factory=Phase2Config)
    batch_size: int = 64
    val_batch_size: int | None = None
    num_workers: int | Literal["auto"] = "auto"
    eps: float = 1e-5
    decay_norm_and_bias: bool = True
    grad_clip: float | None = 1.0
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    ema: EmaConfig = dataclasses.field(default_factory=EmaConfig)
    swa: SwaConfig = dataclasses.field(default_factory=SwaConfig)
    crt: CrtConfig = dataclasses.field(default_factory=CrtConfig)
    sync_bn: bool = True
    early_stop_patience: int | None = None
    max_steps_per_epoch: int | None = None
    max_val_batches: int | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None

    def check(self) -> None:
        rates = {
            "optim.phase1.lr": self.phase1.lr,
            "optim.phase2.backbone_lr": self.phase2.backbone_lr,
            "optim.phase2.head_lr": self.phase2.head_lr,
        }
        decays = {
            "optim.phase1.wd": self.phase1.wd,
            "optim.phase2.backbone_wd": self.phase2.backbone_wd,
            "optim.phase2.head_wd": self.phase2.head_wd,
        }
        for key, value in {**rates, **decays}.items():
            if value < 0:
                raise InputError(f"{key} must be >= 0, got {value}")
        for key, value in (("optim.phase1.epochs", self.phase1.epochs), ("optim.phase2.epochs", self.phase2.epochs)):
            if value < 0:
                raise InputError(f"{key} must be >= 0, got {value}")
        if self.phase1.epochs + self.phase2.epochs == 0:
            raise InputError("optim.phase1.epochs + optim.phase2.epochs must be at least 1")
        if self.phase2.warmup_epochs < 0 or (self.phase2.epochs and self.phase2.warmup_epochs > self.phase2.epochs):
            raise InputError(
                f"optim.phase2.warmup_epochs must be in [0, phase2.epochs={self.phase2.epochs}], "
                f"got {self.phase2.warmup_epochs}"
            )
        if self.phase2.layer_decay is not None and not 0.0 < self.phase2.layer_decay <= 1.0:
            raise InputError(f"optim.phase2.layer_decay must be in (0, 1] or null, got {self.phase2.layer_decay}")
        if not 0.0 <= self.phase2.min_lr_ratio <= 1.0:
            raise InputError(f"optim.phase2.min_lr_ratio must be in [0, 1], got {self.phase2.min_lr_ratio}")
        positive = {
            "optim.batch_size": self.batch_size,
            "optim.val_batch_size": self.val_batch_size,
            "optim.max_steps_per_epoch": self.max_steps_per_epoch,
            "optim.max_val_batches": self.max_val_batches,
            "optim.early_stop_patience": self.early_stop_patience,
            "optim.threads": self.threads,
        }
        for key, value in positive.items():
            if value is not None and value < 1:
                raise InputError(f"{key} must be >= 1, got {value}")
        if self.num_workers != "auto" and self.num_workers < 0:
            raise InputError(f"optim.num_workers must be >= 0 or auto, got {self.num_workers}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InputError(f"optim.grad_clip must be > 0 (or null for no clipping), got {self.grad_clip}")
        if not 0.0 <= self.ema.decay < 1.0:
            raise InputError(f"optim.ema.decay must be in [0, 1), got {self.ema.decay}")
        if self.eps <= 0:
            raise InputError(f"optim.eps must be > 0, got {self.eps}")
        if self.swa.enabled and not 1 <= self.swa.epochs <= self.phase2.epochs:
            raise InputError(
                f"optim.swa.epochs must be in [1, phase2.epochs={self.phase2.epochs}], got {self.swa.epochs}"
            )
        if self.crt.epochs < 0 or self.crt.lr < 0 or self.crt.wd < 0:
            raise InputError("optim.crt.epochs, optim.crt.lr and optim.crt.wd must be >= 0")


@dataclasses.dataclass
class TrackingConfig:
    """Experiment tracking (``cxrlt_core.tracking``), off by default: TensorBoard event files in the run folder,
    MLflow runs (``mlflow_uri``: any tracking URI; default a file store at ``${workspace}/mlruns``)."""

    tensorboard: bool = False
    mlflow: bool = False
    mlflow_uri: str | None = None
    experiment: str | None = None


@dataclasses.dataclass
class ProfileConfig:
    """The fidelity profile (``cxrlt_core.fidelity``): a named set of choices, each of which may be overridden."""

    name: str = "cxrlt"
    interpolation: str | None = None
    rounding: str | None = None
    tta_geometry: str | None = None
    lr_step: str | None = None
    head_init: str | None = None
    val_split: str | None = None

    def resolve(self) -> Any:
        """The :class:`~cxrlt_core.fidelity.FidelityProfile` this section names."""
        overrides = {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}
        try:
            return resolve_profile(self.name, overrides)
        except InputError as exc:
            raise InputError(f"profile: {exc}") from None


@dataclasses.dataclass
class Recipe:
    """A whole training recipe."""

    name: str = "recipe"
    description: str = ""
    card: dict[str, Any] = dataclasses.field(default_factory=dict)  # the recipe card (cxrlt_core.recipe_cards)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    tracking: TrackingConfig = dataclasses.field(default_factory=TrackingConfig)
    profile: ProfileConfig = dataclasses.field(default_factory=ProfileConfig)

    def check(self) -> None:
        """Raise ``InputError`` for impossible values (types are checked while parsing), unknown registry names and
        head or loss parameters that the named head or loss does not take, has another type for, or that are not
        finite numbers."""
        self.profile.resolve()
        self.data.check()
        self.model.check()
        self.sampler.check()
        self.optim.check()
        check_registered(self)

    @property
    def total_epochs(self) -> int:
        return self.optim.phase1.epochs + self.optim.phase2.epochs + self.optim.crt.epochs

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists, dicts, scalars), in field order."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        """The recipe as YAML; :func:`recipe_from_yaml` reads it back to an equal recipe."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=120)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "recipe") -> Recipe:
        """Build and check a recipe from nested dicts (e.g. parsed YAML)."""
        recipe = _build(cls, data, source, "")
        try:
            recipe.check()
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        return recipe


# ------------------------------------------------------------------------------------------------ loading, overrides
def load_recipe(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe YAML file, or a shipped recipe by name (:mod:`cxrlt_core.recipes`), and apply ``key=value``
    overrides (values parsed as YAML).

    Example: ``load_recipe("train_jobs/demo_csra.yaml", ["optim.phase2.epochs=3", "optim.batch_size=16"])``.

    Raises:
        InputError: missing file, bad YAML, unknown keys, wrong types or impossible values, naming the file and key.
    """
    path = resolve_recipe(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    return Recipe.from_dict(data, source=str(path))


def recipe_from_yaml(text: str, source: str = "recipe", overrides: Sequence[str] = ()) -> Recipe:
    """Parse a recipe from YAML text (e.g. a run's ``config.yaml``)."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe must be a mapping of sections")
    return Recipe.from_dict(apply_overrides(data, overrides), source=source)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.phase2.head_lr=3e-4"`` → (["optim", "phase2", "head_lr"], 3e-4); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"override {text!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise InputError(f"override {text!r}: value {raw!r} is not valid YAML") from None
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``a.b.c=value`` set (intermediate mappings are created)."""
    result = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise InputError(f"override {text!r}: {'.'.join(keys[: depth + 1])} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return result


def resolve_path(value: str | None, workspace: str | os.PathLike[str] | None = None) -> Path | None:
    """Expand ``${workspace}``, ``${shared_data}``, ``${repo}`` and ``~`` in a recipe path."""
    if value is None:
        return None

    places = {
        "${workspace}": Path(workspace) if workspace is not None else default_workspace(),
        "${shared_data}": shared_data_dir(),
        "${repo}": REPO_ROOT,
    }
    text = str(value)
    for token, place in places.items():
        if text.startswith(token):
            if place is None:
                raise InputError(f"path {value!r}: set CXRLT_SHARED_DATA to the folder that holds the real data sets")
            text = str(place) + text[len(token) :]
    if "${" in text:
        raise InputError(f"path {value!r}: unknown placeholder; use one of {', '.join(places)}")
    return Path(text).expanduser().resolve()


# ------------------------------------------------------------------------------------- registry names and params
def check_registered(recipe: Recipe) -> None:
    """Check ``model.head`` / ``model.head_params``, ``loss.name`` / ``loss.params`` and ``sampler.name`` against
    their registries, so a typo stops the recipe at load time rather than after the data are read.

    The registries of heads and losses live in modules that import torch; they are imported here, not at the top,
    so that reading this module (for ``cxrlt --help``, the dashboard's recipe list) stays cheap.
    """
    from cxrlt_core.data.sampler import SAMPLERS
    from cxrlt_core.losses import LOSSES, loss_parameter_types
    from cxrlt_core.models.heads import HEADS, head_parameter_types

    HEADS.get(recipe.model.head)
    LOSSES.get(recipe.loss.name)
    SAMPLERS.get(recipe.sampler.name)
    SAMPLERS.get(recipe.optim.crt.sampler)
    _check_params(
        f"head {recipe.model.head!r}",
        "model.head_params",
        recipe.model.head_params,
        head_parameter_types(recipe.model.head),
    )
    _check_params(
        f"loss {recipe.loss.name!r}", "loss.params", recipe.loss.params, loss_parameter_types(recipe.loss.name)
    )


def _check_params(owner: str, key: str, params: Mapping[str, Any], accepted: Mapping[str, Any]) -> None:
    """Every parameter is one ``owner`` takes, of its type, and holds finite numbers only."""
    for name, value in params.items():
        if name not in accepted:
            close = difflib.get_close_matches(str(name), list(accepted), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"it takes: {', '.join(accepted) or 'none'}"
            raise InputError(f"{key}.{name}: {owner} has no parameter {name!r}; {hint}")
        where = f"{key}.{name}"
        bad = _first_non_finite(value)
        if bad is not None:
            raise InputError(f"{where} must be a finite number, got {bad!r}")
        # a parameter type recipes cannot spell (TypeError from _coerce) is left to the constructor
        with contextlib.suppress(TypeError):
            _coerce(accepted[name], value, owner, where)


def _first_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity", ".nan", ".inf"):
        return value
    if isinstance(value, (list, tuple)):
        return next((bad for v in value if (bad := _first_non_finite(v)) is not None), None)
    if isinstance(value, Mapping):
        return next((bad for v in value.values() if (bad := _first_non_finite(v)) is not None), None)
    return None


# ---------------------------------------------------------------------------------------------- typed construction
def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    where = prefix.rstrip(".") or "recipe"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: {where} must be a mapping of keys, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(fields)}"
            raise InputError(f"{source}: unknown key '{prefix}{key}'{hint}")
        kwargs[key] = _coerce(hints[key], value, source, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    """Check ``value`` against the type ``hint`` (and convert where YAML is loose); raise naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, source, key)
            except InputError as exc:
                errors.append(exc)
        raise errors[0] if len(options) == 1 else InputError(f"{source}: {key} = {value!r} has the wrong type")
    if origin is Literal:
        if value not in args:
            raise InputError(f"{source}: {key} = {value!r}; choose one of: {', '.join(map(str, args))}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{source}: {key} must be true or false, got {_describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InputError(f"{source}: {key} must be an integer, got {_describe(value)}")
    if hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; accept what is clearly a number
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise InputError(f"{source}: {key} must be a number, got {_describe(value)}")
        if not math.isfinite(number):  # a NaN or infinite rate would only fail later, as a NaN score
            raise InputError(f"{source}: {key} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise InputError(f"{source}: {key} must be a string, got {_describe(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{source}: {key} must be a list, got {_describe(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"{source}: {key} must have {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{source}: {key} must be a mapping, got {_describe(value)}")
        return {str(k): v for k, v in value.items()}
    raise TypeError(f"recipe field {key} has an unsupported type {hint!r}")  # a bug in this module, not user input


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj
