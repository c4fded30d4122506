"""Runs: several training runs side by side: curves per epoch, the recipe keys that differ, best-checkpoint test
figures (``cxrlt runs diff`` prints the same)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from cxrlt_core.runs_compare import CURVE_METRICS, best_test_frame, curves_frame, load_runs, recipe_diff, summary_frame
from cxrlt_dashboard.common import cli_hint, error_box, frame_height, page_setup

workspace = page_setup("Runs")
names = workspace.list_runs()
if not names:
    st.info("No runs in this workspace yet: train one (Train page) or build the demo.")
    st.stop()

try:
    everything = load_runs(workspace, names)
except Exception as exc:  # noqa: BLE001 - shown to the user in the page
    error_box(exc)
    st.stop()
st.dataframe(summary_frame(everything), hide_index=True, height=frame_height(everything))
chosen = st.multiselect("Runs to compare", names, default=names[: min(2, len(names))], key="runs_chosen")
if not chosen:
    st.stop()
records = [run for run in everything if run.name in chosen]

st.subheader("Curves")
curves = curves_frame(records)
present = [m for m in CURVE_METRICS if m in set(curves.metric)]
if present:
    metrics = st.multiselect("Curves", present, default=[m for m in ("train/loss", "val/mAP") if m in present])
    shown = curves[curves.metric.isin(metrics)]
    if len(shown):
        figure = px.line(shown, x="epoch", y="value", color="run", facet_col="metric", facet_col_wrap=3, markers=True)
        figure.update_yaxes(matches=None, showticklabels=True)
        figure.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
        st.plotly_chart(figure, use_container_width=True)
else:
    st.caption("No finished epoch yet in these runs.")

st.subheader("Recipe keys that differ")
diff = recipe_diff({run.name: run.recipe for run in records})
if len(diff):
    st.dataframe(diff, height=frame_height(diff))
else:
    st.caption("The resolved recipes are the same." if len(records) > 1 else "Choose a second run to compare recipes.")

st.subheader("Best checkpoint on the test split")
try:
    st.dataframe(best_test_frame(records, workspace=workspace.root), hide_index=True)
except Exception as exc:  # noqa: BLE001 - shown to the user in the page
    error_box(exc)
cli_hint(f"cxrlt runs diff {' '.join(chosen)} --workspace {workspace.root}")
tracked = {key for run in records for key in run.tracking}
if tracked:
    st.caption("These runs were also tracked; open them in their own tools:")
    commands = []
    if "tensorboard" in tracked:
        commands.append(f"tensorboard --logdir {workspace.runs_dir}")
    if "mlflow" in tracked:
        uris = sorted({run.tracking["mlflow"]["tracking_uri"] for run in records if "mlflow" in run.tracking})
        commands += [f"mlflow ui --backend-store-uri {uri}" for uri in uris]
    st.code("\n".join(commands), language="bash")
