"""Train: launch a recipe (local, torchrun, SLURM), watch loss and validation mAP, stop and resume runs."""

from __future__ import annotations

import dataclasses

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cxrlt_core import jobs
from cxrlt_core.config import load_recipe
from cxrlt_core.errors import CxrltError
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.runs import LOG_FILE, heartbeat_age, list_runs, new_run_name, read_metrics, read_status
from cxrlt_dashboard.common import cli_hint, error_box, page_setup

workspace = page_setup("Train")
recipes = {p.name: p for p in sorted((REPO_ROOT / "train_jobs").glob("*.yaml"))}
if not recipes:
    st.error(f"No recipes in {REPO_ROOT / 'train_jobs'}")
    st.stop()

launch_tab, runs_tab = st.tabs(["Launch a run", "Runs"])

with launch_tab:
    names = list(recipes)
    default = next((i for i, n in enumerate(names) if n.startswith("demo_csra")), 0)
    recipe_name = st.selectbox("Recipe", names, index=default, key="train_recipe")
    recipe_path = recipes[recipe_name]
    try:
        base = load_recipe(recipe_path)
    except CxrltError as exc:
        error_box(exc)
        st.stop()
    if base.description:
        st.caption(base.description)
    with st.form("recipe_form"):
        c1, c2, c3 = st.columns(3)
        fields = {
            "model.backbone": c1.text_input("Backbone (timm)", base.model.backbone),
            "model.head": c2.selectbox("Head", jobs.head_names(), index=jobs.head_names().index(base.model.head)),
            "loss.name": c3.selectbox("Loss", jobs.loss_names(), index=jobs.loss_names().index(base.loss.name)),
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
        run_name = c4.text_input("Run name", new_run_name(base.name or recipe_path.stem))
        launcher = c5.selectbox("Where", ["this machine", "torchrun (N processes)", "SLURM (submitit)"])
        nproc = c6.number_input("Processes (torchrun)", 1, 64, 2 if launcher.startswith("torchrun") else 1)
        slurm_args = st.text_input("SLURM options", "--partition gpu --gpus 4 --time 24:00:00", disabled=True)
        allow_outside = st.checkbox("Allow paths outside the workspace", False, help="data.train_csv, data.image_root…")
        submitted = st.form_submit_button("Launch", type="primary")

    current = dataclasses.asdict(base)

    def _value(key: str):
        node = current
        for part in key.split("."):
            node = node[part]
        return node

    overrides = [f"{k}={v}" for k, v in fields.items() if v != _value(k)] + extra.split()
    spec = jobs.LaunchSpec(
        recipe=recipe_path,
        run_name=run_name,
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
            st.success(f"Launched {run_dir.name}; follow it in the Runs tab.")
            st.session_state["train_selected_run"] = run_dir.name
        except CxrltError as exc:
            error_box(exc)
    cli_hint(jobs.display_command(jobs.train_command(spec, workspace)))

with runs_tab:
    runs = list_runs(workspace)
    if not runs:
        st.info("No runs yet.")
        st.stop()
    table = pd.DataFrame(
        [
            {
                "run": r["name"],
                "state": ("stale " if r["stale"] else "") + r["state"],
                "epoch": f"{r['status'].get('epoch', 0)}/{r['status'].get('epochs', '?')}",
                "progress": r["status"].get("progress", 0.0),
                "val mAP": r["status"].get("val_mAP"),
                "heartbeat": f"{age:.0f} s ago" if (age := heartbeat_age(r["status"])) is not None else "–",
            }
            for r in runs
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
    )
    run_names = [r["name"] for r in runs]
    selected = st.session_state.get("train_selected_run")
    chosen = st.selectbox("Run", run_names, index=run_names.index(selected) if selected in run_names else 0)
    run_dir = workspace.run(chosen)

    live = (read_status(run_dir) or {}).get("state") in ("queued", "running")

    @st.fragment(run_every=3.0 if live else None)  # refresh only while the run can still change
    def _run_panel() -> None:
        status = read_status(run_dir) or {}
        state = status.get("state", "unknown")
        st.markdown(f"**{chosen}** — {state}" + (f" · {status['message']}" if status.get("message") else ""))
        if status.get("error"):
            st.error(status["error"])
        st.progress(float(status.get("progress") or 0.0))
        metrics = read_metrics(run_dir)
        if metrics:
            epochs = [m["epoch"] for m in metrics]
            fig = go.Figure()
            fig.add_scatter(x=epochs, y=[m.get("train_loss") for m in metrics], name="train loss", yaxis="y")
            fig.add_scatter(x=epochs, y=[(m.get("val") or {}).get("mAP") for m in metrics], name="val mAP", yaxis="y2")
            fig.update_layout(
                height=320,
                margin=dict(t=10, b=10),
                xaxis_title="epoch",
                yaxis=dict(title="train loss"),
                yaxis2=dict(title="val mAP", overlaying="y", side="right", range=[0, 1]),
                legend=dict(orientation="h"),
            )
            st.plotly_chart(fig, key=f"curves_{chosen}")
        log = jobs.tail(run_dir / LOG_FILE, 30) or jobs.tail(run_dir / jobs.LAUNCHER_LOG, 30)
        st.code(log or "(no log yet)", language="text")

    _run_panel()
    stop_col, resume_col = st.columns(2)
    if stop_col.button("Stop run", key="stop_run"):
        try:
            with st.spinner("Stopping (the loop saves a resumable state)…"):
                final = jobs.stop(run_dir)
            st.success(f"{chosen}: {final}")
        except CxrltError as exc:
            error_box(exc)
    if resume_col.button("Resume run", key="resume_run"):
        try:
            status = read_status(run_dir) or {}
            spec = jobs.LaunchSpec(recipe=run_dir / "config.yaml", run_name=chosen, resume=True)
            jobs.launch(spec, workspace)
            st.success(f"Resuming {chosen}")
        except CxrltError as exc:
            error_box(exc)
