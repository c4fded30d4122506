"""Prompts: edit the zero-shot prompts of the unseen findings and see per-class AP change live."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core.errors import CxrltError
from cxrlt_core.metrics import compute_report
from cxrlt_core.zeroshot.prompts import PromptStore, default_prompt_set, parse_prompt_set
from cxrlt_core.zeroshot.scoring import list_scoring_rules
from cxrlt_dashboard import loaders, zeroshot_ui
from cxrlt_dashboard.common import cli_hint, dataset_csvs, error_box, mtime, page_setup

workspace = page_setup("Zero-shot prompts")
store = PromptStore(workspace.prompts_dir)
models = workspace.list_models()
csvs = dataset_csvs(workspace)

c1, c2, c3 = st.columns(3)
model_choices = [f"local-dir:{workspace.models_dir / m}" for m in models] + ["(other spec)"]
model_choice = c1.selectbox("Model", model_choices, key="p_model")
spec = c2.text_input("Model spec", "hf-hub:yyupenn/whyxrayclip") if model_choice == "(other spec)" else model_choice
set_names = store.names()
set_name = c3.selectbox("Prompt set", [*set_names, "(new from the built-in default)"], key="p_set")
label_names = list(csvs)
labels_name = st.selectbox(
    "Labelled images (with unseen-finding columns)",
    label_names,
    index=next((i for i, n in enumerate(label_names) if n.endswith("test_labels.csv")), 0),
    key="p_labels",
) if label_names else None  # fmt: skip
if labels_name is None:
    st.info("This workspace has no labelled data set.")
    st.stop()

try:
    saved = store.load(set_name) if set_name in set_names else default_prompt_set()
    model = zeroshot_ui.model(spec)
except CxrltError as exc:
    error_box(exc)
    st.stop()

labels_path = csvs[labels_name]
manifest = loaders.manifest(str(labels_path), mtime(labels_path), "cxrlt2026")
unseen = [c for c in saved.class_names if c in manifest.classes]
if not unseen:
    st.error(f"{labels_name} has none of the prompt set's classes ({', '.join(saved.class_names)}) as label columns.")
    st.stop()
scorer = zeroshot_ui.scorer(spec, str(labels_path), mtime(labels_path), str(workspace.cache_dir))

# The working copy of the prompts lives in the session until it is saved as a new version.
state_key = f"prompts::{set_name}::{spec}"
if state_key not in st.session_state:
    st.session_state[state_key] = {name: list(entry.prompts) for name, entry in saved.classes.items()}
working: dict[str, list[str]] = st.session_state[state_key]

s1, s2 = st.columns(2)
rules = list_scoring_rules()
scoring = s1.selectbox("Scoring rule", rules, index=rules.index(saved.scoring) if saved.scoring in rules else 0)
alpha = s2.number_input("α (sigmoid sharpness)", 0.1, 200.0, float(saved.alpha), 0.5)

st.subheader("Prompts per class")
tabs = st.tabs(list(working))
for tab, name in zip(tabs, list(working)):
    with tab:
        edited = st.data_editor(
            pd.DataFrame({"prompt": working[name]}),
            num_rows="dynamic",
            hide_index=True,
            key=f"editor::{state_key}::{name}",
            column_config={"prompt": st.column_config.TextColumn("prompt", width="large")},
        )
        working[name] = [str(p).strip() for p in edited["prompt"].tolist() if isinstance(p, str) and p.strip()]

candidate_data = saved.to_dict()
candidate_data.update(scoring=scoring, alpha=float(alpha), model=spec)
for name, prompts in working.items():
    candidate_data["classes"][name] = {**candidate_data["classes"].get(name, {}), "prompts": prompts}
try:
    candidate = parse_prompt_set(candidate_data, source="edited prompt set", label_space="cxrlt2026")
except CxrltError as exc:
    error_box(exc)
    st.stop()

started = time.perf_counter()
probs = scorer.score(candidate, scoring=scoring, alpha=alpha)
columns = [manifest.classes.index(c) for c in candidate.class_names if c in manifest.classes]
scored = [c for c in candidate.class_names if c in manifest.classes]
y = manifest.labels[:, columns]
p = probs[:, [candidate.class_names.index(c) for c in scored]]
report = compute_report(y, p, scored)
elapsed = 1000 * (time.perf_counter() - started)
m1, m2, m3 = st.columns(3)
m1.metric("Unseen mAP", f"{report['mAP']:.4f}")
m2.metric("Unseen mAUC", f"{report['mAUC']:.4f}")
chance = float(np.nanmean([report["per_class"][c]["prevalence"] for c in scored]))
m3.metric("Chance (mean prevalence)", f"{chance:.4f}")
st.caption(f"{len(p):,} cached image embeddings re-scored in {elapsed:.0f} ms.")
table = pd.DataFrame(
    [
        {"class": c, "n_pos": r["n_pos"], "prevalence": r["prevalence"], "AP": r["ap"], "AUC": r["auc"]}
        for c, r in report["per_class"].items()
    ]
)
st.dataframe(table.style.format(precision=3, na_rep="–"), hide_index=True)

chosen = st.selectbox("Score distribution of", scored, key="p_dist")
j = scored.index(chosen)
known = ~np.isnan(y[:, j])
hist = go.Figure()
hist.add_histogram(x=p[known & (y[:, j] == 0), j], name="negatives", opacity=0.6, histnorm="probability density")
hist.add_histogram(x=p[known & (y[:, j] == 1), j], name="positives", opacity=0.6, histnorm="probability density")
hist.update_layout(barmode="overlay", height=300, margin=dict(t=10, b=10), xaxis_title=f"p({chosen})")
st.plotly_chart(hist, key="score_hist")

st.subheader("Save and history")
v1, v2, v3 = st.columns([2, 2, 1])
target = v1.text_input("Save as prompt set", set_name if set_name in set_names else "my_prompts")
note = v2.text_input("Note", "")
if v3.button("Save new version", type="primary"):
    try:
        version = store.save(target, candidate, note=note)
        st.success(f"Saved {target} {version.label}")
    except CxrltError as exc:
        error_box(exc)
if set_name in set_names:
    versions = store.versions(set_name)
    st.dataframe(
        pd.DataFrame(
            [{"version": v.label, "saved": v.saved_at, "note": v.note, "current": v.current} for v in versions]
        ),
        hide_index=True,
    )
    if len(versions) > 1:
        labels = [v.label for v in versions]
        h1, h2 = st.columns([3, 1])
        old = h1.selectbox("Compare the current version with", labels[:-1], key="p_old")
        number = versions[labels.index(old)].number
        st.code(store.unified_diff(set_name, number) or "(identical)", language="diff")
        if h2.button(f"Revert to {old}"):
            store.revert(set_name, number)
            st.session_state.pop(state_key, None)
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
