"""Model specs and loading: a tiny open_clip model round-trips through save_local_dir and every spec form."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.zeroshot.loading import load_model, parse_model_spec, save_local_dir

TINY_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}
TINY_PREPROCESS = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
TEXTS = ["a chest x-ray showing bulla", "no bulla", "lateral curvature of the spine"]


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    """Register TINY_CFG (and a wider variant) as open_clip architectures with ``open_clip.add_model_config``."""
    import open_clip

    folder = tmp_path_factory.mktemp("configs")
    wide = {**TINY_CFG, "embed_dim": 24}
    for name, cfg in (("cxrlt-test-tiny", TINY_CFG), ("cxrlt-test-wide", wide)):
        (folder / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder / f"{name}.json")
    return "cxrlt-test-tiny"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised tiny CLIP built from a custom config, saved in open_clip's local-dir format."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CFG).eval()
    folder = save_local_dir(model, tmp_path_factory.mktemp("tiny") / "tiny_clip", TINY_CFG, TINY_PREPROCESS)
    return model, folder


def _reference_embeddings(model, images):
    import open_clip
    import torch

    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS)
    with torch.no_grad():
        return (
            model.encode_text(tokens, normalize=True).numpy(),
            model.encode_image(images, normalize=True).numpy(),
        )


def test_local_dir_round_trip_gives_identical_embeddings(tiny):
    import torch

    model, folder = tiny
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text_ref, image_ref = _reference_embeddings(model, images)
    loaded = load_model(f"local-dir:{folder}", device="cpu")
    np.testing.assert_array_equal(loaded.encode_text(TEXTS), text_ref)
    np.testing.assert_array_equal(loaded.encode_image_tensor(images), image_ref)
    assert loaded.embed_dim == 16 and loaded.image_size == (32, 32)
    assert loaded.preprocess_cfg["mean"] == [0.5, 0.5, 0.5]  # the saved preprocess travels with the model
    assert loaded.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    assert (folder / "open_clip_model.safetensors").is_file()
    # A plain folder path is read as local-dir too, with the same identity.
    assert load_model(str(folder), device="cpu").model_id == loaded.model_id


def test_checkpoint_spec_loads_a_safetensors_file_into_an_architecture(tiny, tiny_arch, tmp_path):
    import open_clip
    import torch
    from safetensors.torch import save_file

    model, folder = tiny
    weights = folder / "open_clip_model.safetensors"
    loaded = load_model(f"{tiny_arch}@{weights}", device="cpu")
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    text_ref, image_ref = _reference_embeddings(model, images)
    np.testing.assert_array_equal(loaded.encode_text(TEXTS), text_ref)
    np.testing.assert_array_equal(loaded.encode_image_tensor(images), image_ref)
    assert load_model(tiny_arch, checkpoint=weights, device="cpu").model_id == loaded.model_id
    # Other weights, other cache identity.
    state = open_clip.load_checkpoint.__globals__["load_state_dict"](str(weights))
    save_file({k: (v + 1).contiguous() for k, v in state.items()}, str(tmp_path / "other.safetensors"))
    other = load_model(f"{tiny_arch}@{tmp_path / 'other.safetensors'}", device="cpu")
    assert other.model_id != loaded.model_id


def test_weights_that_do_not_fit_are_one_line(tiny, tiny_arch):
    _, folder = tiny
    with pytest.raises(InputError) as info:
        load_model(f"cxrlt-test-wide@{folder / 'open_clip_model.safetensors'}", device="cpu")
    assert "do not fit the architecture" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "kind", "arch", "source"),
    [
        ("hf-hub:yyupenn/whyxrayclip", "hf-hub", None, "yyupenn/whyxrayclip"),
        ("ViT-B-32:openai", "pretrained", "ViT-B-32", "openai"),
        ("local-dir:/models/demo", "local-dir", None, "/models/demo"),
        ("ViT-B-16@/w/model.safetensors", "checkpoint", "ViT-B-16", "/w/model.safetensors"),
    ],
)
def test_parse_model_spec(spec, kind, arch, source):
    parsed = parse_model_spec(spec)
    assert (parsed.kind, parsed.arch, parsed.source) == (kind, arch, source)
    assert str(parsed) == spec


def test_whyxrayclip_gets_the_vit_l_14_tokenizer():
    assert parse_model_spec("hf-hub:yyupenn/whyxrayclip").tokenizer == "ViT-L-14"
    assert parse_model_spec("hf-hub:yyupenn/whyxrayclip", tokenizer="ViT-B-32").tokenizer == "ViT-B-32"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty model spec"),
        ("hf-hub:noslash", "expected hf-hub:ORG/NAME"),
        ("ViT-B-32:nope", "unknown pretrained tag 'nope' for ViT-B-32; known: openai"),
        ("ViT-B-99:openai", "unknown open_clip architecture 'ViT-B-99'; did you mean"),
        ("ViT-B-32", "names an architecture but no weights"),
        ("local-dir:", "no folder after local-dir:"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(InputError, match=message):
        parse_model_spec(spec)


def test_missing_local_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(f"local-dir:{tmp_path / 'absent'}")
    with pytest.raises(InputError, match="open_clip_config.json not found"):
        load_model(f"local-dir:{tmp_path}")
    (tmp_path / "open_clip_config.json").write_text('{"model_cfg": {}}')
    with pytest.raises(InputError, match="no weights in"):
        load_model(f"local-dir:{tmp_path}")
    with pytest.raises(InputError, match="checkpoint file .* not found"):
        load_model(f"RN50@{tmp_path / 'absent.pt'}")


def test_offline_hub_model_is_one_clear_line(tmp_path):
    """Through the real CLI in a fresh process: HF_HUB_OFFLINE=1 and an empty HF cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    labels = tmp_path / "test.csv"
    labels.write_text("ImageID\na.png\n")
    result = subprocess.run(
        [sys.executable, "-m", "cxrlt_core.cli", "zeroshot", "predict", "--model", "hf-hub:yyupenn/whyxrayclip",
         "--labels", str(labels), "--images", str(tmp_path), "--out", str(tmp_path / "p.csv"), "--no-cache"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: model hf-hub:yyupenn/whyxrayclip: open_clip_config.json not found")
    assert "HF_HUB_OFFLINE=1" in line and "hf download yyupenn/whyxrayclip" in line
    assert "local-dir:" in line and str(tmp_path / "hf" / "hub") in line
