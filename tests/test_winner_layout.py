"""The MLP model pools as timm's ``num_classes=0`` model (LN(GAP)); checkpoints in the winners' layout load and give
the winners' logits; head initialisation bounds; transfer keeps the hidden layers bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
from cxrlt_core.models.heads import init_head
from tests.winners_reference import WinnerCSRA, WinnerMLP, randomise

CLASSES = ["Normal", "a", "b", "c", "d"]
ATTO = "convnextv2_atto"


def _cfg(head: str, **extra) -> ModelConfig:
    return ModelConfig(backbone=ATTO, head=head, class_names=CLASSES, drop_path_rate=0.0, input_size=64, **extra)


def test_ln_gap_versus_gap_ln_on_a_tiny_feature_map():
    pooled = build_model(_cfg("mlp")).eval()
    legacy = build_model(_cfg("mlp", pooling="feature_map")).eval()
    channels = pooled.backbone.num_features
    # two positions: p1 alternates 0, 2 (mean 1, variance 1 -> LN = -1, +1); p2 is constant 1 (LN = 0)
    p1 = torch.tensor([0.0, 2.0]).repeat(channels // 2)
    p2 = torch.ones(channels)
    feat = torch.stack([p1, p2], dim=1).view(1, channels, 1, 2)
    # LN(GAP): GAP = 0.5, 1.5, ... (mean 1, variance 0.25) -> -1, +1;  GAP(LN) = (LN(p1) + LN(p2)) / 2 = -0.5, +0.5
    expected_ln_gap = torch.tensor([-1.0, 1.0]).repeat(channels // 2) / math.sqrt(1 + 1e-6 / 0.25)
    expected_gap_ln = torch.tensor([-0.5, 0.5]).repeat(channels // 2) / math.sqrt(1 + 1e-6)
    with torch.no_grad():
        torch.testing.assert_close(pooled.pool(feat)[0], expected_ln_gap, atol=1e-5, rtol=0)
        torch.testing.assert_close(legacy.backbone.forward_head(feat).mean(dim=(2, 3))[0], expected_gap_ln)


@pytest.mark.parametrize("kind", ["mlp", "csra"])
def test_winner_layout_checkpoint_gives_the_winners_logits(tmp_path, kind):
    winner = randomise(WinnerMLP(ATTO, len(CLASSES)) if kind == "mlp" else WinnerCSRA(ATTO, len(CLASSES)), 3)
    path = tmp_path / "winner.pth"
    torch.save({"model_state_dict": winner.state_dict(), "epoch": 7}, path)
    model = build_model(_cfg(kind, pretrained=str(path))).eval()
    report = model.pretrained_report
    assert report.note == "head loaded" and not report.missing and not report.dropped
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = winner(x)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
        logits, maps = model.forward_with_maps(x)
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
        assert maps.shape == (2, len(CLASSES), 2, 2)
    assert expected.std() > 0.1  # the weights make the logits depend on the input
    if kind == "mlp":  # the old GAP(LN) path gives other logits on the same weights
        legacy = build_model(_cfg("mlp", pooling="feature_map", pretrained=str(path))).eval()
        with torch.no_grad():
            assert (legacy(x) - expected).abs().max() > 1e-2
    # and the cxrlt checkpoint made from it keeps giving them
    save_checkpoint(tmp_path / "c.safetensors", model)
    loaded, _ = load_checkpoint(tmp_path / "c.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-5)


def test_winning_code_head_init_xavier_bounds_and_zero_bias():
    torch.manual_seed(0)
    head = build_model(_cfg("csra", head_init="winning_code")).head
    c, k = head.classifier.in_features, len(CLASSES)
    # Xavier-uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); c + k = 325 -> 0.13587
    bound = math.sqrt(6.0 / (c + k))
    assert bound == pytest.approx(0.13587, abs=1e-5)
    for weight in (head.classifier.weight, head.conv_att.weight):
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # std of U(-a, a) = a / sqrt(3)
    assert not head.classifier.bias.any()
    default = build_model(_cfg("csra")).head  # PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert default.classifier.weight.abs().max() <= 1 / math.sqrt(c) and default.classifier.bias.any()
    with pytest.raises(InputError, match="unknown head_init"):
        init_head(head, "he")


def test_transfer_keep_hidden_keeps_the_hidden_layers_bit_for_bit(tmp_path):
    torch.manual_seed(1)
    stage1 = build_model(
        ModelConfig(backbone=ATTO, head="mlp", class_names=[f"f{i}" for i in range(14)], input_size=64)
    )
    randomise(stage1, 5)
    save_checkpoint(tmp_path / "stage1.safetensors", stage1)
    source = str(tmp_path / "stage1.safetensors")
    kept = build_model(_cfg("mlp", pretrained=source), transfer="keep_hidden")
    s1 = stage1.state_dict()
    for key, value in kept.state_dict().items():
        if key.startswith("head.classifier.6."):
            assert value.shape[0] == len(CLASSES)  # the new output layer, freshly initialised
        else:
            assert torch.equal(value, s1[key]), key  # backbone and hidden layers: the same bits
    assert torch.equal(kept.head.classifier[6].bias, torch.full((len(CLASSES),), -2.0))
    assert "classifier.6" in kept.pretrained_report.note
    fresh = build_model(_cfg("mlp", pretrained=source), transfer="reinit_head")
    assert not torch.equal(fresh.head.classifier[2].weight, s1["head.classifier.2.weight"])
    assert torch.equal(fresh.backbone.stem[0].weight, s1["backbone.stem.0.weight"])
    with pytest.raises(InputError, match="keep_hidden"):
        build_model(_cfg("csra", pretrained=source), transfer="keep_hidden")
