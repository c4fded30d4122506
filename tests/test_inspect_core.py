"""The Inspect page's logic: calls from a saved post-processing choice, the shift message, the model card, and the
finer feature maps of a dilated backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.inference.calibration import Calibration
from cxrlt_core.inference.thresholds import Thresholds
from cxrlt_core.inspection import UNCALIBRATED_NOTE, choices_for_run, finding_table, shift_message
from cxrlt_core.model_card import card_lines, input_description, model_card, training_data
from cxrlt_core.postprocess_study import PostprocessChoice

CLASSES = ["Normal", "Mass", "Nodule"]


def _choice(folder: Path, name: str, run: str, thresholds: list[float]) -> None:
    # temperature T = 2 on logits: p -> sigmoid(logit(p) / 2)
    calibration = Calibration("temperature", tuple(CLASSES), [{"temperature": 2.0}] * 3)
    PostprocessChoice(0.0, "power", "temperature", True, {"predictions": f"runs/{run}/predictions/val.parquet"}).save(
        folder, name, calibration, Thresholds(tuple(CLASSES), thresholds)
    )


def test_without_a_saved_choice_scores_are_uncalibrated_and_uncalled() -> None:
    table, note = finding_table(np.array([0.2, 0.9, 0.5]), CLASSES, None, {"Mass": 1.0, "Nodule": float("nan")})
    assert note == UNCALIBRATED_NOTE and "call" not in table and "probability (calibrated)" not in table
    assert list(table["ground truth"]) == ["", "positive", ""]


def test_a_saved_choice_gives_calibrated_probabilities_and_calls(tmp_path: Path) -> None:
    _choice(tmp_path, "mine", "demo_csra", [0.5, 0.6, 0.4])
    _choice(tmp_path, "other_run", "demo_mlp", [0.5, 0.5, 0.5])
    choices = choices_for_run(tmp_path, "demo_csra")
    assert [c.name for c in choices] == ["mine"]
    table, note = finding_table(np.array([0.2, 0.9, 0.5]), CLASSES, choices[0])
    # logit(0.9) = 2.197 -> /2 = 1.0986 -> sigmoid = 0.75; logit(0.2) = -1.386 -> -0.693 -> 1/3; 0.5 stays 0.5
    np.testing.assert_allclose(table["probability (calibrated)"], [1 / 3, 0.75, 0.5], atol=1e-6)
    assert list(table["call"]) == ["negative", "positive", "positive"]  # 0.5 >= threshold 0.4
    assert "Calibrated with 'mine'" in note and "threshold" in note


def test_shift_message_warns_above_the_threshold_only() -> None:
    warn, text = shift_message(30.0, 20.0)
    assert warn and "unlike the images the model was trained on" in text and "1.5×" in text
    warn, text = shift_message(10.0, 20.0)
    assert not warn and "resembles" in text


def test_model_card_reads_the_sidecar_recipe_and_data_set(tmp_path: Path) -> None:
    data = tmp_path / "datasets" / "demo"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("ImageID,Mass\na.png,1\nb.png,0\nc.png,0\n")
    (data / "dataset.json").write_text(json.dumps({"name": "cxrlt-demo", "description": "Synthetic phantoms."}))
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  train_csv: ${workspace}/datasets/demo/train.csv\n")
    sidecar = {
        "run_id": "r1",
        "which": "best",
        "epoch": 5,
        "model": {
            "backbone": "convnextv2_atto",
            "head": "csra",
            "class_names": CLASSES,
            "input_size": 96,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        },
        "preprocess": {"image_size": [96, 96], "clip_low": 0.5, "clip_high": 99.5, "keep_aspect": False},
        "metrics": {"mAP": 0.3, "mAUC": 0.8},
    }
    card = model_card(run / "checkpoints" / "best.safetensors", sidecar, 3_400_000, workspace=tmp_path)
    assert card["training_data"]["images"] == 3 and card["training_data"]["synthetic"]
    assert "synthetic phantom" in card["intended_use"] and "Research only" in card["intended_use"]
    assert card["test"] is None  # no test predictions saved
    text = "\n".join(card_lines(card))
    assert "3.4 M parameters" in text and "96 x 96 px" in text and "3 channels" in text
    assert "mAP 0.300" in text and "no scored test" in text
    assert "aspect not kept" in input_description(sidecar)
    assert training_data(None)["synthetic"] is False


def test_output_stride_16_doubles_the_feature_map_side() -> None:
    import torch

    from cxrlt_core.errors import InputError
    from cxrlt_core.models.classifier import ModelConfig, build_model

    x = torch.zeros(1, 3, 64, 64)
    coarse = build_model(ModelConfig(head="csra", class_names=CLASSES, input_size=64))
    fine = build_model(ModelConfig(head="csra", class_names=CLASSES, input_size=64, output_stride=16))
    assert coarse.forward_with_maps(x)[1].shape[-2:] == (2, 2) and fine.forward_with_maps(x)[1].shape[-2:] == (4, 4)
    assert ModelConfig.from_dict(fine.cfg.to_dict()).output_stride == 16
    with pytest.raises(InputError, match="output_stride"):
        ModelConfig(class_names=CLASSES, output_stride=4)
