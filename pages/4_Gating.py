"""Gating: tune normal gating's α live, see calibration and per-class thresholds take effect, save the choice."""

from __future__ import annotations

import time

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core.inference.calibration import CALIBRATORS
from cxrlt_core.inference.gating import GATING_FORMS, normal_gating
from cxrlt_core.metrics import compute_report
from cxrlt_core.postprocess_study import (
    PostprocessChoice,
    alpha_range,
    gating_sweep,
    has_normal,
    per_class_delta,
    study_stages,
    summary,
    sweep_alphas,
)
from cxrlt_core.workspace import check_name
from cxrlt_dashboard import loaders
from cxrlt_dashboard.common import cli_hint, dataset_csvs, error_box, mtime, page_setup, pick
from cxrlt_dashboard.common import prediction_files as prediction_files_of

workspace = page_setup("Gating and calibration")
prediction_files = prediction_files_of(workspace)
csvs = dataset_csvs(workspace)
if not prediction_files or not csvs:
    st.info("No predictions or labelled data sets in this workspace yet.")
    st.stop()

st.caption("Calibration and thresholds are fitted on the validation split and evaluated on the evaluation split.")
c1, c2 = st.columns(2)
with c1:
    eval_pred = pick("Evaluation predictions", prediction_files, "g_ep", prefer=("test.parquet",))
    val_pred = pick("Validation predictions", prediction_files, "g_vp", prefer=("val.parquet",))
with c2:
    eval_labels = pick("Evaluation labels", csvs, "g_el", prefer=("test_labels.csv",))
    val_labels = pick("Validation labels", csvs, "g_vl", prefer=("val_labels.csv", "val.csv"))
eval_name, val_name = (str(p.relative_to(workspace.root)) for p in (eval_pred, val_pred))


def _aligned(pred_path, labels_path):
    result = loaders.evaluation(str(pred_path), mtime(pred_path), str(labels_path), mtime(labels_path), None, 0.0)
    return result.scores, result.labels, result.classes


try:
    scores, labels, classes = _aligned(eval_pred, eval_labels)
    v_scores, v_labels, v_classes = _aligned(val_pred, val_labels)
except Exception as exc:  # noqa: BLE001 - shown in the page
    error_box(exc)
    st.stop()
if tuple(v_classes) != tuple(classes):
    st.error("The validation and evaluation predictions have different classes; pick files of the same model.")
    st.stop()

st.subheader("Normal gating")
if not has_normal(classes):
    st.warning("These classes have no Normal class: gating is a no-op.")
g1, g2 = st.columns([3, 1])
form = g2.radio("Form", GATING_FORMS.names(), horizontal=True)
low, high = alpha_range(form)  # the linear form needs α ≤ 1 to keep probabilities non-negative
alpha = g1.slider(
    "α", low, high, min(0.5, high), 0.05, help="p_c ← p_c·(1 − p_Normal)^α (power) or p_c·(1 − α·p_Normal) (linear)"
)

started = time.perf_counter()
base = compute_report(labels, scores, list(classes))
gated_scores = normal_gating(scores, classes, alpha=alpha, form=form)
gated = compute_report(labels, gated_scores, list(classes))
elapsed_ms = 1000 * (time.perf_counter() - started)
cols = st.columns(4)
for col, key in zip(cols, ("mAP", "mAUC", "mF1", "mECE")):
    col.metric(key, f"{gated[key]:.4f}", f"{gated[key] - base[key]:+.4f} vs no gating", delta_color="off")
st.caption(f"{len(scores):,} images × {len(classes)} classes, re-scored in {elapsed_ms:.0f} ms.")


@st.cache_data(show_spinner="Sweeping α…", max_entries=16)
def _sweep(key: tuple, form: str):
    return gating_sweep(scores, labels, classes, sweep_alphas(form), form)


sweep = _sweep((str(eval_pred), str(eval_labels), mtime(eval_pred), mtime(eval_labels)), form)
curve = go.Figure()
for metric in ("mAP", "mAUC", "mF1", "mECE"):
    curve.add_scatter(x=sweep["alpha"], y=sweep[metric], name=metric, mode="lines+markers")
curve.add_vline(x=alpha, line_dash="dot")
curve.update_layout(height=320, margin=dict(t=10, b=10), xaxis_title="α", legend=dict(orientation="h"))
st.plotly_chart(curve, key="alpha_curve")

delta = per_class_delta(base, gated, "ap")
delta_fig = px.bar(delta, x="class", y="delta", title="Per-class AP change from gating")
delta_fig.update_layout(height=300, margin=dict(t=30, b=10), xaxis_tickangle=-45, xaxis_title=None)
st.plotly_chart(delta_fig, key="gating_delta")

st.subheader("Calibration and thresholds")
k1, k2 = st.columns(2)
method = k1.selectbox("Calibration (fitted on validation)", ["none", *CALIBRATORS.names()], index=1)
tune = k2.checkbox("Per-class F1-optimal thresholds (fitted on validation)", value=True)
try:
    stages = study_stages(
        v_scores, v_labels, scores, labels, classes, gating_alpha=alpha, gating_form=form,
        calibration_method=None if method == "none" else method, tune_thresholds=tune,
    )  # fmt: skip
except Exception as exc:  # noqa: BLE001
    error_box(exc)
    st.stop()
st.dataframe(stages.table().style.format(precision=4), hide_index=True)
if stages.thresholds is not None:
    thr = stages.thresholds
    st.dataframe(
        {"class": list(thr.classes), "threshold": thr.thresholds, "val F1": thr.f1_validation},
        hide_index=True,
        height=240,
    )
final = stages.reports[list(stages.reports)[-1]]
st.caption("Final stage vs uncalibrated: " + ", ".join(f"{k} {v:.4f}" for k, v in summary(final).items()))

st.subheader("Save this choice")
s1, s2 = st.columns([3, 1])
name = s1.text_input("Name", "demo_postprocess")
if s2.button("Save", type="primary"):
    try:
        check_name(name, "post-processing name")
        choice = PostprocessChoice(
            alpha, form, None if method == "none" else method, tune, fitted_on={"predictions": val_name}
        )
        path = choice.save(workspace.postprocess_dir, name, stages.calibration, stages.thresholds)
        st.success(f"Saved {path.relative_to(workspace.root)}")
    except Exception as exc:  # noqa: BLE001
        error_box(exc)
vp, vl = val_pred, val_labels
cmd = f"cxrlt calibrate --pred {vp} --labels {vl} --method {method} --out cal.json && "
cmd += f"cxrlt thresholds --pred {vp} --labels {vl} --out thr.json"
cli_hint(cmd if method != "none" else f"cxrlt thresholds --pred {vp} --labels {vl} --out thr.json")
