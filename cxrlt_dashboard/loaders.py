"""Cached loads of workspace files; keys include each file's modification time so rewritten files reload."""

from __future__ import annotations

import streamlit as st

from cxrlt_core.audit import AuditResult, audit
from cxrlt_core.comparison import Comparison, compare
from cxrlt_core.data.manifest import Manifest, read_manifest
from cxrlt_core.evaluation import Evaluation, evaluate, resampling_clusters
from cxrlt_core.labels import LabelSpace
from cxrlt_core.predictions import Predictions, align_to_labels, read_predictions
from cxrlt_core.scorers import get_scorer


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
    scorer: str = "cxrlt",
    resample: str = "auto",
) -> Evaluation:
    """The challenge report of one predictions file against one labels file (plus training buckets)."""
    pred = predictions(pred_path, pred_mtime)
    labels = manifest(labels_path, labels_mtime)
    train = manifest(train_path, train_mtime, labels.label_space) if train_path else None
    return evaluate(pred, labels, train, threshold=threshold, bootstrap=bootstrap,
                    scorer=get_scorer(scorer, threshold=threshold), resample=resample)  # fmt: skip


@st.cache_data(show_spinner="Comparing on the same resamples…", max_entries=16)
def comparison(
    pred_a: str, mtime_a: float, pred_b: str, mtime_b: float, labels_path: str, labels_mtime: float,
    train_path: str | None, train_mtime: float, bootstrap: int, threshold: float, scorer: str, resample: str,
) -> Comparison:  # fmt: skip
    """Paired comparison of two predictions files on one labels file (``cxrlt_core.comparison``)."""
    labels = manifest(labels_path, labels_mtime)
    train = manifest(train_path, train_mtime, labels.label_space) if train_path else None
    return compare(predictions(pred_a, mtime_a), predictions(pred_b, mtime_b), labels, train, bootstrap=bootstrap,
                   scorer=get_scorer(scorer, threshold=threshold), resample=resample)  # fmt: skip


@st.cache_data(show_spinner="Auditing subgroups…", max_entries=16)
def subgroup_audit(
    pred_path: str, pred_mtime: float, labels_path: str, labels_mtime: float, by: tuple[str, ...],
    bootstrap: int, threshold: float, resample: str,
) -> AuditResult:  # fmt: skip
    """``cxrlt_core.audit.audit`` of one predictions file on the labels' metadata."""
    labels = manifest(labels_path, labels_mtime)
    scores, y, classes = align_to_labels(predictions(pred_path, pred_mtime), labels)
    clusters, kind = resampling_clusters(labels)
    return audit(y, scores, classes, labels.metadata(), by=by, patients=clusters, thresholds=threshold,
                 normal=labels.label_space.normal, n_resamples=bootstrap, resample=resample,
                 cluster_kind=kind)  # fmt: skip
