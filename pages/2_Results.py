"""Results: the challenge's figures with patient-clustered intervals, buckets, a paired comparison, subgroups."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core.audit import ATTRIBUTES, MACRO_FIGURES, UNDERDIAGNOSIS
from cxrlt_core.bootstrap import plural
from cxrlt_core.comparison import sorted_deltas
from cxrlt_core.evaluation import (
    PREVALENCE_EVAL,
    PREVALENCE_TRAIN,
    best_val_map,
    bucket_frame,
    order_by_val_map,
    per_class_frame,
)
from cxrlt_core.metrics import precision_recall_curve, reliability_curve
from cxrlt_core.recipes_leaderboard import leaderboard_path, leaderboard_table
from cxrlt_core.scorers import SCORERS
from cxrlt_dashboard import loaders
from cxrlt_dashboard.common import cli_hint, dataset_csvs, error_box, mtime, page_setup

BUCKET_COLOURS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728", "": "#7f7f7f"}

workspace = page_setup("Results")
if leaderboard_path(workspace.root).is_file():
    with st.expander("Recipes on the demo data (benchmarks/recipes_demo.py)"):
        board = leaderboard_table(leaderboard_path(workspace.root))
        st.dataframe(board.style.format(precision=3, na_rep=""), hide_index=True)
        cli_hint("python benchmarks/recipes_demo.py --workspace <workspace> --seeds 0 1 2")
prediction_files = {str(p.relative_to(workspace.root)): p for p in workspace.list_predictions()}
csvs = dataset_csvs(workspace)
if not prediction_files or not csvs:
    st.info("No predictions or labelled data sets in this workspace yet: train a run (Train page) or build the demo.")
    st.stop()


def _default(names: list[str], *suffixes: str) -> int:
    return next((i for s in suffixes for i, n in enumerate(names) if n.endswith(s)), 0)


def _with_val_map(name: str) -> str:
    if name not in prediction_files:
        return name
    score = best_val_map(prediction_files[name])
    return name if score != score else f"{name} · val mAP {score:.3f}"


def _f(value: float, digits: int = 4) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _ci(pair: list[float] | None, digits: int = 3) -> str:
    return "" if not pair else f"[{_f(pair[0], digits)}, {_f(pair[1], digits)}]"


# ------------------------------------------------------------------------------------------------- choose files
pred_names = order_by_val_map(prediction_files)  # the strongest run (best validation mAP) first
csv_names = list(csvs)
left, middle, right = st.columns(3)
pred_name = left.selectbox("Predictions (A)", pred_names, index=0, key="res_pred", format_func=_with_val_map)
labels_name = middle.selectbox("Labels", csv_names, index=_default(csv_names, "test_labels.csv"), key="res_labels")
train_choice = right.selectbox(
    "Training labels (buckets)", ["(none)", *csv_names], index=1 + _default(csv_names, "train.csv"), key="res_train"
)
bootstrap = st.sidebar.select_slider("Bootstrap resamples (CIs)", [0, 100, 200, 500, 1000], value=200)
resample = st.sidebar.radio("Resample", ["auto", "image"], horizontal=True,
                            help="auto: whole patients when the labels name them (images of a patient are "
                                 "correlated); image: each image on its own")  # fmt: skip
scorer = st.sidebar.selectbox("Scorer", SCORERS.names(), help="how empty classes, ECE and F1 are scored")
if SCORERS.get(scorer).f1 == "per_class":
    st.sidebar.caption("Per-class thresholds need a thresholds file: use `cxrlt evaluate --thresholds` instead.")
    scorer = "cxrlt"
threshold = st.sidebar.slider("F1 threshold", 0.05, 0.95, 0.5, 0.05)

pred_path, labels_path = prediction_files[pred_name], csvs[labels_name]
train_path = csvs.get(train_choice)
files = (str(labels_path), mtime(labels_path), str(train_path) if train_path else None,
         mtime(train_path) if train_path else 0.0)  # fmt: skip
try:
    result = loaders.evaluation(str(pred_path), mtime(pred_path), *files, bootstrap=bootstrap, threshold=threshold,
                                scorer=scorer, resample=resample)  # fmt: skip
except Exception as exc:  # noqa: BLE001 - shown to the user in the page, nothing is lost
    error_box(exc)
    st.stop()
report = result.report

# ------------------------------------------------------------------------------------------------ macro figures
for note in result.notes:
    st.caption(f"Note: {note}")
cols = st.columns(5)
for col, key, label in zip(cols, ("mAP", "mAUC", "mF1", "mECE"), ("mAP", "mAUC", f"mF1 @ {threshold:.2f}", "mECE")):
    col.metric(
        label, _f(report[key]), help=f"95 % CI {_ci(report.get(f'{key}_ci'))}" if f"{key}_ci" in report else None
    )
cols[4].metric("Images · classes", f"{report['n_images']} · {report['n_classes']}")
if "bootstrap" in report:
    boot = report["bootstrap"]
    st.caption(
        "95 % intervals: " + ", ".join(f"{k} {_ci(report[f'{k}_ci'])}" for k in ("mAP", "mAUC", "mF1", "mECE"))
        + f" over {boot['resamples']} resamples of {plural(boot['unit'])} ({boot['clusters']} {plural(boot['unit'])})."
    )  # fmt: skip
if report["skipped"]:
    st.caption(f"Skipped (no positive in these labels): {', '.join(report['skipped'])}")

table = per_class_frame(report)
if "buckets" in report:
    st.subheader("Head / medium / tail")
    st.caption("Buckets by training prevalence: head > 10 %, medium 1–10 %, tail < 1 % of training images.")
    buckets = bucket_frame(report)
    bucket_cols = st.columns(4)
    for col, row in zip(bucket_cols, buckets.to_dict(orient="records")):
        col.metric(f"{row['bucket']} ({row['classes']} classes)", _f(row["mAP"]),
                   help=f"95 % CI {_ci([row['low'], row['high']])}")  # fmt: skip
    bucket_cols[3].metric("Mean of the non-empty ones", _f(report["mean_of_buckets"]),
                          help=f"95 % CI {_ci(report.get('mean_of_buckets_ci'))}")  # fmt: skip
    if "bootstrap" in report:
        shown = buckets.dropna(subset=["mAP"])
        fig = go.Figure(go.Bar(
            x=shown["bucket"], y=shown["mAP"], marker_color=[BUCKET_COLOURS[b] for b in shown["bucket"]],
            error_y=dict(type="data", array=shown["high"] - shown["mAP"], arrayminus=shown["mAP"] - shown["low"]),
            hovertemplate="%{x}: mAP %{y:.3f}<extra></extra>",
        ))  # fmt: skip
        fig.update_layout(height=260, margin=dict(t=10, b=10), yaxis_title="mAP (95 % CI)")
        st.plotly_chart(fig, key="bucket_bar")

# --------------------------------------------------------------------------------------------- per-class figures
st.subheader("Per-class average precision")
order_by = PREVALENCE_TRAIN if table[PREVALENCE_TRAIN].notna().any() else PREVALENCE_EVAL
ordered = table.sort_values(order_by, ascending=False)
with_ci = "bootstrap" in report
bar = px.bar(
    ordered, x="class", y="AP", color="bucket", color_discrete_map=BUCKET_COLOURS,
    error_y=(ordered["AP high"] - ordered["AP"]) if with_ci else None,
    error_y_minus=(ordered["AP"] - ordered["AP low"]) if with_ci else None,
    hover_data={"AP": ":.3f", "AP low": ":.3f", "AP high": ":.3f", "AUC": ":.3f", "n_pos": True,
                order_by: ":.4f"},
)  # fmt: skip
bar.update_layout(xaxis_title=None, height=380, margin=dict(t=10, b=10), xaxis_tickangle=-45)
bar.update_xaxes(categoryorder="array", categoryarray=list(ordered["class"]))
st.plotly_chart(bar, key="ap_bar")
st.caption(f"Classes ordered by {order_by}.")
shown_columns = ["class", "bucket", "n_pos", PREVALENCE_TRAIN, PREVALENCE_EVAL, "AP", "AP low", "AP high", "AUC",
                 "AUC low", "AUC high", "F1", "ECE"]  # fmt: skip
st.dataframe(
    table[shown_columns].style.format(precision=3, na_rep="–"),
    hide_index=True,
    column_config={c: st.column_config.NumberColumn(format="%.4f") for c in (PREVALENCE_TRAIN, PREVALENCE_EVAL)},
)

st.subheader("Curves for one class")
scored = [c for c in result.classes if report["per_class"][c]["n_pos"] > 0]
chosen = st.selectbox("Class", scored, key="res_class")
j = result.classes.index(chosen)
known = ~np.isnan(result.labels[:, j])
y, s = result.labels[known, j], result.scores[known, j]
curve_left, curve_right = st.columns(2)
precision, recall, _ = precision_recall_curve(y, s)
pr = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", line_shape="hv", name=chosen,
                          hovertemplate="recall %{x:.3f}, precision %{y:.3f}<extra></extra>"))  # fmt: skip
pr.add_hline(y=float(y.mean()), line_dash="dot", annotation_text="prevalence")
pr.update_layout(title=f"Precision–recall · AP {report['per_class'][chosen]['ap']:.3f}", height=340)
pr.update_xaxes(title="recall", range=[0, 1])
pr.update_yaxes(title="precision", range=[0, 1.02])
curve_left.plotly_chart(pr, key="pr_curve")
rel = reliability_curve(y, s)
rel_fig = go.Figure([
    go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", name="perfect"),
    go.Scatter(x=rel.confidence, y=rel.accuracy, mode="lines+markers", name=chosen, customdata=rel.count,
               hovertemplate="predicted %{x:.3f}, observed %{y:.3f}, %{customdata} images<extra></extra>"),
])  # fmt: skip
rel_fig.update_layout(title=f"Reliability · ECE {report['per_class'][chosen]['ece']:.3f}", height=340)
rel_fig.update_xaxes(title="mean predicted probability", range=[0, 1])
rel_fig.update_yaxes(title="fraction positive", range=[0, 1])
curve_right.plotly_chart(rel_fig, key="rel_curve")

# ------------------------------------------------------------------------------------------- paired comparison
st.subheader("Compare with another predictions file")
# Files of the same split (same file name, e.g. test.parquet of another run) first: they match the labels.
same_split = sorted(
    (n for n in pred_names if n != pred_name), key=lambda n: n.split("/")[-1] != pred_name.split("/")[-1]
)
other = st.selectbox("Second predictions file (B)", ["(none)", *same_split], format_func=_with_val_map)
if other != "(none)":
    other_path = prediction_files[other]
    paired_resamples = max(bootstrap, 200)
    try:
        comparison = loaders.comparison(str(pred_path), mtime(pred_path), str(other_path), mtime(other_path), *files,
                                        paired_resamples, threshold, scorer, resample)  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        error_box(exc)
        st.stop()
    st.markdown(f"**A** = `{pred_name}`  \n**B** = `{other}`")
    macro = comparison.macro.set_index("figure")
    cols = st.columns(4)
    for col, key in zip(cols, ("mAP", "mAUC", "mF1", "mECE")):
        row = macro.loc[key]
        col.metric(f"{key} of B", _f(row["B"]), f"B − A {row['delta']:+.4f}", delta_color="inverse" if key == "mECE"
                   else "normal", help=f"A {_f(row['A'])}; paired 95 % CI of B − A {_ci([row['low'], row['high']])}, "
                   f"p = {_f(row['p'], 3)}")  # fmt: skip
    buckets = [key for key in macro.index if key.endswith(" mAP")]  # with training labels: head / medium / tail
    for col, key in zip(st.columns(max(len(buckets), 1)), buckets):
        row = macro.loc[key]
        col.metric(f"{key} of B", _f(row["B"]), f"B − A {row['delta']:+.4f}",
                   help=f"A {_f(row['A'])}; paired 95 % CI of B − A {_ci([row['low'], row['high']])}")  # fmt: skip
    figure = st.radio("Per-class Δ of", ["ap", "auc", "ece"], horizontal=True, format_func=str.upper)
    deltas = sorted_deltas(comparison, figure).dropna(subset=["delta"])
    deltas["verdict"] = np.where(deltas["distinguishable"], "interval excludes 0", "within noise")
    delta_fig = px.bar(
        deltas, x="class", y="delta", color="verdict",
        color_discrete_map={"interval excludes 0": "#2ca02c", "within noise": "#bbbbbb"},
        error_y=deltas["high"] - deltas["delta"], error_y_minus=deltas["delta"] - deltas["low"],
        hover_data={"delta": ":+.3f", "low": ":+.3f", "high": ":+.3f", "A": ":.3f", "B": ":.3f", "p": ":.3f"},
    )  # fmt: skip
    delta_fig.update_layout(height=340, margin=dict(t=10, b=10), xaxis_tickangle=-45, xaxis_title=None,
                            yaxis_title=f"Δ{figure.upper()} = B − A (paired 95 % CI)")  # fmt: skip
    delta_fig.update_xaxes(categoryorder="array", categoryarray=list(deltas["class"]))
    st.plotly_chart(delta_fig, key="delta_bar")
    clear = deltas[deltas["distinguishable"]]
    better = "lower" if figure == "ece" else "higher"
    st.caption(
        f"{len(clear)} of {len(deltas)} classes differ beyond bootstrap noise (their interval excludes 0): "
        + (", ".join(f"{c} ({d:+.3f})" for c, d in zip(clear["class"], clear["delta"])) or "none")
        + f". {figure.upper()}: {better} is better. Same {comparison.bootstrap['resamples']} resamples of "
        f"{plural(comparison.bootstrap['unit'])} for both files."
    )  # fmt: skip
    st.dataframe(deltas.drop(columns=["figure", "verdict"]).style.format(precision=3, na_rep="–"), hide_index=True)
    cli_hint(f"cxrlt compare {pred_path} {other_path} --labels {labels_path} --bootstrap {paired_resamples}")

# ---------------------------------------------------------------------------------------------------- subgroups
st.subheader("Subgroups")
meta = loaders.manifest(str(labels_path), mtime(labels_path)).metadata()
available = [a for a in ATTRIBUTES if meta[a].notna().any()]
if not available:
    st.info("These labels carry no sex, age, view or site column (or map one with `cxrlt audit --columns`).")
else:
    by = st.multiselect("Audit by", available, default=available, key="res_audit_by")
    if by:
        try:
            audited = loaders.subgroup_audit(str(pred_path), mtime(pred_path), str(labels_path), mtime(labels_path),
                                             tuple(by), max(bootstrap, 100), threshold, resample)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            error_box(exc)
            st.stop()
        summary = audited.summary
        figure = st.radio("Figure", [*MACRO_FIGURES.values(), UNDERDIAGNOSIS], horizontal=True, key="res_audit_fig")
        view = summary.assign(label=summary["attribute"] + " = " + summary["group"])
        view["gap"] = np.where(view[f"{figure} flagged"], "gap interval excludes 0", "no clear gap")
        audit_fig = px.bar(
            view, x="label", y=figure, color="gap",
            color_discrete_map={"gap interval excludes 0": "#d62728", "no clear gap": "#7f7f7f"},
            error_y=view[f"{figure} high"] - view[figure], error_y_minus=view[figure] - view[f"{figure} low"],
            hover_data={figure: ":.3f", f"{figure} gap": ":+.3f", "images": True, "patients": True, "label": False},
        )  # fmt: skip
        audit_fig.update_layout(height=320, margin=dict(t=10, b=10), xaxis_title=None,
                                yaxis_title=f"{figure} (95 % CI)")  # fmt: skip
        st.plotly_chart(audit_fig, key="audit_bar")
        st.caption(
            f"Threshold {threshold:.2f} for TPR, FPR and underdiagnosis (an image with a finding called Normal). "
            f"Gap = group − rest of the attribute, flagged only when its paired interval excludes 0; "
            f"{audited.bootstrap['resamples']} resamples of {plural(audited.bootstrap['unit'])}."
        )
        for note in audited.notes:
            st.caption(f"Note: {note}")
        columns = ["attribute", "group", "images", "patients", "with a finding"] + [
            c for key in (*MACRO_FIGURES.values(), UNDERDIAGNOSIS) for c in (key, f"{key} gap", f"{key} flagged")
        ]
        st.dataframe(summary[columns].style.format(precision=3, na_rep="–"), hide_index=True)
        cli_hint(f"cxrlt audit --pred {pred_path} --labels {labels_path} --by {','.join(by)}")

cmd = f"cxrlt evaluate --pred {pred_path} --labels {labels_path}"
if train_path:
    cmd += f" --train-labels {train_path}"
cli_hint(cmd + (f" --bootstrap {bootstrap}" if bootstrap else "") + f" --scorer {scorer} --json report.json")
