"""Results: the challenge's figures for a predictions file, per class and by head / medium / tail, two runs compared."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core.evaluation import compare_reports, per_class_frame
from cxrlt_core.metrics import precision_recall_curve, reliability_curve
from cxrlt_dashboard import loaders
from cxrlt_dashboard.common import cli_hint, dataset_csvs, error_box, mtime, page_setup

BUCKET_COLOURS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728", "": "#7f7f7f"}

workspace = page_setup("Results")
prediction_files = {str(p.relative_to(workspace.root)): p for p in workspace.list_predictions()}
csvs = dataset_csvs(workspace)
if not prediction_files or not csvs:
    st.info("No predictions or labelled data sets in this workspace yet: train a run (Train page) or build the demo.")
    st.stop()


def _default(names: list[str], *suffixes: str) -> int:
    return next((i for s in suffixes for i, n in enumerate(names) if n.endswith(s)), 0)


pred_names = list(prediction_files)
csv_names = list(csvs)
left, middle, right = st.columns(3)
pred_name = left.selectbox("Predictions", pred_names, index=_default(pred_names, "test.parquet"), key="res_pred")
labels_name = middle.selectbox("Labels", csv_names, index=_default(csv_names, "test_labels.csv"), key="res_labels")
train_choice = right.selectbox(
    "Training labels (buckets)", ["(none)", *csv_names], index=1 + _default(csv_names, "train.csv"), key="res_train"
)
bootstrap = st.sidebar.select_slider("Bootstrap resamples (CIs)", [0, 100, 200, 500, 1000], value=200)
threshold = st.sidebar.slider("F1 threshold", 0.05, 0.95, 0.5, 0.05)

pred_path, labels_path = prediction_files[pred_name], csvs[labels_name]
train_path = csvs.get(train_choice)
try:
    result = loaders.evaluation(
        str(pred_path), mtime(pred_path), str(labels_path), mtime(labels_path),
        str(train_path) if train_path else None, mtime(train_path) if train_path else 0.0,
        bootstrap=bootstrap, threshold=threshold,
    )  # fmt: skip
except Exception as exc:  # noqa: BLE001 - shown to the user in the page, nothing is lost
    error_box(exc)
    st.stop()

report = result.report


def _figure(value: float) -> str:
    return "–" if value != value else f"{value:.4f}"


for note in result.notes:
    st.caption(f"Note: {note}")
cols = st.columns(5)
ci = report.get("mAP_ci")
cols[0].metric("mAP", f"{report['mAP']:.4f}", help=f"95 % CI {ci[0]:.3f}–{ci[1]:.3f}" if ci else None)
cols[1].metric("mAUC", f"{report['mAUC']:.4f}")
cols[2].metric(f"mF1 @ {threshold:.2f}", f"{report['mF1']:.4f}")
cols[3].metric("mECE", f"{report['mECE']:.4f}")
cols[4].metric("Images · classes", f"{report['n_images']} · {report['n_classes']}")
if report["skipped"]:
    st.caption(f"Skipped (no positive in these labels): {', '.join(report['skipped'])}")

table = per_class_frame(report)
if "buckets" in report:
    buckets = report["buckets"]
    st.subheader("Head / medium / tail")
    bucket_cols = st.columns(4)
    for col, name in zip(bucket_cols, ("head", "medium", "tail")):
        col.metric(f"{name} ({len(buckets[name]['classes'])} classes)", _figure(buckets[name]["mAP"]))
    bucket_cols[3].metric("Mean of the non-empty ones", _figure(report["mean_of_buckets"]))

st.subheader("Per-class average precision")
ordered = table.sort_values("prevalence", ascending=False)
bar = px.bar(
    ordered, x="class", y="AP", color="bucket", color_discrete_map=BUCKET_COLOURS,
    error_y=(ordered["AP high"] - ordered["AP"]) if ci else None,
    error_y_minus=(ordered["AP"] - ordered["AP low"]) if ci else None,
    hover_data=["n_pos", "prevalence", "AUC"],
)  # fmt: skip
bar.update_layout(xaxis_title=None, height=380, margin=dict(t=10, b=10), xaxis_tickangle=-45)
bar.update_xaxes(categoryorder="array", categoryarray=list(ordered["class"]))
st.plotly_chart(bar, key="ap_bar")
st.dataframe(
    table.drop(columns=["skipped"]).style.format(precision=3, na_rep="–"),
    hide_index=True,
    column_config={"prevalence": st.column_config.NumberColumn(format="%.4f")},
)

st.subheader("Curves for one class")
scored = [c for c in result.classes if report["per_class"][c]["n_pos"] > 0]
chosen = st.selectbox("Class", scored, key="res_class")
j = result.classes.index(chosen)
known = ~np.isnan(result.labels[:, j])
y, s = result.labels[known, j], result.scores[known, j]
curve_left, curve_right = st.columns(2)
precision, recall, _ = precision_recall_curve(y, s)
pr = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", line_shape="hv", name=chosen))
pr.add_hline(y=float(y.mean()), line_dash="dot", annotation_text="prevalence")
pr.update_layout(title=f"Precision–recall · AP {report['per_class'][chosen]['ap']:.3f}", height=340)
pr.update_xaxes(title="recall", range=[0, 1])
pr.update_yaxes(title="precision", range=[0, 1.02])
curve_left.plotly_chart(pr, key="pr_curve")
rel = reliability_curve(y, s)
rel_fig = go.Figure([
    go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", name="perfect"),
    go.Scatter(x=rel.confidence, y=rel.accuracy, mode="lines+markers", name=chosen, text=rel.count),
])  # fmt: skip
rel_fig.update_layout(title=f"Reliability · ECE {report['per_class'][chosen]['ece']:.3f}", height=340)
rel_fig.update_xaxes(title="mean predicted probability", range=[0, 1])
rel_fig.update_yaxes(title="fraction positive", range=[0, 1])
curve_right.plotly_chart(rel_fig, key="rel_curve")

st.subheader("Compare with another predictions file")
# Files of the same split (same file name, e.g. test.parquet of another run) first: they match the labels.
same_split = sorted(
    (n for n in pred_names if n != pred_name), key=lambda n: n.split("/")[-1] != pred_name.split("/")[-1]
)
other = st.selectbox("Second predictions file (B)", ["(none)", *same_split])
if other != "(none)":
    other_path = prediction_files[other]
    try:
        other_result = loaders.evaluation(
            str(other_path), mtime(other_path), str(labels_path), mtime(labels_path),
            str(train_path) if train_path else None, mtime(train_path) if train_path else 0.0,
            bootstrap=0, threshold=threshold,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        error_box(exc)
        st.stop()
    delta = compare_reports(report, other_result.report)
    st.metric("mAP (B − A)", f"{other_result.report['mAP']:.4f}", f"{other_result.report['mAP'] - report['mAP']:+.4f}")
    delta_fig = px.bar(delta, x="class", y="AP delta", color="bucket", color_discrete_map=BUCKET_COLOURS)
    delta_fig.update_layout(height=320, margin=dict(t=10, b=10), xaxis_tickangle=-45, xaxis_title=None)
    st.plotly_chart(delta_fig, key="delta_bar")
    st.dataframe(delta.style.format(precision=3, na_rep="–"), hide_index=True)

cmd = f"cxrlt evaluate --pred {pred_path} --labels {labels_path}"
if train_path:
    cmd += f" --train-labels {train_path}"
cli_hint(cmd + (f" --bootstrap {bootstrap}" if bootstrap else "") + " --json report.json")
