"""Cached zero-shot resources: a loaded CLIP model and a data set's image embeddings, shared across reruns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.workspace_summary import csv_label_space
from cxrlt_core.zeroshot.cache import EmbeddingCache
from cxrlt_dashboard.common import image_folder

if TYPE_CHECKING:
    from cxrlt_core.zeroshot.loading import ZeroShotModel
    from cxrlt_core.zeroshot.predict import ZeroShotScorer


@st.cache_resource(show_spinner="Loading the CLIP model…", max_entries=4)
def model(spec: str) -> ZeroShotModel:
    """The open_clip model named by ``spec`` (``local-dir:…``, ``hf-hub:…``, ``ARCH:TAG``)."""
    from cxrlt_core.zeroshot.loading import load_model  # torch and open_clip: only once a model is asked for

    return load_model(spec)


@st.cache_resource(show_spinner="Embedding the images (cached on disk after the first time)…", max_entries=8)
def scorer(spec: str, labels_path: str, labels_mtime: float, cache_dir: str) -> ZeroShotScorer:
    """Image embeddings of every image of a labels CSV (images in ``images/`` beside it), ready to score prompts."""
    from cxrlt_core.zeroshot.predict import ZeroShotScorer  # torch: only once images are embedded

    space = csv_label_space(labels_path)  # the data set's own classes: rows must match the page's manifest
    manifest = read_manifest(labels_path, image_root=image_folder(labels_path), label_space=space, require_labels=False)
    paths = [manifest.image_path(i) for i in range(len(manifest))]
    return ZeroShotScorer.from_paths(model(spec), paths, cache=EmbeddingCache(cache_dir), show_progress=False)
