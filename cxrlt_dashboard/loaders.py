"""Cached loads of workspace files; keys include each file's modification time so rewritten files reload."""

from __future__ import annotations

import streamlit as st

from cxrlt_core.data.manifest import Manifest, read_manifest
from cxrlt_core.evaluation import Evaluation, evaluate
from cxrlt_core.labels import LabelSpace
from cxrlt_core.predictions import Predictions, read_predictions


@st.cache_data(show_spinner=False, max_entries=32)
def predictions(path: str, mtime: float) -> Predictions:
    """A predictions file (``mtime`` only keys the cache)."""
    return read_predictions(path)


@st.cache_data(show_spinner=False, max_entries=32)
def manifest(
    path: str, mtime: float, label_space: LabelSpace | str | None = None, require_labels: bool = True
) -> Manifest:
    """A labels CSV read into a manifest."""
    return read_manifest(path, label_space=label_space, require_labels=require_labels)


@st.cache_data(show_spinner="Scoring…", max_entries=32)
def evaluation(
    pred_path: str,
    pred_mtime: float,
    labels_path: str,
    labels_mtime: float,
    train_path: str | None,
    train_mtime: float,
    bootstrap: int = 0,
    threshold: float = 0.5,
) -> Evaluation:
    """The challenge report of one predictions file against one labels file (plus training buckets)."""
    pred = predictions(pred_path, pred_mtime)
    labels = manifest(labels_path, labels_mtime)
    train = manifest(train_path, train_mtime, labels.label_space) if train_path else None
    return evaluate(pred, labels, train, threshold=threshold, bootstrap=bootstrap)
