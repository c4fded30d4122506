"""Overview: the workspace at a glance, and the demo workspace built on first start (``streamlit run app.py``)."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from cxrlt_core import demo_workspace
from cxrlt_core.runs import heartbeat_age, list_runs, read_metrics
from cxrlt_dashboard.common import DEFAULT_WORKSPACE, PAGES, page_setup

workspace = page_setup("cxrlt — chest X-ray long-tail & zero-shot")
st.caption(
    "Long-tailed multi-label classification (CXR-LT Task 1) and zero-shot recognition of unseen findings (Task 2): "
    "the CXR-LT 2026 winning method, with calibration, thresholds and confidence intervals."
)

is_demo = workspace.root.name == "demo" or str(workspace.root).endswith(DEFAULT_WORKSPACE)
progress = demo_workspace.read_progress(workspace)
building = demo_workspace.build_running(workspace)
complete = demo_workspace.is_complete(workspace)

if is_demo and not complete:
    st.subheader("Demo workspace")
    if (
        not building
        and st.session_state.get("auto_build", True)
        and not (progress and progress.get("state") == "failed")
    ):
        demo_workspace.start_background_build(workspace)
        st.session_state["auto_build"] = False
        building = True
    if building:
        st.info(
            "Building the demo workspace in the background: a synthetic CXR-LT 2026-style data set, two small "
            "Task 1 models (CSRA and MLP heads) with predictions, and a small CLIP for zero-shot. Pages fill in as "
            "parts arrive."
        )

        @st.fragment(run_every=2.0)
        def _build_progress() -> None:
            state = demo_workspace.read_progress(workspace) or {}
            st.progress(float(state.get("fraction", 0.0)), text=state.get("message", "starting…"))
            done = state.get("done", [])
            st.caption("Done: " + (", ".join(done) if done else "nothing yet"))
            if state.get("state") in ("finished", "failed") or not demo_workspace.build_running(workspace):
                st.rerun()

        _build_progress()
    else:
        if progress and progress.get("state") == "failed":
            st.error(
                f"The demo build failed: {progress.get('error', 'see ' + str(demo_workspace.log_path(workspace)))}"
            )
        if st.button("Build the demo workspace", type="primary"):
            demo_workspace.start_background_build(workspace)
            time.sleep(0.5)
            st.rerun()
    st.caption("The same from a terminal: `cxrlt demo --workspace " + str(workspace.root) + "`")

st.subheader("Pages")
page_cols = st.columns(3)
for i, info in enumerate(PAGES[1:]):
    with page_cols[i % 3]:
        st.page_link(info.path, label=info.title, icon=info.icon)
        st.caption(info.purpose)

st.subheader("Data sets")
datasets = workspace.list_datasets()
if datasets:
    rows = []
    for name in datasets:
        folder = workspace.dataset(name)
        counts = {csv.stem: sum(1 for _ in csv.open(encoding="utf-8")) - 1 for csv in sorted(folder.glob("*.csv"))}
        rows.append({"data set": name, **{f"{k} rows": v for k, v in counts.items()}})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
else:
    st.caption("None yet.")

st.subheader("Runs")
runs = list_runs(workspace)
if runs:
    rows = []
    for run in runs:
        status = run["status"]
        metrics = read_metrics(run["path"])
        best = metrics[-1].get("best_mAP") if metrics else None
        age = heartbeat_age(status)
        rows.append(
            {
                "run": run["name"],
                "state": ("stale " if run["stale"] else "") + run["state"],
                "epoch": status.get("epoch"),
                "progress": status.get("progress"),
                "best val mAP": best,
                "heartbeat": f"{age:.0f} s ago" if age is not None else "–",
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
    )
else:
    st.caption("None yet.")

left, right = st.columns(2)
with left:
    st.subheader("Predictions")
    files = [str(p.relative_to(workspace.root)) for p in workspace.list_predictions()]
    st.dataframe(pd.DataFrame({"file": files}), hide_index=True) if files else st.caption("None yet.")
    st.subheader("Exports")
    exports = [p.name for p in workspace.list_exports()]
    st.dataframe(pd.DataFrame({"file": exports}), hide_index=True) if exports else st.caption("None yet.")
with right:
    st.subheader("Zero-shot models")
    models = workspace.list_models()
    st.dataframe(pd.DataFrame({"model": models}), hide_index=True) if models else st.caption("None yet.")
    st.subheader("Prompt sets")
    prompt_sets = workspace.list_prompt_sets()
    st.dataframe(pd.DataFrame({"prompt set": prompt_sets}), hide_index=True) if prompt_sets else st.caption("None.")
