"""The logic behind the dashboard pages, tested without Streamlit: workspace summary, run progress, recipe form."""

from __future__ import annotations

import json
import os
import socket
import time

import numpy as np
import pytest

from cxrlt_core.config import load_recipe
from cxrlt_core.data.manifest import folder_label_space
from cxrlt_core.errors import InputError
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.recipe_form import available_recipes, form_overrides, recipe_value
from cxrlt_core.run_progress import eta_seconds, format_duration, progress_label, resumable
from cxrlt_core.runs import training_state_path, write_status
from cxrlt_core.workspace import Workspace
from cxrlt_core.workspace_summary import csv_rows, workspace_counts


def test_csv_rows_counts_records_not_lines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('ImageID,report\n1.png,"two\nlines"\n2.png,one\n', encoding="utf-8")
    assert csv_rows(path) == 2
    assert csv_rows(tmp_path / "missing.csv") == -1


def test_label_space_comes_from_the_data(tmp_path):
    nih = tmp_path / "nih"
    nih.mkdir()
    header = "image,No Finding,Atelectasis,Cardiomegaly,Effusion,Infiltration,Mass,Nodule,Pneumonia,Pneumothorax,"
    header += "Consolidation,Edema,Emphysema,Fibrosis,Pleural Thickening,Hernia\n"
    (nih / "labels.csv").write_text(header + "a.png" + ",0" * 15 + "\n", encoding="utf-8")
    (nih / "test.csv").write_text("image\na.png\n", encoding="utf-8")
    space = folder_label_space(nih, from_headers=True)
    assert space.name == "nih14" and space.num_classes == 15 and space.normal == "No Finding"

    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "train.csv").write_text("ImageID,Opacity,Normal\na.png,1,0\n", encoding="utf-8")
    space = folder_label_space(custom, from_headers=True)
    assert (space.name, space.classes, space.normal) == ("mine", ("Opacity", "Normal"), "Normal")

    generated = tmp_path / "gen"
    generated.mkdir()
    (generated / "train.csv").write_text("ImageID,Opacity\na.png,1\n", encoding="utf-8")
    recorded = {"name": "myspace", "classes": ["Opacity", "Bulla"], "unseen": ["Bulla"], "normal": None}
    (generated / "dataset.json").write_text(json.dumps({"label_space": recorded}), encoding="utf-8")
    space = folder_label_space(generated, from_headers=True)
    assert (space.name, space.unseen) == ("myspace", ("Bulla",))

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test.csv").write_text("ImageID\na.png\n", encoding="utf-8")
    with pytest.raises(InputError, match="label space is unknown"):
        folder_label_space(empty, from_headers=True)


