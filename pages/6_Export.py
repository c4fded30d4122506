"""Export: build a validated Task 1 or Task 2 submission CSV, write it to the workspace and download it."""

from __future__ import annotations

import streamlit as st

from cxrlt_core.capsule.export import export_capsule
from cxrlt_core.errors import CxrltError
from cxrlt_core.export import export_task1, export_task1_ensemble, export_task2
from cxrlt_core.export_plan import (
    calibration_note,
    default_ensemble,
    export_files,
    load_postprocess,
    ranked_runs,
    saved_postprocess_names,
    weights_for,
)
from cxrlt_core.inference.ensemble_spec import load_ensemble_spec
from cxrlt_core.inference.gating import GATING_FORMS
from cxrlt_core.inference.tta import MERGE_MODES, TTA_SETS
from cxrlt_core.postprocess_study import alpha_range
from cxrlt_core.workspace_summary import csv_label_space
from cxrlt_core.zeroshot.prompts import PromptStore
from cxrlt_dashboard.common import dataset_csvs, error_box, page_setup, pick

workspace = page_setup("Export a submission")
csvs = dataset_csvs(workspace)
test_csvs = {k: v for k, v in csvs.items() if k.endswith("test.csv")} or csvs
if not test_csvs:
    st.info("No test CSV in this workspace.")
    st.stop()
test_csv = pick("Test images (CSV of ImageIDs)", test_csvs, "x_test", prefer=("/test.csv",))
try:
    space = csv_label_space(test_csv)
except CxrltError as exc:
    error_box(exc)
    st.stop()
n_seen, n_unseen = len(space.in_distribution), len(space.unseen)
st.caption(f"Label space of this data set: **{space.name}** ({n_seen} findings, {n_unseen} unseen).")
task1, task2 = st.tabs([f"Task 1 — {n_seen} findings", f"Task 2 — {n_unseen} unseen findings"])


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


def _export_name(default: str, key: str) -> tuple[str, bool]:
    """The export name and whether its existing files may be replaced (asked only when there are some)."""
    name = st.text_input("Export name", default, key=key)
    try:
        existing = export_files(workspace, name)
    except CxrltError as exc:
        error_box(exc)
        return name, False
    if not existing:
        return name, False
    st.warning(f"`{existing[0].relative_to(workspace.root)}` already exists.")
    return name, st.checkbox("Replace the existing export", key=f"{key}_replace")


def _postprocessing(chosen: list[str]) -> tuple[float, str, object]:
    """Gating α and form, and the calibration file: from a saved choice (shown, not editable) or set here."""
    saved_names = saved_postprocess_names(workspace)
    post = st.selectbox("Saved post-processing (Gating page)", ["(none)", *saved_names], key="x_post")
    t3, t4 = st.columns(2)
    if post == "(none)":
        form = t4.selectbox("Gating form", GATING_FORMS.names(), key="x_form")
        low, high = alpha_range(form)
        alpha = t3.number_input("Gating α", low, high, min(0.5, high), 0.05, key=f"x_alpha_{form}")
        return alpha, form, None
    saved = load_postprocess(workspace, post)
    alpha, form = saved.choice.gating_alpha, saved.choice.gating_form
    # The saved choice is what is used: its α and form are shown, read-only.
    t3.text_input("Gating α (from the saved choice)", f"{alpha:g}", disabled=True, key=f"x_alpha_saved_{post}")
    t4.text_input("Gating form (from the saved choice)", form, disabled=True, key=f"x_form_saved_{post}")
    if saved.calibration is not None:
        st.caption(f"Calibration: `{saved.calibration.name}` ({saved.choice.calibration})")
    if note := calibration_note(saved, chosen):
        st.warning(note)
    return alpha, form, saved.calibration


