"""Prompt set + image embeddings -> per-class zero-shot probabilities, with re-scoring after a prompt edit.

:class:`ZeroShotScorer` keeps a data set's image embeddings in memory (loaded once, from the cache), so that
scoring an edited prompt set costs one encode of the prompts not seen before plus one matrix product.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt_core.errors import InputError
from cxrlt_core.labels import as_label_space
from cxrlt_core.metrics import compute_report
from cxrlt_core.predictions import Predictions, align_to_labels, write_predictions
from cxrlt_core.zeroshot.cache import EmbeddingCache
from cxrlt_core.zeroshot.encode import EncodeStats, ImagePipeline, encode_images, encode_texts, image_pipeline
from cxrlt_core.zeroshot.loading import ZeroShotModel, load_model
from cxrlt_core.zeroshot.prompts import PromptSet, default_prompt_set, load_prompt_set
from cxrlt_core.zeroshot.scoring import ClassEmbeddings, get_scoring_rule

__all__ = [
    "ZeroShotScorer",
    "class_embeddings",
    "evaluate_scores",
    "format_zero_shot_table",
    "predict_zero_shot",
    "prompt_set_for_model",
    "score_embeddings",
    "score_image",
]

NEEDS_NEGATIVES = ("pos_neg_softmax",)


def class_embeddings(
    model: ZeroShotModel, prompt_set: PromptSet, cache: EmbeddingCache | None = None, negatives: bool = True
) -> list[ClassEmbeddings]:
    """One :class:`ClassEmbeddings` per class of ``prompt_set``, from a single (cached) text encode of every prompt."""
    texts = prompt_set.all_texts(with_negatives=negatives)
    table = dict(zip(texts, encode_texts(model, texts, cache)))
    out = []
    for name, entry in prompt_set.classes.items():
        positives = np.stack([table[t] for t in entry.prompts])
        negative = np.stack([table[t] for t in prompt_set.negatives_for(name)]) if negatives else None
        out.append(ClassEmbeddings(positives, negative))
    return out


def score_embeddings(
    image_embeddings: np.ndarray,
    model: ZeroShotModel,
    prompt_set: PromptSet,
    cache: EmbeddingCache | None = None,
    scoring: str | None = None,
    alpha: float | None = None,
) -> np.ndarray:
    """(N, C) probabilities for the classes of ``prompt_set`` (in its order) with its scoring rule and α
    (``scoring``/``alpha`` override them)."""
    rule_name = scoring or prompt_set.scoring
    rule = get_scoring_rule(rule_name)
    classes = class_embeddings(model, prompt_set, cache, negatives=rule_name in NEEDS_NEGATIVES)
    return rule(image_embeddings, classes, prompt_set.alpha if alpha is None else float(alpha), model.logit_scale)


def prompt_set_for_model(
    model: ZeroShotModel, path: str | os.PathLike[str] | None = None, label_space: Any = None
) -> tuple[PromptSet, str]:
    """The prompt set to use and where it came from: ``path`` if given, else the ``prompts.yaml`` saved with the
    model, else the built-in default set for the six unseen findings."""
    if path is not None:
        return load_prompt_set(path, label_space=label_space, allowed="all"), str(path)
    saved = model.default_prompts_path
    if saved is not None:
        return load_prompt_set(saved, label_space=label_space, allowed="all"), str(saved)
    return default_prompt_set(label_space), "built-in default set"


def score_image(
    model: ZeroShotModel,
    image: np.ndarray,
    prompt_set: PromptSet,
    cache: EmbeddingCache | None = None,
    pipeline: ImagePipeline | None = None,
) -> np.ndarray:
    """(C,) probabilities of one decoded radiograph (e.g. an upload: never written to disk or cached) for the
    classes of ``prompt_set``, with its scoring rule and α. Only the prompt embeddings use the cache."""
    pipeline = pipeline or image_pipeline(model)
    tensor = pipeline.from_array(image)
    embedding = model.encode_image_tensor(tensor[None])
    return score_embeddings(embedding, model, prompt_set, cache)[0]


@dataclasses.dataclass
class ZeroShotScorer:
    """A model and one data set's image embeddings, ready to score any prompt set.

    Build it with :meth:`from_paths` (encodes through the cache); then :meth:`score` per prompt edit.
    """

    model: ZeroShotModel
    image_embeddings: np.ndarray
    cache: EmbeddingCache | None = None
    pipeline: ImagePipeline | None = None
    stats: EncodeStats | None = None

    @classmethod
    def from_paths(
        cls,
        model: ZeroShotModel,
        paths: Sequence[str | os.PathLike[str] | Path],
        cache: EmbeddingCache | None = None,
        pipeline: ImagePipeline | None = None,
        **encode_kwargs: Any,
    ) -> ZeroShotScorer:
        """Encode (or fetch from the cache) the images at ``paths``; keyword arguments go to :func:`encode_images`."""
        pipeline = pipeline or image_pipeline(model)
        stats = EncodeStats()
        embeddings = encode_images(model, paths, pipeline=pipeline, cache=cache, stats=stats, **encode_kwargs)
        return cls(model, embeddings, cache, pipeline, stats)

    def score(self, prompt_set: PromptSet, scoring: str | None = None, alpha: float | None = None) -> np.ndarray:
        """(N, C) probabilities, classes in ``prompt_set`` order."""
        if self.image_embeddings.shape[0] == 0:
            raise InputError("no images to score")
        return score_embeddings(self.image_embeddings, self.model, prompt_set, self.cache, scoring, alpha)


def evaluate_scores(
    ids: Sequence[str], scores: np.ndarray, class_names: Sequence[str], labels: Any, name: str = "zero-shot"
) -> dict[str, Any]:
    """:func:`cxrlt_core.metrics.compute_report` of ``scores`` against a labels :class:`Manifest` (matched by id),
    plus ``chance`` (mean prevalence of the scored classes, the AP of a random ranking), ``lift`` (mAP / chance)
    and ``above_chance`` (classes whose AP exceeds their prevalence)."""
    pred = Predictions(ids=np.asarray(ids, dtype=object), scores=np.asarray(scores), classes=tuple(class_names))
    pred.path = Path(name)
    aligned, y, classes = align_to_labels(pred, labels)
    report = compute_report(y, aligned, list(classes))
    per_class = report["per_class"]
    scored = [c for c in classes if c not in report["skipped"]]
    prevalences = [per_class[c]["prevalence"] for c in scored]
    chance = float(np.mean(prevalences)) if prevalences else float("nan")
    report["chance"] = chance
    report["lift"] = float(report["mAP"] / chance) if prevalences and chance > 0 else float("nan")
    report["above_chance"] = [c for c in scored if per_class[c]["ap"] > per_class[c]["prevalence"]]
    return report


def format_zero_shot_table(report: dict[str, Any], title: str = "") -> str:
    """Per class: positives, prevalence (chance AP), AP, AP / prevalence, AUC; then the macro line."""
    per_class = report["per_class"]
    width = max([len("class")] + [len(c) for c in per_class])
    header = f"{'class':<{width}}  {'n_pos':>5}  {'chance':>6}  {'AP':>6}  {'AP/ch':>6}  {'AUC':>6}"
    lines = ([title] if title else []) + [header, "-" * len(header)]

    def cell(value: float, digits: int = 3) -> str:
        return "-" if value is None or value != value else f"{value:.{digits}f}"

    for name, row in per_class.items():
        ratio = row["ap"] / row["prevalence"] if row["prevalence"] else float("nan")
        lines.append(
            f"{name:<{width}}  {row['n_pos']:>5d}  {cell(row['prevalence']):>6}  {cell(row['ap']):>6}  "
            f"{cell(ratio, 2):>6}  {cell(row['auc']):>6}"
        )
    lines.append("-" * len(header))
    evaluated = len(per_class) - len(report["skipped"])
    lines.append(
        f"macro over {evaluated} classes: mAP {cell(report['mAP'], 4)} vs chance {cell(report['chance'], 4)}"
        f" ({cell(report['lift'], 2)}x), mAUC {cell(report['mAUC'], 4)}, above chance on"
        f" {len(report['above_chance'])} of {evaluated}"
    )
    return "\n".join(lines)


@dataclasses.dataclass
class ZeroShotPrediction:
    """What :func:`predict_zero_shot` scored and wrote."""

    path: Path
    scores: np.ndarray
    prompt_set: PromptSet
    prompts_source: str
    scorer: ZeroShotScorer
    metadata: dict[str, Any]


def predict_zero_shot(
    model: ZeroShotModel | str,
    manifest: Any,
    out_path: str | os.PathLike[str],
    prompts: str | os.PathLike[str] | None = None,
    label_space: Any = None,
    scoring: str | None = None,
    alpha: float | None = None,
    preprocess: str = "open_clip",
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: Any = None,
    show_progress: bool = False,
) -> ZeroShotPrediction:
    """Score every image of ``manifest`` for a prompt set's classes and write a predictions file with provenance.

    The one path behind ``cxrlt zeroshot predict`` and the Export page. ``model`` is a loaded model or a spec;
    ``prompts`` a prompt-set YAML (default: the set saved with the model, else the built-in set); image embeddings
    are cached under ``cache_dir`` when given. The label space is ``label_space``, else the prompt set's, else the
    one the manifest's data set names.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    model = load_model(model) if isinstance(model, str) else model
    prompt_set, source = prompt_set_for_model(model, prompts, label_space=as_label_space(label_space))
    space = as_label_space(label_space) or as_label_space(prompt_set.label_space)
    data_space = getattr(manifest, "label_space", None)
    if space is None and data_space is not None and data_space.classes:
        space = data_space  # the set names none: the space the images' data set names
        prompt_set, source = prompt_set_for_model(model, prompts, label_space=space)
    if space is None:
        raise InputError(f"prompt set {source} names no label space: add label_space to it or give one")
    prompt_set = prompt_set.ordered(space.classes).with_settings(scoring=scoring, alpha=alpha)
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    pipeline = image_pipeline(model, preprocess)
    paths = [manifest.image_path(i) for i in range(len(manifest))]
    scorer = ZeroShotScorer.from_paths(
        model, paths, cache=cache, pipeline=pipeline, batch_size=batch_size, num_workers=num_workers,
        progress=progress, show_progress=show_progress,
    )  # fmt: skip
    scores = scorer.score(prompt_set)
    metadata: dict[str, Any] = {
        "task": 2,
        "kind": "zero-shot",
        **model.describe(),
        "pipeline": pipeline.to_dict(),
        "prompts_source": source,
        "prompt_set": prompt_set.to_dict(),
        "scoring": prompt_set.scoring,
        "alpha": prompt_set.alpha,
        "label_space": space.to_dict(),
    }
    write_predictions(out_path, manifest.ids, scores, list(prompt_set.class_names), metadata)
    return ZeroShotPrediction(Path(out_path), scores, prompt_set, source, scorer, metadata)
