"""Inspect one radiograph: every finding's probability, CSRA attention and Grad-CAM overlays, zero-shot scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from cxrlt_core.data.images import DEFAULT_MAX_BYTES, decode_radiograph, read_radiograph, to_uint8
from cxrlt_core.errors import CxrltError
from cxrlt_core.explain import CAM_METHODS, encode_png, grad_cam, head_attention_maps, overlay, prepare_radiograph
from cxrlt_core.models.checkpoint import load_checkpoint
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.zeroshot.predict import score_image
from cxrlt_core.zeroshot.prompts import PromptStore
from cxrlt_dashboard import loaders, zeroshot_ui
from cxrlt_dashboard.common import dataset_csvs, error_box, image_folder, mtime, page_setup

workspace = page_setup("Inspect a radiograph")


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(path: str, stamp: float):
    model, sidecar = load_checkpoint(path)
    return model.eval(), sidecar


runs_with_models = [r for r in workspace.list_runs() if checkpoint_path(workspace.run(r), "best").exists()]
if not runs_with_models:
    st.info("No trained run with a checkpoint in this workspace yet.")
    st.stop()

left, right = st.columns([1, 2])
with left:
    run = st.selectbox("Model (run, best checkpoint)", runs_with_models, key="i_run")
    source = st.radio("Radiograph", ["from a data set", "upload"], horizontal=True)
    truth: dict[str, float] = {}
    image = None
    name = ""
    if source == "upload":
        upload = st.file_uploader("PNG (8/16-bit), JPEG or DICOM", type=["png", "jpg", "jpeg", "dcm", "dicom"])
        st.caption("Decoded in memory and not stored.")
        if upload is not None:
            try:
                image = decode_radiograph(upload.getvalue(), upload.name, max_bytes=DEFAULT_MAX_BYTES)
                name = upload.name
            except CxrltError as exc:
                error_box(exc)
    else:
        csvs = {k: v for k, v in dataset_csvs(workspace).items()}
        if not csvs:
            st.info("No data set in this workspace.")
            st.stop()
        csv_names = list(csvs)
        csv_name = st.selectbox(
            "Data set", csv_names, index=next((i for i, n in enumerate(csv_names) if "test_labels" in n), 0)
        )
        csv_path = csvs[csv_name]
        manifest = loaders.manifest(str(csv_path), mtime(csv_path), "cxrlt2026", False)
        row = st.number_input(f"Image (row 0–{len(manifest) - 1})", 0, max(len(manifest) - 1, 0), 0)
        name = str(manifest.ids[row])
        st.caption(name)
        try:
            image = read_radiograph(image_folder(csv_path) / name)
            truth = {c: float(manifest.labels[row, j]) for j, c in enumerate(manifest.classes)}
        except CxrltError as exc:
            error_box(exc)
if image is None:
    st.stop()

ckpt = checkpoint_path(workspace.run(run), "best")
model, sidecar = _model(str(ckpt), mtime(ckpt))
classes = list(sidecar["model"]["class_names"])
gray, batch = prepare_radiograph(image, sidecar)
probs, maps = head_attention_maps(model, batch)

with right:
    table = pd.DataFrame({"finding": classes, "probability": probs})
    table["ground truth"] = [
        "" if np.isnan(truth.get(c, np.nan)) else ("positive" if truth[c] > 0.5 else "negative") for c in classes
    ]
    table = table.sort_values("probability", ascending=False)
    st.dataframe(
        table,
        hide_index=True,
        height=300,
        column_config={"probability": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0)},
    )

st.subheader("Where the model looks")
o1, o2, o3 = st.columns(3)
finding = o1.selectbox("Finding", list(table["finding"]), key="i_finding")
method = o2.selectbox("Grad-CAM method", CAM_METHODS, key="i_cam")
opacity = o3.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05)
j = classes.index(finding)
attention_overlay = overlay(gray, maps[j], opacity)
with torch.enable_grad():
    cam = grad_cam(model, batch.clone(), j, method=method)
cam_overlay = overlay(gray, cam, opacity)
v1, v2, v3 = st.columns(3)
v1.image(to_uint8(image) if image.dtype != np.uint8 else image, caption=f"{name} (as stored)", width="stretch")
v2.image(attention_overlay, caption=f"{sidecar['model']['head']} head map · {finding}", width="stretch")
v3.image(cam_overlay, caption=f"{method} · {finding} (p = {probs[j]:.3f})", width="stretch")
d1, d2 = st.columns(2)
d1.download_button("Download head-map overlay", encode_png(attention_overlay), f"{finding}_attention.png", "image/png")
d2.download_button("Download Grad-CAM overlay", encode_png(cam_overlay), f"{finding}_{method}.png", "image/png")

st.subheader("Unseen findings (zero-shot)")
models = workspace.list_models()
store = PromptStore(workspace.prompts_dir)
if not models or not store.names():
    st.caption("No zero-shot model or prompt set in this workspace.")
else:
    z1, z2 = st.columns(2)
    zs_model = z1.selectbox("CLIP model", models, key="i_zs_model")
    zs_set = z2.selectbox("Prompt set", store.names(), key="i_zs_set")
    try:
        clip = zeroshot_ui.model(f"local-dir:{workspace.models_dir / zs_model}")
        prompt_set = store.load(zs_set)
        scores = score_image(clip, image, prompt_set)
        zs = pd.DataFrame({"finding": list(prompt_set.class_names), "zero-shot score": scores})
        zs["ground truth"] = [
            "" if np.isnan(truth.get(c, np.nan)) else ("positive" if truth[c] > 0.5 else "negative")
            for c in prompt_set.class_names
        ]
        st.dataframe(
            zs.sort_values("zero-shot score", ascending=False),
            hide_index=True,
            column_config={
                "zero-shot score": st.column_config.ProgressColumn(format="%.3f", min_value=0.0, max_value=1.0)
            },
        )
    except CxrltError as exc:
        error_box(exc)
