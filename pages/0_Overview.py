"""Overview: what this workspace is, where to start, and what it holds (the demo workspace is built here)."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from cxrlt_core import demo_workspace
from cxrlt_core.run_progress import run_table
from cxrlt_core.workspace_summary import dataset_table, is_demo_build, workspace_counts
from cxrlt_dashboard.common import PAGES, RUN_COLUMNS, builtin_demo_workspace, page_setup

workspace = page_setup("cxrlt — chest X-ray long-tail & zero-shot")
st.caption(
    "Long-tailed multi-label chest X-ray classification (CXR-LT Task 1) and zero-shot recognition of unseen findings "
    "(Task 2). Every page shows the terminal command it runs."
)
pages = {info.title: info for info in PAGES}

# Only the dashboard's own demo folder builds itself; any other folder is the user's and is left alone.
is_default = workspace.root == builtin_demo_workspace()
is_demo = is_demo_build(workspace) or is_default
complete = demo_workspace.is_complete(workspace)


def _build_panel() -> None:
    """Start (once per session) or follow the background build of the demo workspace."""
    progress = demo_workspace.read_progress(workspace) or {}
    building = demo_workspace.build_running(workspace)
    failed = progress.get("state") == "failed"
    if not building and not failed and is_default and st.session_state.get("auto_build", True):
        demo_workspace.start_background_build(workspace)
        st.session_state["auto_build"] = False
        building = True
    if building:

        @st.fragment(run_every=2.0)
        def _build_progress() -> None:
            state = demo_workspace.read_progress(workspace) or {}
            st.progress(float(state.get("fraction", 0.0)), text=state.get("message", "starting…"))
            if state.get("state") in ("finished", "failed") or not demo_workspace.build_running(workspace):
                st.rerun()

        _build_progress()
        return
    if failed:
        st.error(f"The demo build failed: {progress.get('error') or demo_workspace.log_path(workspace)}")
    if st.button("Build the demo workspace", type="primary"):
        demo_workspace.start_background_build(workspace)
        time.sleep(0.5)
        st.rerun()


if is_demo:
    st.info(
        "**This is the demo workspace.** Its radiographs are synthetic phantoms drawn in the CXR-LT 2026 format "
        "(30 findings to train on, 6 unseen ones for zero-shot); its two Task 1 models (CSRA and MLP heads) are "
        "tiny networks trained from scratch on them, and its zero-shot model is a small CLIP trained on the "
        "phantoms and their reports. The figures show the toolkit at work, not clinical accuracy.",
        icon=":material/science:",
    )
    if not complete:
        _build_panel()
        st.caption(f"The same from a terminal: `cxrlt demo --workspace {workspace.root}`")

st.markdown("**A first path**")
path_cols = st.columns(3)
for col, (title, why) in zip(
    path_cols,
    (
        ("Results", "how good the two models are, per class and per head / medium / tail bucket"),
        ("Inspect", "one radiograph: probabilities, attention maps and Grad-CAM"),
        ("Prompts", "edit the zero-shot prompts of the unseen findings and watch AP change"),
    ),
):
    with col:
        st.page_link(pages[title].path, label=f"{title} →", icon=pages[title].icon)
        st.caption(why)

counts = workspace_counts(workspace)
st.markdown("**This workspace**")
cols = st.columns(6)
cols[0].metric("Data sets", counts.datasets, help=f"{counts.images:,} images")
cols[1].metric("Runs", counts.runs, help=f"{counts.finished_runs} finished")
cols[2].metric("Predictions", counts.predictions)
cols[3].metric("CLIP models", counts.models)
cols[4].metric("Prompt sets", counts.prompt_sets)
cols[5].metric("Exports", counts.exports)

st.markdown("**More**")
more = st.columns(len(PAGES) - 4)
for col, info in zip(more, [p for p in PAGES[1:] if p.title not in ("Results", "Inspect", "Prompts")]):
    col.page_link(info.path, label=info.title, icon=info.icon, help=info.purpose)

with st.expander("Data sets and runs"):
    st.dataframe(pd.DataFrame(dataset_table(workspace)), hide_index=True)
    st.dataframe(pd.DataFrame(run_table(workspace)), hide_index=True, column_config=RUN_COLUMNS)
