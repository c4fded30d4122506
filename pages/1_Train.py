"""Train: launch a recipe (local, torchrun, SLURM), follow the run live, stop, resume, write its predictions."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core import jobs
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import CxrltError
from cxrlt_core.pipeline import display_pipeline_command, launch_pipeline, load_pipeline, pipeline_names, stage_table
from cxrlt_core.recipe_cards import card_markdown, parse_card
from cxrlt_core.recipe_form import available_recipes, form_overrides
from cxrlt_core.run_predictions import write_run_predictions
from cxrlt_core.run_progress import LIVE_STATES, any_live, busy, eta_seconds, progress_label, resumable, run_table
from cxrlt_core.runs import LOG_FILE, checkpoint_path, is_stale, new_run_name, read_metrics, read_status
from cxrlt_dashboard.common import RUN_COLUMNS, cli_hint, error_box, keep, kept_value, page_setup

workspace = page_setup("Train")
recipes = available_recipes()
if not recipes:
    st.error("No recipes found (train_jobs/*.yaml).")
    st.stop()
FOLLOW = "train_selected_run"  # the run the panel follows: the last one launched or resumed, or the one picked


def _launch_form() -> None:
    names = list(recipes)
    default = next((i for i, n in enumerate(names) if n.startswith("demo_csra")), 0)
    recipe_name = st.selectbox("Recipe", names, key=kept_value("train_recipe", names[default]))
    keep("train_recipe")
    recipe_path = recipes[recipe_name]
    try:
        base = load_recipe(recipe_path)
    except CxrltError as exc:
        error_box(exc)
        return
    if base.description:
        st.caption(base.description)
    if base.card:
        with st.expander("Recipe card: source, reported score, what cxrlt does differently"):
            try:
                st.markdown(card_markdown(parse_card(base.name, base.card, recipe_name)))
            except CxrltError as exc:
                error_box(exc)
    # One stable default name per recipe for the session: a timestamp that changed on every rerun made a new widget
    # each time and threw away what was typed.
    name_key = kept_value(f"train_run_name::{recipe_name}", new_run_name(base.name or recipe_path.stem))
    with st.form("recipe_form"):
        c1, c2, c3 = st.columns(3)
        heads, losses = jobs.head_names(), jobs.loss_names()
        values = {
            "model.backbone": c1.text_input("Backbone (timm)", base.model.backbone),
            "model.head": c2.selectbox("Head", heads, index=heads.index(base.model.head)),
            "loss.name": c3.selectbox("Loss", losses, index=losses.index(base.loss.name)),
            "sampler.enabled": c1.checkbox("Repeat-factor sampling", base.sampler.enabled),
            "data.image_size": c2.number_input("Image size", 16, 2048, base.data.image_size, step=16),
            "optim.batch_size": c3.number_input("Batch size", 1, 1024, base.optim.batch_size),
            "optim.phase1.epochs": c1.number_input("Phase 1 epochs (head)", 0, 1000, base.optim.phase1.epochs),
            "optim.phase2.epochs": c2.number_input("Phase 2 epochs (full)", 0, 1000, base.optim.phase2.epochs),
            "optim.phase1.lr": c3.number_input("Phase 1 lr", value=base.optim.phase1.lr, format="%.2e"),
            "optim.phase2.backbone_lr": c1.number_input(
                "Backbone lr", value=base.optim.phase2.backbone_lr, format="%.2e"
            ),
            "optim.phase2.head_lr": c2.number_input("Head lr", value=base.optim.phase2.head_lr, format="%.2e"),
        }
        extra = st.text_input("More overrides (key=value, space separated)", "", help="e.g. optim.ema.decay=0.99")
        c4, c5, c6 = st.columns(3)
        run_name = c4.text_input("Run name", key=name_key)
        launcher = c5.selectbox("Where", ["this machine", "torchrun (N processes)", "SLURM (submitit)"])
        nproc = c6.number_input("Processes (torchrun)", 1, 64, 2 if launcher.startswith("torchrun") else 1)
        slurm_args = st.text_input("SLURM options", "--partition gpu --gpus 4 --time 24:00:00")
        allow_outside = st.checkbox("Allow paths outside the workspace", False, help="data.train_csv, data.image_root…")
        submitted = st.form_submit_button("Launch", type="primary")
    keep(name_key)
    try:
        overrides = form_overrides(base, values, extra)
    except CxrltError as exc:
        error_box(exc)
        return
    spec = jobs.LaunchSpec(
        recipe=recipe_path,
        run_name=run_name.strip(),
        overrides=tuple(overrides),
        nproc=int(nproc) if launcher.startswith("torchrun") else 1,
        slurm=launcher.startswith("SLURM"),
        slurm_args=tuple(slurm_args.split()) if launcher.startswith("SLURM") else (),
        allow_outside=allow_outside,
    )
    if submitted:
        try:
            jobs.check_recipe(load_recipe(recipe_path, overrides))
            run_dir = jobs.launch(spec, workspace)
            st.session_state[FOLLOW] = run_dir.name
            st.session_state["train_notice"] = f"Launched {run_dir.name}; it is followed below."
            st.rerun()
        except CxrltError as exc:
            error_box(exc)
    cli_hint(jobs.display_command(jobs.train_command(spec, workspace)))


def _pipeline_form() -> None:
    names = pipeline_names()
    if not names:
        return
    with st.expander("Stage 1 → Stage 2 pipeline: chained runs, resumable per stage"):
        name = st.selectbox("Pipeline", names, key="train_pipeline")
        try:
            chosen = load_pipeline(name)
        except CxrltError as exc:
            error_box(exc)
            return
        st.caption(chosen.description)
        st.dataframe(pd.DataFrame(stage_table(chosen, workspace.root)), hide_index=True)
        if st.button("Run pipeline", key="run_pipeline"):
            try:
                log = launch_pipeline(chosen, workspace)
                st.session_state["train_notice"] = f"Pipeline {chosen.name} started; its log is {log}."
                st.rerun()
            except CxrltError as exc:
                error_box(exc)
        cli_hint(display_pipeline_command(chosen, workspace))


def _curves(run_name: str, metrics: list[dict]) -> None:
    epochs = [m["epoch"] for m in metrics]
    fig = go.Figure()
    fig.add_scatter(x=epochs, y=[m.get("train_loss") for m in metrics], name="train loss", yaxis="y")
    fig.add_scatter(x=epochs, y=[(m.get("val") or {}).get("mAP") for m in metrics], name="val mAP", yaxis="y2")
    fig.update_layout(
        height=300,
        margin=dict(t=10, b=10),
        xaxis_title="epoch",
        yaxis=dict(title="train loss"),
        yaxis2=dict(title="val mAP", overlaying="y", side="right", range=[0, 1]),
        legend=dict(orientation="h"),
    )
    st.plotly_chart(fig, key=f"curves_{run_name}")


def _actions(run_name: str, status: dict) -> None:
    """Stop, Resume and Write predictions, each enabled only when it can do something."""
    run_dir = workspace.run(run_name)
    live = status.get("state") in LIVE_STATES and not is_stale(status)
    working = busy(status)  # a finished run may still be writing its predictions
    has_best = checkpoint_path(run_dir, "best").is_file()
    stop_col, resume_col, predict_col = st.columns(3)
    if stop_col.button("Stop run", key="stop_run", disabled=not live):
        try:
            with st.spinner("Stopping (the loop saves a resumable state)…"):
                final = jobs.stop(run_dir)
            st.session_state["train_notice"] = f"{run_name}: {final}"
            st.rerun()
        except CxrltError as exc:
            error_box(exc)
    can_resume = resumable(run_dir, status) and status.get("state") != "finished"
    help_resume = None if can_resume else "only a stopped or crashed run with an end-of-epoch checkpoint"
    if resume_col.button("Resume run", key="resume_run", disabled=not can_resume, help=help_resume):
        try:
            jobs.launch(jobs.LaunchSpec(recipe=run_dir / "config.yaml", run_name=run_name, resume=True), workspace)
            st.session_state[FOLLOW] = run_name
            st.session_state["train_notice"] = f"Resuming {run_name}."
            st.rerun()
        except CxrltError as exc:
            error_box(exc)
    if predict_col.button("Write val / test predictions", key="predict_run", disabled=working or not has_best):
        bar = st.progress(0.0, text="predicting")
        try:
            written = write_run_predictions(
                run_dir,
                workspace.root,
                progress=lambda split, done, total: bar.progress(done / max(total, 1), f"{split} {done}/{total}"),
            )
            st.session_state["train_notice"] = f"{run_name}: wrote " + ", ".join(p.name for p in written.values())
            st.rerun()
        except CxrltError as exc:
            error_box(exc)
    st.caption(f"The same from a terminal: `cxrlt predict-run {run_name} --workspace {workspace.root}`")


def _follow_picked() -> None:
    st.session_state[FOLLOW] = st.session_state["train_run"]


def _runs_panel(was_live: bool) -> None:
    if was_live and not any_live(workspace):
        st.rerun()  # the last live run ended: redraw the page once, which stops the refresh
    table = pd.DataFrame(run_table(workspace))
    if table.empty:
        st.info("No runs yet.")
        return
    st.dataframe(table, hide_index=True, column_config=RUN_COLUMNS)
    names = list(table["run"])
    if st.session_state.get(FOLLOW) in names:
        st.session_state["train_run"] = st.session_state[FOLLOW]
    chosen = st.selectbox("Follow run", names, key="train_run", on_change=_follow_picked)
    run_dir = workspace.run(chosen)
    status = read_status(run_dir) or {}
    metrics = read_metrics(run_dir)
    st.markdown(f"**{chosen}** — {progress_label(status, eta_seconds(status, metrics))}")
    if status.get("error"):
        st.error(status["error"])
    st.progress(float(status.get("progress") or 0.0), text=f"{100 * float(status.get('progress') or 0.0):.0f} %")
    if metrics:
        _curves(chosen, metrics)
    _actions(chosen, status)
    with st.expander("Log", expanded=status.get("state") in LIVE_STATES):
        log = jobs.tail(run_dir / LOG_FILE, 30) or jobs.tail(run_dir / jobs.LAUNCHER_LOG, 30)
        st.code(log or "(no log yet)", language="text")


st.subheader("Launch a run")
_launch_form()
_pipeline_form()
st.subheader("Runs")
if notice := st.session_state.pop("train_notice", None):
    st.success(notice)
# Refresh the table and the followed run every 2 s while any run can still change; a launch, stop or resume reruns
# the whole page, which re-decides whether to keep refreshing.
live_now = any_live(workspace)
st.fragment(run_every=2.0 if live_now else None)(_runs_panel)(live_now)
