"""Dashboard paths stay inside the workspace: Train-page overrides that leave it are refused unless allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cxrlt_core import jobs
from cxrlt_core.errors import InputError
from cxrlt_core.pathguard import check_override_paths, inside, override_paths, paths_outside
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.workspace import Workspace

RECIPE = REPO_ROOT / "train_jobs" / "demo_csra.yaml"


def test_which_overrides_are_paths():
    overrides = [
        "data.train_csv=/etc/passwd",
        "data.image_root=${workspace}/datasets/demo/images",
        "data.cache_dir=../cache",
        "model.pretrained=timm",
        "model.pretrained=hf-hub:timm/convnextv2_atto.fcmae",
        "model.pretrained=~/weights.safetensors",
        "optim.phase1.lr=0.1",
        "data.val_csv=none",
    ]
    assert [key for key, _ in override_paths(overrides)] == [
        "data.train_csv",
        "data.image_root",
        "data.cache_dir",
        "model.pretrained",
    ]


def test_paths_outside_the_workspace(tmp_path: Path, monkeypatch):
    ws = tmp_path / "ws"
    (ws / "datasets").mkdir(parents=True)
    os.symlink("/etc", ws / "datasets" / "etc_link")
    monkeypatch.chdir(ws)
    ok = ["data.train_csv=${workspace}/datasets/x.csv", "data.image_root=datasets/images"]
    assert paths_outside(ok, ws) == []
    bad = [
        "data.train_csv=/etc/passwd",
        "data.cache_dir=../elsewhere",
        "data.image_root=${workspace}/datasets/etc_link",  # inside by name, outside once the link is followed
    ]
    problems = paths_outside(bad, ws)
    assert len(problems) == 3
    assert problems[0] == f"data.train_csv=/etc/passwd: /etc/passwd is outside the workspace {ws.resolve()}"
    assert str(tmp_path / "elsewhere") in problems[1] and "/etc is outside" in problems[2]
    with pytest.raises(InputError, match=r"data.train_csv=/etc/passwd: .* \(\+2 more\); put the data under"):
        check_override_paths(bad, ws)
    check_override_paths(bad, ws, allow_outside=True)
    assert inside(ws / "datasets", ws) and not inside(tmp_path, ws)


def test_launch_refuses_outside_paths_before_anything_starts(tmp_path: Path):
    ws = Workspace.open(tmp_path / "ws")
    spec = jobs.LaunchSpec(recipe=RECIPE, run_name="r", overrides=("data.train_csv=/etc/passwd",))
    with pytest.raises(InputError, match="data.train_csv=/etc/passwd: /etc/passwd is outside the workspace"):
        jobs.launch(spec, ws)
    assert not ws.run("r").exists()


@pytest.mark.slow
def test_train_page_refuses_an_override_outside_the_workspace(tiny_workspace, monkeypatch):
    st_testing = pytest.importorskip("streamlit.testing.v1")
    monkeypatch.setenv("CXRLT_WORKSPACE", str(tiny_workspace.root))
    monkeypatch.chdir(REPO_ROOT)
    app = st_testing.AppTest.from_file(str(REPO_ROOT / "pages" / "1_Train.py"), default_timeout=120)
    app.run()
    next(t for t in app.text_input if t.label == "Run name").set_value("escape")
    more = next(t for t in app.text_input if t.label.startswith("More overrides"))
    more.set_value("data.train_csv=/etc/passwd data.cache_dir=/tmp/elsewhere")
    next(b for b in app.button if b.label == "Launch").click().run()
    assert not app.exception
    shown = " ".join(str(e.value) for e in app.error)
    assert "data.train_csv=/etc/passwd" in shown and "outside the workspace" in shown and "(+1 more)" in shown
    assert not any("Launched" in s.value for s in app.success)
    assert not tiny_workspace.run("escape").exists()
    assert any(c.label == "Allow paths outside the workspace" for c in app.checkbox)