def _runs_ensemble() -> tuple[dict, list[str]] | None:
    """The ensemble of runs chosen here: export arguments and the runs (None when nothing is trained)."""
    ranked = ranked_runs(workspace)
    if not ranked:
        st.info("No trained run with a checkpoint yet.")
        return None
    best = {name: value for name, value in ranked}
    labels = {name: f"{name} (val mAP {v:.4f})" if v is not None else name for name, v in ranked}
    chosen = st.multiselect(
        "Runs in the ensemble (best validation mAP first)",
        list(best),
        default=default_ensemble(workspace),
        format_func=labels.get,
        key="x_runs",
    )
    defaults = weights_for(workspace, chosen)
    weight_cols = st.columns(max(len(chosen), 1))
    weights = [
        col.number_input(f"weight · {run}", 0.0, 100.0, defaults[run], 0.5, key=f"w_{run}")
        for col, run in zip(weight_cols, chosen)
    ]
    st.caption("Default weights follow the winning method: CSRA-head runs 1.5, MLP-head runs 1.0, others 1.0.")
    return {"runs": chosen, "weights": weights}, chosen


def _spec_ensemble() -> tuple[dict, list[str]] | None:
    """An ensemble spec file of ``W/ensembles/``: its members are shown; None when there is none or it is wrong."""
    specs = {p.name: p for p in workspace.list_ensembles()}
    if not specs:
        st.info(
            f"No ensemble spec in `{workspace.ensembles_dir}`: put a YAML file there (members with checkpoint, "
            "input_size, weight; docs/recipes.md), or choose runs here."
        )
        return None
    path = pick("Ensemble spec", specs, "x_spec")
    try:
        spec = load_ensemble_spec(path, workspace=workspace.root)
    except CxrltError as exc:
        error_box(exc)
        return None
    st.dataframe(spec.rows(), hide_index=True)
    st.caption(f"{spec.description or spec.name}: each member is predicted at the input size it was trained at.")
    return {"spec": path}, [m.label for m in spec.members]


with task1:
    source = st.radio(
        "Ensemble", ["runs chosen here", "an ensemble spec file"], horizontal=True, key="x_source",
        help="A spec file names members trained at different input sizes, each with its weight (cxrlt predict "
        "--ensemble takes the same file).",
    )  # fmt: skip
    picked = _runs_ensemble() if source == "runs chosen here" else _spec_ensemble()
    if picked is not None:
        members, chosen = picked
        t1, t2 = st.columns(2)
        tta = t1.selectbox("TTA", TTA_SETS.names(), index=TTA_SETS.names().index("medium"))
        merge = t2.selectbox("Merge", MERGE_MODES.names())
        alpha, form, calibration = _postprocessing(chosen)
        name1, replace1 = _export_name("task1_submission", "x_name1")
        if st.button("Build Task 1 submission", type="primary", disabled=not chosen):
            options = {
                "tta": tta, "merge": merge, "gating_alpha": alpha, "gating_form": form, "calibration": calibration,
                "progress": _progress_bar("predicting"), "overwrite": replace1,
            }  # fmt: skip
            try:
                if "spec" in members:
                    result = export_task1_ensemble(workspace, members["spec"], test_csv, name1, **options)
                else:
                    result = export_task1(workspace, members["runs"], test_csv, name1, members["weights"], **options)
                _show(result)
            except CxrltError as exc:
                error_box(exc)

with task2:
    if not space.unseen:
        st.info(f"Label space {space.name} has no unseen findings: there is no zero-shot task to export.")
    else:
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
        spelling = "Goiter"
        if "Goiter" in space.unseen:
            spelling = c3.radio(
                "Goiter column", ["Goiter", "goiter"], horizontal=True, help="the winning code wrote 'goiter'"
            )
        name2, replace2 = _export_name("task2_submission", "x_name2")
        if st.button("Build Task 2 submission", type="primary"):
            try:
                result = export_task2(
                    workspace, spec, None if prompt_choice.startswith("(") else prompt_choice, test_csv, name2,
                    goiter_spelling=spelling, progress=_progress_bar("embedding"), overwrite=replace2,
                )  # fmt: skip
                _show(result)
            except CxrltError as exc:
                error_box(exc)

exports = workspace.list_exports()
if exports:
    st.subheader("Exports in this workspace")
    for path in exports:
        st.download_button(f"⬇ {path.name}", path.read_bytes(), path.name, "text/csv", key=f"dl_{path.name}")
