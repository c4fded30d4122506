"""Submissions exported end to end through cxrlt_core.export: Task 1 (ensemble of runs) and Task 2 (zero-shot).

Known answers: a Task 1 submission is the ensemble Σ w_m p_m / Σ w_m of each run's own predictions (gating off),
in the label space the checkpoints name; a Task 2 submission is the zero-shot predictions of the prompt set's
unseen classes, in label-space order, with the requested column spelling. The label space is never given: the
checkpoints and the prompt set carry it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxrlt_core.data.images import Preprocess
from cxrlt_core.demo_workspace import clip_spec
from cxrlt_core.errors import InputError
from cxrlt_core.export import export_task1, export_task1_ensemble, export_task2
from cxrlt_core.labels import get_label_space
from cxrlt_core.models.checkpoint import save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model
from cxrlt_core.predictions import read_predictions
from cxrlt_core.workspace import Workspace

pytestmark = pytest.mark.slow


def _test_csv(ws: Workspace) -> Path:
    return ws.datasets_dir / "demo" / "test.csv"


def test_task1_submission_is_the_weighted_ensemble(tiny_workspace: Workspace):
    ws, test = tiny_workspace, _test_csv(tiny_workspace)
    options = {"tta": "flip", "gating_alpha": 0.0}
    alone = {run: export_task1(ws, [run], test, f"t1_{run}", **options) for run in ("demo_csra", "demo_mlp")}
    both = export_task1(ws, ["demo_csra", "demo_mlp"], test, "t1_both", weights=[1.5, 1.0], **options)

    space = get_label_space("cxrlt2026")
    ids = pd.read_csv(test)["ImageID"].astype(str).tolist()
    submission = pd.read_csv(both.submission)
    assert both.problems == [] and both.rows == len(ids)
    assert list(submission.columns) == ["ImageID", *space.in_distribution]
    assert submission["ImageID"].astype(str).tolist() == ids
    csra, mlp = (pd.read_csv(alone[run].submission).iloc[:, 1:].to_numpy() for run in ("demo_csra", "demo_mlp"))
    np.testing.assert_allclose(submission.iloc[:, 1:].to_numpy(), (1.5 * csra + 1.0 * mlp) / 2.5, atol=1e-6)
    assert not np.allclose(csra, mlp)  # the two runs differ, so the weights matter
    assert read_predictions(both.predictions).metadata["label_space"]["name"] == "cxrlt2026"
    assert "cxrlt predict" in both.commands[0] and "--weights 1.5 1.0" in both.commands[0]


def test_task1_from_an_ensemble_spec_equals_the_same_runs_chosen_by_name(tiny_workspace: Workspace):
    """A spec naming the two runs with weights 3 and 2 gives the submission of the runs chosen with those weights;
    the CLI line names the spec; a member outside the workspace is refused unless allowed."""
    ws, test = tiny_workspace, _test_csv(tiny_workspace)
    ws.ensembles_dir.mkdir(exist_ok=True)
    try:
        _check_spec_exports(ws, test)
    finally:  # the workspace is shared with the dashboard tests
        shutil.rmtree(ws.ensembles_dir)


def _check_spec_exports(ws: Workspace, test: Path) -> None:
    spec = ws.ensembles_dir / "pair.yaml"
    spec.write_text(
        "name: pair\nmembers:\n"
        "  - checkpoint: ${workspace}/runs/demo_csra/checkpoints/best.safetensors\n    weight: 3\n"
        "  - checkpoint: ../runs/demo_mlp/checkpoints/best.safetensors\n    weight: 2\n",
        encoding="utf-8",
    )
    assert ws.list_ensembles() == [spec]
    options = {"tta": "none", "gating_alpha": 0.0}
    by_spec = export_task1_ensemble(ws, spec, test, "t1_spec", **options)
    by_name = export_task1(ws, ["demo_csra", "demo_mlp"], test, "t1_named", weights=[3.0, 2.0], **options)
    assert by_spec.problems == []
    np.testing.assert_allclose(
        pd.read_csv(by_spec.submission).iloc[:, 1:].to_numpy(), pd.read_csv(by_name.submission).iloc[:, 1:].to_numpy()
    )
    assert f"--ensemble {spec}" in by_spec.commands[0] and "--checkpoint" not in by_spec.commands[0]

    other = Path(str(ws.root) + "_other")  # a copy of the run's checkpoints beside the workspace, not in it
    shutil.copytree(ws.run("demo_csra") / "checkpoints", other, dirs_exist_ok=True)
    elsewhere = other / "best.safetensors"
    outside = ws.ensembles_dir / "outside.yaml"
    outside.write_text(f"members:\n  - checkpoint: {elsewhere}\n", encoding="utf-8")
    with pytest.raises(InputError, match="outside the workspace"):
        export_task1_ensemble(ws, outside, test, "t1_outside", **options)
    assert not (ws.exports_dir / "t1_outside.csv").exists()


def test_task2_submission_is_the_prompt_sets_unseen_classes(tiny_workspace: Workspace):
    ws, test = tiny_workspace, _test_csv(tiny_workspace)
    result = export_task2(ws, clip_spec(ws), "demo", test, "t2", goiter_spelling="goiter")

    space = get_label_space("cxrlt2026")
    submission = pd.read_csv(result.submission)
    assert result.problems == []
    assert list(submission.columns) == ["ImageID", *space.unseen[:-1], "goiter"]
    pred = read_predictions(result.predictions)
    order = [pred.classes.index(c) for c in space.unseen]
    rows = [list(pred.ids).index(i) for i in submission["ImageID"].astype(str)]
    np.testing.assert_allclose(submission.iloc[:, 1:].to_numpy(), pred.scores[np.ix_(rows, order)], atol=1e-6)
    assert "--output-name Goiter=goiter" in result.commands[1]


def test_task1_export_speaks_the_checkpoints_label_space(tiny_workspace: Workspace, tmp_path: Path):
    """A run trained on NIH ChestX-ray14 classes exports NIH columns: nothing assumes the CXR-LT 2026 space."""
    space = get_label_space("nih14")
    ws = Workspace.open(tmp_path / "ws")
    run = ws.run("nih_run")
    torch.manual_seed(0)
    cfg = ModelConfig(
        backbone="convnextv2_atto", head="csra", num_classes=space.num_classes, class_names=list(space.classes),
        label_space=space.to_dict(), input_size=32, pretrained=None,
    )  # fmt: skip
    save_checkpoint(
        run / "checkpoints" / "best.safetensors", build_model(cfg), {"preprocess": Preprocess(image_size=32).to_dict()}
    )
    test = _test_csv(tiny_workspace)
    result = export_task1(ws, ["nih_run"], test, "nih", images=test.parent / "images", tta="none")
    submission = pd.read_csv(result.submission)
    assert result.problems == []
    assert list(submission.columns) == ["ImageID", *space.in_distribution]
    assert read_predictions(result.predictions).metadata["gating"]["normal"] == "No Finding"
