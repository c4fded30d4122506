"""Zero-shot scoring of unseen findings (CXR-LT Task 2) with open_clip models.

- :mod:`~cxrlt_core.zeroshot.loading`: one spec string for any open_clip model (hf-hub, ARCH:TAG, local-dir, file).
- :mod:`~cxrlt_core.zeroshot.prompts`: prompt-set YAML, validation, version history.
- :mod:`~cxrlt_core.zeroshot.scoring`: the scoring-rule registry (mean_cosine, mean_embedding, pos_neg_softmax).
- :mod:`~cxrlt_core.zeroshot.cache`: on-disk image and text embedding caches.
- :mod:`~cxrlt_core.zeroshot.encode`: batched image/text encoding through the caches.
- :mod:`~cxrlt_core.zeroshot.predict`: prompt set + embeddings -> probabilities; fast re-scoring.
- :mod:`~cxrlt_core.zeroshot.demo_clip`: train the small demo CLIP offline with open_clip's model and loss code.

Names are loaded on first use (``from cxrlt_core.zeroshot import load_model`` imports the loading module then), so
that the prompt, scoring and cache modules stay cheap to import: encoding and loading import torch and open_clip.
"""

from __future__ import annotations

from cxrlt_core.lazy import lazy_exports

_EXPORTS = {
    "EmbeddingCache": "cxrlt_core.zeroshot.cache",
    "content_hash": "cxrlt_core.zeroshot.cache",
    "ImagePipeline": "cxrlt_core.zeroshot.encode",
    "encode_images": "cxrlt_core.zeroshot.encode",
    "encode_texts": "cxrlt_core.zeroshot.encode",
    "image_pipeline": "cxrlt_core.zeroshot.encode",
    "ModelSpec": "cxrlt_core.zeroshot.loading",
    "ZeroShotModel": "cxrlt_core.zeroshot.loading",
    "load_model": "cxrlt_core.zeroshot.loading",
    "parse_model_spec": "cxrlt_core.zeroshot.loading",
    "ZeroShotScorer": "cxrlt_core.zeroshot.predict",
    "class_embeddings": "cxrlt_core.zeroshot.predict",
    "prompt_set_for_model": "cxrlt_core.zeroshot.predict",
    "score_embeddings": "cxrlt_core.zeroshot.predict",
    "ClassPrompts": "cxrlt_core.zeroshot.prompts",
    "PromptSet": "cxrlt_core.zeroshot.prompts",
    "PromptStore": "cxrlt_core.zeroshot.prompts",
    "default_prompt_set": "cxrlt_core.zeroshot.prompts",
    "demo_prompt_set": "cxrlt_core.zeroshot.prompts",
    "diff_prompt_sets": "cxrlt_core.zeroshot.prompts",
    "dump_prompt_set": "cxrlt_core.zeroshot.prompts",
    "load_prompt_set": "cxrlt_core.zeroshot.prompts",
    "loads_prompt_set": "cxrlt_core.zeroshot.prompts",
    "save_prompt_set": "cxrlt_core.zeroshot.prompts",
    "SCORING_RULES": "cxrlt_core.zeroshot.scoring",
    "ClassEmbeddings": "cxrlt_core.zeroshot.scoring",
    "get_scoring_rule": "cxrlt_core.zeroshot.scoring",
    "list_scoring_rules": "cxrlt_core.zeroshot.scoring",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
