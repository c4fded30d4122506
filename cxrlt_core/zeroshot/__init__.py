"""Zero-shot scoring of unseen findings (CXR-LT Task 2) with open_clip models.

- :mod:`~cxrlt_core.zeroshot.loading`: one spec string for any open_clip model (hf-hub, ARCH:TAG, local-dir, file).
- :mod:`~cxrlt_core.zeroshot.prompts`: prompt-set YAML, validation, version history.
- :mod:`~cxrlt_core.zeroshot.scoring`: the scoring-rule registry (mean_cosine, mean_embedding, pos_neg_softmax).
- :mod:`~cxrlt_core.zeroshot.cache`: on-disk image and text embedding caches.
- :mod:`~cxrlt_core.zeroshot.encode`: batched image/text encoding through the caches.
- :mod:`~cxrlt_core.zeroshot.predict`: prompt set + embeddings -> probabilities; fast re-scoring.
- :mod:`~cxrlt_core.zeroshot.demo_clip`: train the small demo CLIP offline with open_clip's model and loss code.

Nothing here imports torch or open_clip at import time.
"""

from cxrlt_core.zeroshot.cache import EmbeddingCache, content_hash
from cxrlt_core.zeroshot.encode import ImagePipeline, encode_images, encode_texts, image_pipeline
from cxrlt_core.zeroshot.loading import ModelSpec, ZeroShotModel, load_model, parse_model_spec
from cxrlt_core.zeroshot.predict import ZeroShotScorer, class_embeddings, prompt_set_for_model, score_embeddings
from cxrlt_core.zeroshot.prompts import (
    ClassPrompts,
    PromptSet,
    PromptStore,
    default_prompt_set,
    demo_prompt_set,
    diff_prompt_sets,
    dump_prompt_set,
    load_prompt_set,
    loads_prompt_set,
    save_prompt_set,
)
from cxrlt_core.zeroshot.scoring import SCORING_RULES, ClassEmbeddings, get_scoring_rule, list_scoring_rules

__all__ = [
    "SCORING_RULES",
    "ClassEmbeddings",
    "ClassPrompts",
    "EmbeddingCache",
    "ImagePipeline",
    "ModelSpec",
    "PromptSet",
    "PromptStore",
    "ZeroShotModel",
    "ZeroShotScorer",
    "class_embeddings",
    "content_hash",
    "default_prompt_set",
    "demo_prompt_set",
    "diff_prompt_sets",
    "dump_prompt_set",
    "encode_images",
    "encode_texts",
    "get_scoring_rule",
    "image_pipeline",
    "list_scoring_rules",
    "load_model",
    "load_prompt_set",
    "loads_prompt_set",
    "parse_model_spec",
    "prompt_set_for_model",
    "save_prompt_set",
    "score_embeddings",
]
