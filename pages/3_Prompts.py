"""Prompts: edit the zero-shot prompts of the unseen findings and see each class's AP change live."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core.errors import CxrltError
from cxrlt_core.workspace_summary import csv_label_space
from cxrlt_core.zeroshot.prompt_eval import class_table, edited_prompt_set, score_prompt_set, version_metrics
from cxrlt_core.zeroshot.prompts import PromptStore, default_prompt_set, diff_prompt_sets, dump_prompt_set
from cxrlt_core.zeroshot.scoring import list_scoring_rules
from cxrlt_dashboard import loaders, zeroshot_ui
from cxrlt_dashboard.common import cli_hint, dataset_csvs, error_box, mtime, page_setup, pick

workspace = page_setup("Zero-shot prompts")
store = PromptStore(workspace.prompts_dir)
csvs = dataset_csvs(workspace)
if not csvs:
    st.info("This workspace has no labelled data set.")
    st.stop()

c1, c2, c3 = st.columns(3)
model_choices = {m: f"local-dir:{workspace.models_dir / m}" for m in workspace.list_models()}
model_choice = c1.selectbox("Model", [*model_choices, "(other spec)"], key="p_model")
spec = model_choices.get(model_choice) or c2.text_input("Model spec", "hf-hub:yyupenn/whyxrayclip", key="p_spec")
set_names = store.names()
BUILT_IN = "(new from the built-in default)"
if st.session_state.get("p_set_next") in set_names:  # a set saved under a new name opens next
    st.session_state["p_set"] = st.session_state.pop("p_set_next")
set_name = c3.selectbox("Prompt set", [*set_names, BUILT_IN], key="p_set")
labels_path = pick("Labelled images (with unseen-finding columns)", csvs, "p_labels", prefer=("test_labels.csv",))
labels_name = str(labels_path.relative_to(workspace.datasets_dir))

try:
    space = csv_label_space(labels_path)
    manifest = loaders.manifest(str(labels_path), mtime(labels_path), space)
    saved = store.load(set_name, allowed="all") if set_name in set_names else default_prompt_set(space)
except CxrltError as exc:
    st.info(f"No prompt set for the classes of {labels_name}: {exc}")
    st.stop()
if not any(c in manifest.classes for c in saved.class_names):
    st.info(f"{labels_name} has none of the prompt set's classes ({', '.join(saved.class_names)}) as label columns.")
    st.stop()
try:
    scorer = zeroshot_ui.scorer(spec, str(labels_path), mtime(labels_path), str(workspace.cache_dir))
except CxrltError as exc:
    error_box(exc)
    st.stop()

s1, s2 = st.columns(2)
rules = list_scoring_rules()
scoring = s1.selectbox("Scoring rule", rules, index=rules.index(saved.scoring) if saved.scoring in rules else 0)
alpha = s2.number_input("α (sigmoid sharpness)", 0.1, 200.0, float(saved.alpha), 0.5)

# Each class's editor starts from the saved prompts and keeps its own edits (Streamlit stores them under the
# editor's key). Its input must never be rebuilt from its output: that made every second edit vanish. A save or a
# revert starts new editors (a new generation in the key) from the new saved version.
scope = f"{set_name}::{spec}"
generation = st.session_state.setdefault(f"prompts_generation::{scope}", 0)
st.subheader("Prompts per class")
prompts: dict[str, list[str]] = {}
for tab, name in zip(st.tabs(list(saved.class_names)), saved.class_names):
    with tab:
        frame_key = f"prompts_frame::{scope}::{name}::{generation}"
        if frame_key not in st.session_state:
            st.session_state[frame_key] = pd.DataFrame({"prompt": list(saved.classes[name].prompts)})
        edited = st.data_editor(
            st.session_state[frame_key],
            num_rows="dynamic",
            hide_index=True,
            key=f"editor::{scope}::{name}::{generation}",
            column_config={"prompt": st.column_config.TextColumn("prompt", width="large")},
        )
        prompts[name] = [p for p in edited["prompt"].tolist() if isinstance(p, str)]

try:
    candidate = edited_prompt_set(saved, prompts, scoring, alpha, spec)
except CxrltError as exc:
    error_box(exc)
    st.stop()
changes = [line for line in diff_prompt_sets(saved, candidate) if not line.startswith("~ model")]
with st.expander(f"Unsaved changes ({len(changes)})", expanded=bool(changes)):
    st.code("\n".join(changes) or "(none)", language="diff")


def _saved_scores():
    """The saved version's scores (its own scoring rule and α), kept for the session: they change only on save."""
    key = ("prompts_saved_scores", dump_prompt_set(saved), spec, str(labels_path), mtime(labels_path))
    cache = st.session_state.setdefault("prompts_saved_cache", {})
    if key not in cache:
        cache.clear()
        cache[key] = score_prompt_set(scorer, saved, manifest.classes, manifest.labels)
    return cache[key]


