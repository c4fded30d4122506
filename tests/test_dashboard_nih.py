"""A workspace built from real NIH ChestX-ray14 images works on every page and exports an NIH submission.

The label space travels with the data: nothing here names it to the pages. Training is a toy (64 px, one epoch of
two steps): the point is that every page and the export speak the data's own 15 classes.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cxrlt_core.cli import main as cxrlt
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.workspace import Workspace
from cxrlt_dashboard.common import PAGES

pytestmark = pytest.mark.slow
st_testing = pytest.importorskip("streamlit.testing.v1")
NIH_CLASSES = 15


def _write_splits(source, folder) -> None:
    """Patient-grouped thirds of the NIH sample: train / val (labelled), test (ids) + test_labels."""
    labels = pd.read_csv(source / "labels.csv")
    patients = pd.read_csv(source / "meta.csv").set_index("image")["Patient ID"]
    order = sorted(patients.unique())
    fold = labels["image"].map(patients).map({p: i % 5 for i, p in enumerate(order)})
    train, val, test = labels[fold <= 2], labels[fold == 3], labels[fold == 4]
    train.to_csv(folder / "train.csv", index=False)
    val.to_csv(folder / "val.csv", index=False)
    test[["image"]].to_csv(folder / "test.csv", index=False)
    test.to_csv(folder / "test_labels.csv", index=False)


@pytest.fixture(scope="module")
def nih_workspace(shared_data, tmp_path_factory):
    source = shared_data / "nih-cxr14-64px"
    if not (source / "labels.csv").is_file():
        pytest.skip(f"{source} has no labels.csv")
    workspace = Workspace.open(tmp_path_factory.mktemp("nih_ws") / "nih")
    folder = workspace.dataset("nih")
    folder.mkdir(parents=True)
    shutil.copytree(source / "images", folder / "images")
    _write_splits(source, folder)
    overrides = [
        "data.train_csv=${workspace}/datasets/nih/train.csv", "data.val_csv=${workspace}/datasets/nih/val.csv",
        "data.image_root=${workspace}/datasets/nih/images", "data.label_space=null", "data.image_size=64",
        "optim.phase2.epochs=1", "optim.max_steps_per_epoch=2", "optim.batch_size=8", "optim.num_workers=0",
    ]  # fmt: skip
    command = ["train", "--config", str(REPO_ROOT / "train_jobs" / "demo_csra.yaml"), *overrides]
    command += ["--workspace", str(workspace.root), "--run-name", "nih_tiny", "--no-progress"]
    assert cxrlt(command) == 0
    return workspace


@pytest.fixture
def app(nih_workspace, monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    class NavigationPages(PagesManager):  # run app.py on every rerun, as the server does (see test_dashboard.py)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(st_testing.app_test, "PagesManager", NavigationPages)
    monkeypatch.setenv("CXRLT_WORKSPACE", str(nih_workspace.root))
    monkeypatch.chdir(REPO_ROOT)
    test = st_testing.AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=300)
    test.run()
    return test


def test_the_run_wrote_predictions_in_the_data_label_space(nih_workspace):
    from cxrlt_core.predictions import read_predictions

    predictions = nih_workspace.run("nih_tiny") / "predictions"
    for split in ("val", "test"):
        pred = read_predictions(predictions / f"{split}.parquet")
        assert len(pred.classes) == NIH_CLASSES and "No Finding" in pred.classes


def test_every_page_renders_and_the_export_speaks_nih(app, nih_workspace):
    for info in PAGES:
        app.switch_page(info.path).run()
        assert not app.exception, (info.path, [e.message for e in app.exception])
        assert app.title, f"{info.path} is blank"
    app.switch_page("pages/6_Export.py").run()
    assert any("nih14" in c.value for c in app.caption)
    assert app.multiselect(key="x_runs").value == ["nih_tiny"]
    next(s for s in app.selectbox if s.label == "TTA").set_value("none")
    app.text_input(key="x_name1").set_value("nih_task1").run()
    next(b for b in app.button if b.label == "Build Task 1 submission").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Valid submission" in s.value for s in app.success)
    submission = pd.read_csv(nih_workspace.exports_dir / "nih_task1.csv")
    test_ids = pd.read_csv(nih_workspace.dataset("nih") / "test.csv")["image"]
    assert len(submission) == len(test_ids) and submission.shape[1] == 1 + NIH_CLASSES
    assert {"No Finding", "Effusion", "Pleural_Thickening"} <= set(submission.columns)
