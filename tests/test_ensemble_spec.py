"""Ensemble spec files: parsing, checks naming the member, and `cxrlt predict --ensemble` = the same checkpoints and
weights given one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrlt_core.cli import main
from cxrlt_core.data.demo.generate import generate_demo_dataset
from cxrlt_core.data.images import Preprocess
from cxrlt_core.errors import InputError
from cxrlt_core.inference.ensemble_spec import load_ensemble_spec
from cxrlt_core.labels import get_label_space
from cxrlt_core.models.checkpoint import save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model
from cxrlt_core.predictions import read_predictions

SPACE = get_label_space("cxrlt2026")


def _checkpoint(path: Path, size: int, seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        backbone="convnextv2_atto",
        head="csra",
        class_names=list(SPACE.in_distribution),
        label_space=SPACE.to_dict(),
        input_size=size,
        drop_path_rate=0.0,
    )
    save_checkpoint(path, build_model(cfg), {"preprocess": Preprocess(image_size=size).to_dict()})
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ensemble")
    (root / "models").mkdir()
    return {
        "root": root,
        "small": _checkpoint(root / "models" / "small.safetensors", 32, 0),
        "large": _checkpoint(root / "models" / "large.safetensors", 48, 1),
    }


def _write(root: Path, text: str) -> Path:
    path = root / "spec.yaml"
    path.write_text(text)
    return path


def test_spec_reads_members_relative_to_its_folder(members):
    spec_file = _write(
        members["root"],
        "name: multires\nmembers:\n"
        "  - {checkpoint: models/small.safetensors, input_size: 32, weight: 1.5}\n"
        f"  - {{checkpoint: {members['large']}, input_size: 48}}\n",
    )
    spec = load_ensemble_spec(spec_file)
    assert spec.name == "multires" and spec.checkpoints == [members["small"], members["large"]]
    assert spec.weights == [1.5, 1.0] and [m.input_size for m in spec.members] == [32, 48]


@pytest.mark.parametrize(
    "member, message",
    [
        ("{checkpoint: models/small.safetensors, input_size: 48}", "member 1: input_size 48 but small"),
        ("{checkpoint: models/none.safetensors}", "member 1: checkpoint .* does not exist"),
        ("{checkpoint: models/small.safetensors, weight: -1}", "member 1: weight"),
        ("{checkpoint: models/small.safetensors, size: 32}", "member 1: unknown key"),
        ("{weight: 1}", "member 1 needs a 'checkpoint'"),
    ],
)
def test_bad_members_are_named(members, member, message):
    spec_file = _write(members["root"], f"members:\n  - {member}\n")
    with pytest.raises(InputError, match=message):
        load_ensemble_spec(spec_file)
    with pytest.raises(InputError, match="non-empty 'members'"):
        load_ensemble_spec(_write(members["root"], "name: x\n"))


@pytest.mark.slow
def test_predict_with_an_ensemble_spec_equals_explicit_checkpoints(members, tmp_path, capsys):
    data = generate_demo_dataset(
        tmp_path / "demo", n_train=4, n_val=4, n_test=6, image_size=64, workers=1, progress=lambda d, t: None
    )
    spec_file = _write(
        members["root"],
        "members:\n  - {checkpoint: models/small.safetensors, input_size: 32, weight: 3}\n"
        "  - {checkpoint: models/large.safetensors, input_size: 48, weight: 1}\n",
    )
    common = ["--labels", data / "test.csv", "--images", data / "images", "--tta", "none", "--gating-alpha", "0"]
    common += ["--batch-size", 3, "--num-workers", 0, "--no-progress"]
    by_spec, explicit = tmp_path / "spec.parquet", tmp_path / "explicit.parquet"
    assert main([str(a) for a in ["predict", "--ensemble", spec_file, "--out", by_spec, *common]]) == 0
    argv = ["predict", "--checkpoint", members["small"], "--checkpoint", members["large"], "--weights", 3, 1]
    assert main([str(a) for a in [*argv, "--out", explicit, *common]]) == 0
    a, b = read_predictions(by_spec), read_predictions(explicit)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    assert main([str(a) for a in ["predict", "--ensemble", spec_file, "--checkpoint", members["small"], "--out",
                                  tmp_path / "x.parquet", *common]]) == 1  # fmt: skip
    assert "leave out --checkpoint" in capsys.readouterr().err
