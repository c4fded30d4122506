"""Export: build a validated Task 1 or Task 2 submission CSV, write it to the workspace and download it."""

from __future__ import annotations

import streamlit as st

from cxrlt_core.capsule.export import export_capsule
from cxrlt_core.errors import CxrltError
from cxrlt_core.export import export_task1, export_task2
from cxrlt_core.inference.gating import GATING_FORMS
from cxrlt_core.inference.tta import MERGE_MODES, TTA_SETS
from cxrlt_core.postprocess_study import PostprocessChoice
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.zeroshot.prompts import PromptStore
from cxrlt_dashboard.common import dataset_csvs, error_box, page_setup

workspace = page_setup("Export a submission")
csvs = dataset_csvs(workspace)
test_csvs = {k: v for k, v in csvs.items() if k.endswith("test.csv")} or csvs
if not test_csvs:
    st.info("No test CSV in this workspace.")
    st.stop()
test_name = st.selectbox("Test images (CSV of ImageIDs)", list(test_csvs), key="x_test")
test_csv = test_csvs[test_name]
task1, task2 = st.tabs(["Task 1 — 30 findings", "Task 2 — 6 unseen findings"])


def _progress_bar(label: str):
    bar = st.progress(0.0, text=label)
    return lambda done, total: bar.progress(min(done / max(total, 1), 1.0), text=f"{label} {done}/{total}")


def _show(result) -> None:
    if result.problems:
        st.error("The submission is not valid:\n" + "\n".join(result.problems))
    else:
        st.success(f"Valid submission with {result.rows} rows: {result.submission.relative_to(workspace.root)}")
    st.caption("The same from a terminal:")
    st.code(" && \\\n".join(result.commands), language="bash")
    st.download_button(
        "Download the submission CSV", result.submission.read_bytes(), result.submission.name, "text/csv"
    )
    if not result.problems:
        try:
            capsule = export_capsule(workspace, result.predictions, result.submission, test_csv)
            st.caption(f"Reproduction capsule: `{capsule.path}` (re-check: `cxrlt capsule check {capsule.path}`)")
        except CxrltError as exc:
            st.warning(f"No reproduction capsule: {exc}")


with task1:
    runs = [r for r in workspace.list_runs() if checkpoint_path(workspace.run(r), "best").exists()]
    if not runs:
        st.info("No trained run with a checkpoint yet.")
    else:
        chosen = st.multiselect("Runs in the ensemble", runs, default=runs[:2])
        weight_cols = st.columns(max(len(chosen), 1))
        paper = {"csra": 1.5, "mlp": 1.0}
        weights = [
            col.number_input(
                f"weight · {run}", 0.0, 100.0, next((w for k, w in paper.items() if k in run), 1.0), 0.5, key=f"w_{run}"
            )
            for col, run in zip(weight_cols, chosen)
        ]
        t1, t2, t3, t4 = st.columns(4)
        tta = t1.selectbox("TTA", TTA_SETS.names(), index=TTA_SETS.names().index("medium"))
        merge = t2.selectbox("Merge", MERGE_MODES.names())
        alpha = t3.number_input("Gating α", 0.0, 2.0, 0.5, 0.05)
        form = t4.selectbox("Gating form", GATING_FORMS.names())
        saved = sorted(p for p in workspace.postprocess_dir.glob("*.json") if p.name.count(".") == 1)
        post = st.selectbox("Saved post-processing (Gating page)", ["(none)", *[p.stem for p in saved]])
        calibration = None
        if post != "(none)":
            choice, record = PostprocessChoice.load(workspace.postprocess_dir / f"{post}.json")
            alpha, form = choice.gating_alpha, choice.gating_form
            if record.get("calibration_file"):
                calibration = workspace.postprocess_dir / record["calibration_file"]
            st.caption(
                f"Uses α = {alpha}, {form} gating" + (f", calibration {calibration.name}" if calibration else "")
            )
        name1 = st.text_input("Export name", "task1_submission", key="x_name1")
        if st.button("Build Task 1 submission", type="primary", disabled=not chosen):
            try:
                result = export_task1(
                    workspace, chosen, test_csv, name1, weights=weights, tta=tta, merge=merge, gating_alpha=alpha,
                    gating_form=form, calibration=calibration, progress=_progress_bar("predicting"),
                )  # fmt: skip
                _show(result)
            except CxrltError as exc:
                error_box(exc)

with task2:
    models = workspace.list_models()
    store = PromptStore(workspace.prompts_dir)
    c1, c2, c3 = st.columns(3)
    model_choice = c1.selectbox("CLIP model", [*models, "(other spec)"], key="x_model")
    spec = (
        c1.text_input("Model spec", "hf-hub:yyupenn/whyxrayclip")
        if model_choice == "(other spec)"
        else f"local-dir:{workspace.models_dir / model_choice}"
    )
    prompt_choice = c2.selectbox("Prompt set", [*store.names(), "(built-in default)"], key="x_prompts")
    spelling = c3.radio("Goiter column", ["Goiter", "goiter"], horizontal=True, help="the winning code wrote 'goiter'")
    name2 = st.text_input("Export name", "task2_submission", key="x_name2")
    if st.button("Build Task 2 submission", type="primary"):
        try:
            result = export_task2(
                workspace, spec, None if prompt_choice.startswith("(") else prompt_choice, test_csv, name2,
                goiter_spelling=spelling, progress=_progress_bar("embedding"),
            )  # fmt: skip
            _show(result)
        except CxrltError as exc:
            error_box(exc)

exports = workspace.list_exports()
if exports:
    st.subheader("Exports in this workspace")
    for path in exports:
        st.download_button(f"⬇ {path.name}", path.read_bytes(), path.name, "text/csv", key=f"dl_{path.name}")
