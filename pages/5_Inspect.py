"""Inspect one radiograph: model card, input-shift check, calibrated calls, head map and Grad-CAM, zero-shot scores."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from cxrlt_core.data.images import DEFAULT_MAX_BYTES, decode_radiograph, read_radiograph
from cxrlt_core.errors import CxrltError
from cxrlt_core.explain import (
    MAP_METHODS,
    NORMALISATION_NOTE,
    display_gray,
    encode_png,
    maps_for_image,
    overlay_with_bar,
    prepare_radiograph,
)
from cxrlt_core.inspection import choices_for_run, finding_table, shift_message
from cxrlt_core.localisation import box_mass, boxes_beside, overall, per_class, pointing_hit, read_boxes, score_images
from cxrlt_core.model_card import card_lines, model_card, parameter_count
from cxrlt_core.models.checkpoint import load_checkpoint
from cxrlt_core.runs import checkpoint_path
from cxrlt_core.shift import load_for_checkpoint, pooled_features
from cxrlt_core.workspace_summary import csv_label_space
from cxrlt_core.zeroshot.predict import score_image
from cxrlt_core.zeroshot.prompts import PromptStore
from cxrlt_dashboard import loaders, zeroshot_ui
from cxrlt_dashboard.common import dataset_csvs, error_box, image_folder, mtime, page_setup

workspace = page_setup("Inspect a radiograph")


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(path: str, stamp: float):
    model, sidecar = load_checkpoint(path)
    return model.eval(), sidecar, load_for_checkpoint(path, sidecar)


@st.cache_data(show_spinner="Scoring the test predictions for the model card…", max_entries=8)
def _card(path: str, stamp: float, root: str) -> dict:
    model, sidecar, _ = _model(path, stamp)
    return model_card(path, sidecar, parameter_count(model), workspace=root)


@st.cache_data(max_entries=4)
def _boxes(path: str, stamp: float):
    return read_boxes(path)


runs_with_models = [r for r in workspace.list_runs() if checkpoint_path(workspace.run(r), "best").exists()]
if not runs_with_models:
    st.info("No trained run with a checkpoint in this workspace yet.")
    st.stop()

pick_col, card_col = st.columns([1, 2])
run = pick_col.selectbox("Model (run, best checkpoint)", runs_with_models, key="i_run")
ckpt = checkpoint_path(workspace.run(run), "best")
model, sidecar, shift = _model(str(ckpt), mtime(ckpt))
classes = list(sidecar["model"]["class_names"])
with card_col.container(border=True):
    st.markdown("**Model card**")
    try:
        st.markdown("  \n".join(card_lines(_card(str(ckpt), mtime(ckpt), str(workspace.root)))))
    except CxrltError as exc:
        error_box(exc)

left, right = st.columns([1, 2])
with left:
    source = st.radio("Radiograph", ["from a data set", "upload"], horizontal=True, key="i_source")
    truth: dict[str, float] = {}
    image, name, boxes, csv_path = None, "", None, None
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
        csvs = dict(dataset_csvs(workspace))
        if not csvs:
            st.info("No data set in this workspace.")
            st.stop()
        csv_names = list(csvs)
        csv_name = st.selectbox(
            "Data set", csv_names, index=next((i for i, n in enumerate(csv_names) if "test_labels" in n), 0)
        )
        csv_path = csvs[csv_name]
        manifest = loaders.manifest(str(csv_path), mtime(csv_path), csv_label_space(csv_path), False)
        row = st.number_input(f"Image (row 0–{len(manifest) - 1})", 0, max(len(manifest) - 1, 0), 0)
        name = str(manifest.ids[row])
        st.caption(name)
        try:
            image = read_radiograph(image_folder(csv_path) / name)
            truth = {c: float(manifest.labels[row, j]) for j, c in enumerate(manifest.classes)}
        except CxrltError as exc:
            error_box(exc)
        box_file = boxes_beside(csv_path)
        if box_file is not None:
            table_of_boxes = _boxes(str(box_file), mtime(box_file))
            boxes = table_of_boxes[table_of_boxes["ImageID"] == name]
if image is None:
    st.stop()

_, batch = prepare_radiograph(image, sidecar)
with st.spinner("Running the model…"):
    import torch

    with torch.no_grad():
        probs = torch.sigmoid(model(batch)[0].float()).cpu().numpy()
    features = pooled_features(model, batch)

# -- input-shift check: every image ----------------------------------------------------------------------------------
if shift is None:
    st.warning(
        "No input-shift check for this model: it cannot say whether this image resembles its training data. "
        f"Fit one with `cxrlt shift fit --checkpoint {ckpt} --csv TRAIN.csv --images DIR`."
    )
else:
    result = shift.check(features)[0]
    warn, text = shift_message(result.distance, result.threshold)
    if warn:
        st.warning(f"⚠️ **Input shift.** {text}")
    else:
        st.success(text)

# -- findings: calibrated calls when a post-processing choice was saved for this run ------------------------------
choices = choices_for_run(workspace.postprocess_dir, run)
with right:
    choice = None
    if choices:
        names = [c.name for c in choices]
        picked = st.selectbox("Post-processing (saved on the Gating page for this run)", names, key="i_post")
        choice = choices[names.index(picked)]
    table, note = finding_table(probs, classes, choice, truth)
    sort_by = "probability (calibrated)" if "probability (calibrated)" in table else "model score"
    st.dataframe(
        table.sort_values(sort_by, ascending=False),
        hide_index=True,
        height=300,
        column_config={
            "model score": st.column_config.NumberColumn("model score (uncalibrated)", format="%.3f"),
            "probability (calibrated)": st.column_config.NumberColumn(format="%.3f"),
            "threshold": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(note)

# -- maps: the Finding box decides both maps ---------------------------------------------------------------------------
st.subheader("Where the model looks")
image_key = hashlib.sha1(np.ascontiguousarray(image).tobytes()[:1_000_000] + name.encode()).hexdigest()
if st.session_state.get("i_image_key") != image_key or st.session_state.get("i_finding") not in classes:
    # a new image (or another model's classes): start on the top finding
    st.session_state["i_image_key"] = image_key
    st.session_state["i_finding"] = classes[int(np.argmax(probs))]
o1, o2, o3 = st.columns(3)
finding = o1.selectbox("Finding", classes, key="i_finding")  # fixed order: the choice never shifts under the user
method = o2.selectbox(
    "Second map",
    MAP_METHODS,
    key="i_cam",
    help="Grad-CAM family (gradients at the last backbone stage) or occlusion (the logit's drop when a square of the"
    " input is hidden: slower, but it asks the model itself).",
)
opacity = o3.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="i_opacity")
j = classes.index(finding)
maps = maps_for_image(model, sidecar, image, [j], method)
head_name = next(iter(maps))
box = None
if boxes is not None and finding in set(boxes["finding"]):
    r = boxes[boxes["finding"] == finding].iloc[0]
    box = (int(r.x0), int(r.y0), int(r.x1), int(r.y1))
display = display_gray(image)
head_view = overlay_with_bar(display, maps[head_name][j], opacity, box=box)
cam_view = overlay_with_bar(display, maps[method][j], opacity, box=box)
v1, v2, v3 = st.columns([1, 1.1, 1.1])
v1.image(display, caption=f"{name} (as stored, {image.shape[1]} × {image.shape[0]} px)", width="stretch")
v2.image(head_view, caption=f"{head_name} head map · {finding} (score {probs[j]:.3f})", width="stretch")
v3.image(cam_view, caption=f"{method} · {finding}", width="stretch")
st.caption(NORMALISATION_NOTE + " The maps are drawn on the stored image, so they keep its aspect ratio.")
if box is not None:
    parts = []
    for m in (head_name, method):
        hit, mass = pointing_hit(maps[m][j], box), box_mass(maps[m][j], box)
        parts.append(f"{m}: peak {'inside' if hit else 'outside'} the box, {mass:.0%} of the map inside")
    st.caption("White box: where the demo generator drew this sign. " + "; ".join(parts))
d1, d2 = st.columns(2)
d1.download_button("Download head-map overlay", encode_png(head_view), f"{finding}_{head_name}.png", "image/png")
d2.download_button(f"Download {method} overlay", encode_png(cam_view), f"{finding}_{method}.png", "image/png")

# -- localisation over a data set with sign boxes ------------------------------------------------------------------
if csv_path is not None and boxes_beside(csv_path) is not None:
    with st.expander("Localisation on this data set (pointing game and mass in the sign's box)"):
        limit = st.slider("Images with boxes to score", 10, 300, 60, 10, key="i_loc_n")
        if st.button("Score localisation", key="i_loc_go"):
            all_boxes = _boxes(str(boxes_beside(csv_path)), mtime(boxes_beside(csv_path)))
            ids = set(manifest.ids)
            chosen = sorted(set(all_boxes["ImageID"]) & ids)[:limit]
            bar = st.progress(0.0, text="scoring maps")
            folder = image_folder(csv_path)
            found = score_images(
                all_boxes[all_boxes["ImageID"].isin(chosen)],
                classes,
                lambda image_id, idx: maps_for_image(model, sidecar, read_radiograph(folder / image_id), idx, method),
                lambda done, total: bar.progress(done / total, text=f"scoring maps {done}/{total}"),
            )
            table = per_class(found)
            st.dataframe(overall(table).round(3), hide_index=True)
            st.dataframe(table.round(3), hide_index=True)
            st.caption("Chance: the box's share of the image (what a random peak would score).")

# -- zero-shot ---------------------------------------------------------------------------------------------------------
st.subheader("Unseen findings (zero-shot scores)")
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
        zs_scores = score_image(clip, image, prompt_set)
        zs, _ = finding_table(zs_scores, list(prompt_set.class_names), None, truth)
        zs = zs.rename(columns={"model score": "zero-shot score"})
        st.dataframe(
            zs.sort_values("zero-shot score", ascending=False),
            hide_index=True,
            column_config={"zero-shot score": st.column_config.NumberColumn(format="%.3f")},
        )
        st.caption(
            "Zero-shot scores rank findings for this image by its similarity to the prompts: they are scores, "
            "not probabilities, and are not calibrated."
        )
    except CxrltError as exc:
        error_box(exc)
