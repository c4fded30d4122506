"""Stage 1 -> Stage 2 pipelines: files, shipped pipelines, transfer through run:NAME, resuming per stage."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cxrlt_core import runs
from cxrlt_core.errors import InputError
from cxrlt_core.models import load_checkpoint
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.pipeline import load_pipeline, pipeline_names, run_pipeline, stage_states


def _dataset(folder, classes: list[str], n: int = 8) -> None:
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(len(classes))
    rows = []
    for i in range(n):
        name = f"i{i}.png"
        cv2.imwrite(str(folder / "images" / name), rng.integers(0, 255, (40, 40), dtype=np.uint8))
        labels = {c: int((i + k) % 3 == 0) for k, c in enumerate(classes)}
        rows.append({"ImageID": name, "PatientID": f"p{i // 2}", **labels})
    frame = pd.DataFrame(rows)
    frame.iloc[:6].to_csv(folder / "train.csv", index=False)
    frame.iloc[6:].to_csv(folder / "val.csv", index=False)


def _recipe(path, data, head: str, lr: float) -> None:
    recipe = {
        "name": path.stem,
        "data": {
            "train_csv": str(data / "train.csv"),
            "val_csv": str(data / "val.csv"),
            "image_root": str(data / "images"),
            "image_size": 32,
            "cache": False,
            "augment": {"enabled": False},
        },
        "model": {"backbone": "convnextv2_atto", "head": head, "drop_path_rate": 0.0, "pretrained": None},
        "loss": {"name": "bce"},
        "sampler": {"enabled": False},
        "optim": {
            "phase1": {"epochs": 0},
            "phase2": {"epochs": 1, "backbone_lr": lr, "head_lr": lr, "warmup_epochs": 0},
            "batch_size": 3,
            "num_workers": 0,
            "ema": {"enabled": False},
            "channels_last": False,
            "device": "cpu",
        },
        "profile": {"name": "winning_code"},
    }
    path.write_text(yaml.safe_dump(recipe))


@pytest.mark.slow
def test_two_stage_pipeline_transfers_and_resumes(tmp_path):
    _dataset(tmp_path / "d1", ["f1", "f2", "f3"])
    _dataset(tmp_path / "d2", ["Normal", "g1", "g2", "g3", "g4"])
    _recipe(tmp_path / "s1.yaml", tmp_path / "d1", "mlp", 1e-3)
    _recipe(tmp_path / "s2.yaml", tmp_path / "d2", "mlp", 0.0)  # lr 0: Stage 2 keeps what it was given
    spec = {
        "name": "twostage",
        "stages": [
            {"name": "one", "recipe": "s1.yaml"},
            {"name": "two", "recipe": "s2.yaml", "pretrained": "one", "transfer": "keep_hidden"},
        ],
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    pipeline = load_pipeline(tmp_path / "p.yaml")
    assert pipeline.overrides(pipeline.stage("two"))[-2:] == [
        "model.pretrained=run:twostage-one",
        "model.transfer=keep_hidden",
    ]
    ws = tmp_path / "ws"
    said: list[str] = []
    done = run_pipeline(pipeline, ws, show_progress=False, say=said.append)
    assert [d.name for d in done] == ["twostage-one", "twostage-two"]
    one, _ = load_checkpoint(runs.checkpoint_path(done[0], "best"))
    two, info = load_checkpoint(runs.checkpoint_path(done[1], "best"))
    for key in ("head.classifier.2.weight", "head.classifier.2.bias", "backbone.stem.0.weight"):
        assert torch.equal(one.state_dict()[key], two.state_dict()[key]), key  # kept bit for bit
    assert two.head.classifier[6].out_features == 5 and info["profile"]["name"] == "winning_code"
    assert [s for _, s in stage_states(pipeline, ws)] == ["finished", "finished"]
    # resumable per stage: finished stages are skipped; a stopped one is trained again from its state
    runs.write_status(done[1], "stopped")
    said.clear()
    run_pipeline(pipeline, ws, show_progress=False, say=said.append)
    assert "skipped" in said[0] and "resuming twostage-two" in said[1]
    assert runs.read_status(done[1])["state"] == "finished"


def test_pipeline_files_are_checked(tmp_path):
    assert pipeline_names() == ["cxrlt2026_two_stage", "demo_two_stage"]
    shipped = load_pipeline("cxrlt2026_two_stage")
    assert [s.transfer for s in shipped.stages] == [None, "keep_hidden", "reinit_head"]
    bad = {
        "name": "x",
        "stages": [{"name": "a", "recipe": "demo_csra", "pretrained": "b"}, {"name": "b", "recipe": "demo_mlp"}],
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(InputError, match="does not run before it"):
        load_pipeline(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text(
        yaml.safe_dump({"stages": [{"name": "a", "recipe": "demo_csra", "transfer": "all"}]})
    )
    with pytest.raises(InputError, match="transfer 'all'"):
        load_pipeline(tmp_path / "bad2.yaml")
    (tmp_path / "bad3.yaml").write_text(
        yaml.safe_dump({"stages": [{"name": "a", "recipe": "demo_csra", "overrides": ["optim.nope=1"]}]})
    )
    with pytest.raises(InputError, match="stage 'a'"):
        load_pipeline(tmp_path / "bad3.yaml")


def test_cli_pipeline_errors_are_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cxrlt_core.cli", "pipeline", "run", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 1 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_train_page_lists_pipelines_and_their_stages(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CXRLT_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.chdir(REPO_ROOT)
    app = AppTest.from_file(str(REPO_ROOT / "pages" / "1_Train.py"), default_timeout=120)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    picker = next(s for s in app.selectbox if s.label == "Pipeline")
    assert picker.options == ["cxrlt2026_two_stage", "demo_two_stage"]
    picker.set_value("demo_two_stage").run()
    table = next(df.value for df in app.dataframe if "transfer" in df.value.columns)
    assert list(table["run"]) == ["demo_two_stage-stage1", "demo_two_stage-mlp", "demo_two_stage-csra"]
    assert list(table["transfer"]) == ["—", "keep_hidden", "reinit_head"] and set(table["state"]) == {"not started"}
    assert any(b.label == "Run pipeline" for b in app.button)