started = time.perf_counter()
current = score_prompt_set(scorer, candidate, manifest.classes, manifest.labels, scoring=scoring, alpha=alpha)
before = _saved_scores()
elapsed = 1000 * (time.perf_counter() - started)
m1, m2, m3 = st.columns(3)
m1.metric("Unseen mAP", f"{current.report['mAP']:.5f}", f"{current.report['mAP'] - before.report['mAP']:+.5f} vs saved")
m2.metric("Unseen mAUC", f"{current.report['mAUC']:.5f}")
m3.metric("Chance (mean prevalence)", f"{current.chance:.5f}")
st.caption(f"{len(current.scores):,} cached image embeddings re-scored in {elapsed:.0f} ms.")
table = pd.DataFrame(class_table(current, before))
st.dataframe(
    table.style.format(
        {"prevalence": "{:.4f}", "AP": "{:.5f}", "AP saved": "{:.5f}", "ΔAP": "{:+.5f}", "AUC": "{:.4f}"}, na_rep="–"
    ),
    hide_index=True,
)

chosen = st.selectbox("Score distribution of", current.classes, key="p_dist")
j = current.classes.index(chosen)
y, p = current.labels[:, j], current.scores[:, j]
known = ~np.isnan(y)
hist = go.Figure()
hist.add_histogram(x=p[known & (y == 0)], name="negatives", opacity=0.6, histnorm="probability density")
hist.add_histogram(x=p[known & (y == 1)], name="positives", opacity=0.6, histnorm="probability density")
hist.update_layout(barmode="overlay", height=300, margin=dict(t=30, b=10), xaxis_title=f"p({chosen})",
                   title=f"{chosen}: AP {current.ap(chosen):.5f}")  # fmt: skip
st.plotly_chart(hist, key=f"score_hist::{chosen}")  # one chart per class, so that it always shows the chosen one

st.subheader("Save and history")
v1, v2, v3 = st.columns([2, 2, 1])
target = v1.text_input("Save as prompt set", set_name if set_name in set_names else "my_prompts")
note = v2.text_input("Note", "")
if v3.button("Save new version", type="primary"):
    try:
        version = store.save(target, candidate, note=note, metrics=version_metrics(current, labels_name, spec))
        st.session_state[f"prompts_generation::{scope}"] = generation + 1
        st.success(f"Saved {target} {version.label} (mAP {current.report['mAP']:.5f})")
        if target != set_name:
            st.session_state["p_set_next"] = target
        st.rerun()
    except CxrltError as exc:
        error_box(exc)
if set_name in set_names:
    versions = store.versions(set_name)
    history = []
    for v in versions:
        figures = v.metrics or {}
        history.append(
            {"version": v.label, "saved": v.saved_at, "note": v.note, "current": v.current,
             "mAP": figures.get("mAP"), "chance": figures.get("chance"), "scored on": figures.get("labels")}
        )  # fmt: skip
    st.dataframe(pd.DataFrame(history).style.format({"mAP": "{:.5f}", "chance": "{:.5f}"}, na_rep="–"), hide_index=True)
    if len(versions) > 1:
        labels = [v.label for v in versions]
        h1, h2 = st.columns([3, 1])
        old = h1.selectbox("Compare the current version with", labels[:-1], key="p_old")
        number = versions[labels.index(old)].number
        st.code(store.unified_diff(set_name, number) or "(identical)", language="diff")
        if h2.button(f"Revert to {old}"):
            store.revert(set_name, number)
            st.session_state[f"prompts_generation::{scope}"] = generation + 1
            st.rerun()
try:  # the name is checked as it is typed: an invalid one is a message, never a crash
    prompts_path = f"{store.folder(target) / 'current'}…"
except CxrltError as exc:
    error_box(exc)
    prompts_path = "PROMPTS.yaml"
cli_hint(
    f"cxrlt zeroshot predict --model {spec} --prompts {prompts_path} "
    f"--labels {labels_path} --images {labels_path.parent / 'images'} --out zs.csv --eval-labels {labels_path}"
)