def test_folder_label_space_reads_dataset_json_first(tmp_path):
    """read_manifest asks only for the recorded space (None without one); pages fall back to the headers."""
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "train.csv").write_text("ImageID,Opacity\na.png,1\n", encoding="utf-8")
    assert folder_label_space(folder) is None
    assert folder_label_space(folder, from_headers=True).classes == ("Opacity",)
    (folder / "dataset.json").write_text(json.dumps({"label_space": "nih14"}), encoding="utf-8")
    assert folder_label_space(folder).name == folder_label_space(folder, from_headers=True).name == "nih14"
    (folder / "dataset.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="dataset.json: not a readable data-set description"):
        folder_label_space(folder, from_headers=True)


def test_workspace_counts(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    (ws.dataset("d") / "images").mkdir(parents=True)
    (ws.dataset("d") / "train.csv").write_text("ImageID,A\nx.png,1\n", encoding="utf-8")
    for name in ("x.png", "y.png"):
        (ws.dataset("d") / "images" / name).write_bytes(b"")
    write_status(ws.run("r1"), "finished")
    write_status(ws.run("r2"), "failed")
    counts = workspace_counts(ws)
    assert (counts.datasets, counts.images, counts.runs, counts.finished_runs) == (1, 2, 2, 1)


def test_eta_from_mean_epoch_time_and_before_the_first_epoch():
    status = {"state": "running", "progress": 0.5, "epochs": 4}
    # 4 epochs × (1 − 0.5) left = 2 epochs at a mean of (10 + 20) / 2 = 15 s each → 30 s
    assert eta_seconds(status, [{"epoch_seconds": 10}, {"epoch_seconds": 20}]) == pytest.approx(30.0)
    # no finished epoch yet: 30 s spent for 25 % → 90 s left
    early = {"state": "running", "progress": 0.25, "started": 1000.0}
    assert eta_seconds(early, [], now=1030.0) == pytest.approx(90.0)
    assert eta_seconds({"state": "finished", "progress": 1.0}, []) is None
    assert format_duration(30) == "30 s" and format_duration(185) == "3 min 05 s" and format_duration(None) == "–"


def test_progress_label_names_phase_epoch_step_and_eta():
    status = {"state": "running", "phase": 2, "epoch": 2, "epochs": 5, "step": 12, "steps": 40,
              "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}  # fmt: skip
    assert progress_label(status, 30.0) == "phase 2 · epoch 3/5 · step 12/40 · ETA 30 s"
    stopped = {"state": "stopped", "epoch": 1, "epochs": 5, "message": "stopped on request; resumable"}
    assert progress_label(stopped) == "stopped · 1/5 epochs done · stopped on request; resumable"


def test_resumable_only_with_a_training_state(tmp_path):
    run = tmp_path / "run"
    write_status(run, "stopped")
    assert not resumable(run)  # stopped before its first epoch ended: nothing to resume from
    training_state_path(run).parent.mkdir(parents=True)
    training_state_path(run).write_bytes(b"state")
    assert resumable(run)
    write_status(run, "running", pid=os.getpid(), host=socket.gethostname())
    assert not resumable(run)  # live


def test_form_overrides_are_only_the_changed_keys():
    recipes = available_recipes()
    assert "demo_csra.yaml" in recipes
    base = load_recipe(REPO_ROOT / "train_jobs" / "demo_csra.yaml")
    values = {"optim.phase2.epochs": base.optim.phase2.epochs + 1, "optim.phase1.lr": float(base.optim.phase1.lr),
              "model.head": base.model.head}  # fmt: skip
    assert recipe_value(base, "model.head") == base.model.head
    overrides = form_overrides(base, values, "optim.ema.decay=0.99 'data.val_fraction=0.2'")
    assert overrides == [f"optim.phase2.epochs={base.optim.phase2.epochs + 1}", "optim.ema.decay=0.99",
                         "data.val_fraction=0.2"]  # fmt: skip
    with pytest.raises(InputError, match="not key=value"):
        form_overrides(base, {}, "epochs")
    with pytest.raises(InputError, match="no key"):
        recipe_value(base, "optim.nope")


class _FixedScorer:
    """Stands in for a CLIP scorer: returns the same probabilities (classes in the prompt set's order)."""

    def __init__(self, by_class):
        self.by_class = by_class

    def score(self, prompt_set, scoring=None, alpha=None):
        return np.column_stack([self.by_class[c] for c in prompt_set.class_names])


def _prompt_set(classes):
    from cxrlt_core.zeroshot.prompts import parse_prompt_set

    return parse_prompt_set({"classes": {c: [f"a chest x-ray showing {c.lower()}"] for c in classes}})


def test_prompt_scores_align_classes_by_name_and_give_ap_delta_and_chance():
    from cxrlt_core.zeroshot.prompt_eval import class_table, score_prompt_set, scored_classes

    assert scored_classes(("Bulla", "Goiter", "Nope"), ("A", "Goiter", "Bulla")) == ["Bulla", "Goiter"]
    label_classes = ("A", "Goiter", "Bulla")
    labels = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=float)  # Bulla 1,0,1,0; Goiter 0,1,1,0
    prompts = _prompt_set(["Bulla", "Goiter", "Nope"])
    good = _FixedScorer({"Bulla": [0.9, 0.1, 0.8, 0.2], "Goiter": [0.1, 0.9, 0.8, 0.2], "Nope": [0.5] * 4})
    bad = _FixedScorer({"Bulla": [0.1, 0.9, 0.8, 0.2], "Goiter": [0.1, 0.9, 0.8, 0.2], "Nope": [0.5] * 4})
    now = score_prompt_set(good, prompts, label_classes, labels)
    saved = score_prompt_set(bad, prompts, label_classes, labels)
    assert now.classes == ["Bulla", "Goiter"]
    assert now.chance == pytest.approx(0.5)  # both classes have prevalence 2/4
    assert now.ap("Bulla") == pytest.approx(1.0)
    # saved ranking of Bulla: 0.9 (neg), 0.8 (pos), 0.2 (neg), 0.1 (pos): AP = (1/2 + 2/4) / 2 = 0.5
    assert saved.ap("Bulla") == pytest.approx(0.5)
    rows = {r["class"]: r for r in class_table(now, saved)}
    assert rows["Bulla"]["ΔAP"] == pytest.approx(0.5) and rows["Goiter"]["ΔAP"] == pytest.approx(0.0)


def test_edited_prompt_set_replaces_prompts_and_validates():
    from cxrlt_core.errors import ValidationError
    from cxrlt_core.zeroshot.prompt_eval import edited_prompt_set

    base = _prompt_set(["Bulla", "Goiter"])
    edited = edited_prompt_set(base, {"Bulla": ["large bulla", "  ", None]}, "mean_cosine", 7.0, "local-dir:m")
    assert edited.classes["Bulla"].prompts == ("large bulla",)
    assert edited.classes["Goiter"].prompts == base.classes["Goiter"].prompts
    assert (edited.alpha, edited.model) == (7.0, "local-dir:m")
    with pytest.raises(ValidationError):
        edited_prompt_set(base, {"Bulla": [" "]}, "mean_cosine", 7.0, None)


def test_saved_prompt_versions_keep_their_metrics(tmp_path):
    from cxrlt_core.zeroshot.prompts import PromptStore

    store = PromptStore(tmp_path)
    store.save("s", _prompt_set(["Bulla"]), note="first", metrics={"mAP": 0.25, "labels": "demo/test_labels.csv"})
    store.save("s", _prompt_set(["Bulla", "Goiter"]), note="second")
    first, second = store.versions("s")
    assert first.metrics == {"mAP": 0.25, "labels": "demo/test_labels.csv"} and second.metrics is None


def _run_with_checkpoint(ws, name, best_map, head):
    from cxrlt_core.runs import checkpoint_path

    run = ws.run(name)
    write_status(run, "finished", best_mAP=best_map)
    (run / "config.yaml").write_text(f"model:\n  head: {head}\n", encoding="utf-8")
    checkpoint_path(run, "best").parent.mkdir(parents=True, exist_ok=True)
    checkpoint_path(run, "best").write_bytes(b"")


def test_default_ensemble_is_the_best_runs_and_weights_follow_the_head(tmp_path):
    from cxrlt_core.export_plan import default_ensemble, ranked_runs, weights_for

    ws = Workspace.open(tmp_path / "ws")
    _run_with_checkpoint(ws, "a_weak", 0.10, "mlp")
    _run_with_checkpoint(ws, "b_best", 0.30, "csra")
    _run_with_checkpoint(ws, "c_mid", 0.20, "ml_decoder")
    write_status(ws.run("d_no_checkpoint"), "failed")
    assert [name for name, _ in ranked_runs(ws)] == ["b_best", "c_mid", "a_weak"]
    assert default_ensemble(ws) == ["b_best", "c_mid"]  # not the first two names alphabetically
    assert weights_for(ws, ["b_best", "a_weak", "c_mid"]) == {"b_best": 1.5, "a_weak": 1.0, "c_mid": 1.0}


def test_saved_postprocess_layout_and_calibration_note(tmp_path):
    from cxrlt_core.export_plan import calibration_note, load_postprocess, saved_postprocess_names
    from cxrlt_core.postprocess_study import PostprocessChoice

    ws = Workspace.open(tmp_path / "ws")
    folder = ws.postprocess_dir
    choice = PostprocessChoice(0.7, "linear", "temperature", False, {"predictions": "runs/r1/predictions/val.parquet"})
    (folder / "p.json").write_text(
        json.dumps({**vars(choice), "calibration_file": "p.calibration.json"}), encoding="utf-8"
    )
    (folder / "p.calibration.json").write_text("{}", encoding="utf-8")
    (folder / "q.json").write_text(json.dumps(vars(PostprocessChoice())), encoding="utf-8")
    assert saved_postprocess_names(ws) == ["p", "q"]
    saved = load_postprocess(ws, "p")
    assert (saved.choice.gating_alpha, saved.choice.gating_form) == (0.7, "linear")
    assert saved.calibration == folder / "p.calibration.json" and saved.fitted_on_run == "r1"
    assert calibration_note(saved, ["r1"]) is None
    note = calibration_note(saved, ["r1", "r2"])
    assert "fitted on r1" in note and "ensemble of r1, r2" in note
    assert calibration_note(load_postprocess(ws, "q"), ["r1", "r2"]) is None  # no calibration, nothing to say


def test_alpha_range_per_gating_form():
    from cxrlt_core.postprocess_study import alpha_range, has_normal, sweep_alphas

    assert alpha_range("power") == (0.0, 2.0) and alpha_range("linear") == (0.0, 1.0)
    alphas = sweep_alphas("linear")
    assert len(alphas) == 21 and alphas[0] == 0.0 and alphas[-1] == 1.0 and alphas[1] == pytest.approx(0.05)
    with pytest.raises(InputError, match="gating form"):
        alpha_range("cubic")
    assert has_normal(["Mass", "No Finding"]) and not has_normal(["Mass", "Nodule"])


def test_an_export_never_overwrites_silently(tmp_path):
    from cxrlt_core.export import export_task1
    from cxrlt_core.export_plan import export_files

    ws = Workspace.open(tmp_path / "ws")
    (ws.exports_dir / "sub.csv").write_text("ImageID\n", encoding="utf-8")
    assert export_files(ws, "sub") == [ws.exports_dir / "sub.csv"] and export_files(ws, "other") == []
    with pytest.raises(InputError, match="already exists"):
        export_task1(ws, ["r"], tmp_path / "test.csv", "sub")
    with pytest.raises(InputError, match="invalid export name"):
        export_files(ws, "../x")


def test_run_prediction_manifests_are_the_held_out_split_and_test_csv(tmp_path):
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.data.splits import patient_grouped_split
    from cxrlt_core.run_predictions import prediction_manifests

    ws = Workspace.open(tmp_path / "ws")
    data = ws.dataset("d")
    (data / "images").mkdir(parents=True)
    rows = ["ImageID,PatientID,A,B"] + [f"{i}.png,p{i // 2},{i % 2},{(i // 3) % 2}" for i in range(40)]
    (data / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (data / "test.csv").write_text("ImageID\nt1.png\nt2.png\n", encoding="utf-8")
    run = ws.run("r")
    run.mkdir(parents=True)
    recipe = "data:\n  train_csv: ${workspace}/datasets/d/train.csv\n  image_root: ${workspace}/datasets/d/images\n"
    recipe += "  val_fraction: 0.25\n  split_seed: 3\n"
    (run / "config.yaml").write_text(recipe, encoding="utf-8")
    manifests = prediction_manifests(run, ws.root)
    full = read_manifest(data / "train.csv", image_root=data / "images")
    _, val_idx = patient_grouped_split(full, 0.25, seed=3, labels=full.labels)
    assert list(manifests["val"].ids) == list(full.ids[val_idx])  # exactly the images training held out
    assert list(manifests["test"].ids) == ["t1.png", "t2.png"]
    with pytest.raises(InputError, match="no config.yaml"):
        prediction_manifests(ws.run("missing"), ws.root)


def test_a_finished_run_still_writing_its_predictions_is_busy():
    from cxrlt_core.run_progress import busy

    here = {"host": socket.gethostname()}
    assert busy({"state": "finished", "pid": os.getpid(), **here})  # its process is still at work
    assert not busy({"state": "finished", "pid": 2**22 + 7, **here})  # no such process
    assert not busy({"state": "finished", "pid": os.getpid(), "host": "elsewhere"})
    assert busy({"state": "running", "pid": os.getpid(), "heartbeat": time.time(), **here})
