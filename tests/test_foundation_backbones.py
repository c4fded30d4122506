"""Foundation-style timm backbones (ViT, DINOv2 with registers, Swin, MaxViT, EfficientNetV2) as Task 1 backbones:
feature maps from tokens, heads and maps, Grad-CAM on token outputs, layer-wise learning-rate decay. No downloads:
random weights, small inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlt_core.explain import grad_cam
from cxrlt_core.models import ModelConfig, build_model
from cxrlt_core.models.tokens import patch_grid, to_feature_map

SIZE = 64
BACKBONES = {  # name: (input size, feature map side)
    "vit_tiny_patch16_224": (64, 4),
    "vit_small_patch14_reg4_dinov2": (56, 4),
    "swin_tiny_patch4_window7_224": (64, 2),
    "maxvit_pico_rw_256": (64, 2),
    "efficientnetv2_rw_t": (64, 2),
}


@pytest.fixture(autouse=True, scope="module")
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(backbone: str, size: int, head: str = "csra") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, head=head, class_names=["a", "b", "c"], input_size=size, drop_path_rate=0.0)
    return build_model(cfg).eval()


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_family_gives_a_feature_map_logits_and_maps(backbone):
    size, side = BACKBONES[backbone]
    model = _model(backbone, size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feat = model.forward_features(x)
        logits, maps = model.forward_with_maps(x)
    assert feat.shape == (2, model.backbone.num_features, side, side)
    assert logits.shape == (2, 3) and maps.shape == (2, 3, side, side)
    assert torch.allclose(maps.sum(dim=(2, 3)), torch.ones(2, 3), atol=1e-5)  # CSRA attention


def test_tokens_are_laid_out_on_the_patch_grid_without_prefix_tokens():
    model = _model("vit_small_patch14_reg4_dinov2", 56)
    backbone = model.backbone
    assert backbone.num_prefix_tokens == 5  # the class token and 4 registers
    tokens = torch.randn(2, 5 + 16, backbone.num_features)
    fmap = to_feature_map(tokens, backbone, (56, 56))
    assert fmap.shape == (2, backbone.num_features, 4, 4)
    # patch token k (row-major) lands at (k // 4, k % 4)
    assert torch.equal(fmap[:, :, 2, 3], tokens[:, 5 + 2 * 4 + 3])
    assert patch_grid(backbone, (56, 56), 16) == (4, 4)
    nhwc = torch.randn(2, 3, 5, 7)
    swin = _model("swin_tiny_patch4_window7_224", 64).backbone
    assert torch.equal(to_feature_map(nhwc, swin, (64, 64)), nhwc.permute(0, 3, 1, 2))


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "convnextv2_atto"])
def test_grad_cam_on_token_outputs_and_feature_maps(backbone):
    model = _model(backbone, SIZE)
    heat = grad_cam(model, torch.randn(1, 3, SIZE, SIZE), class_index=1)
    assert heat.shape == (SIZE, SIZE) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0


def test_layer_wise_learning_rate_decay_by_depth():
    model = _model("vit_tiny_patch16_224", SIZE)
    groups = model.param_groups(1e-3, 1e-2, 0.05, 0.0, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    depth = len(model.backbone.blocks)  # 12 blocks between the patch embedding and the final norm
    assert lr_of[id(model.backbone.patch_embed.proj.weight)] == pytest.approx(1e-3 * 0.5**depth)
    for i, block in enumerate(model.backbone.blocks):
        assert lr_of[id(block.attn.qkv.weight)] == pytest.approx(1e-3 * 0.5 ** (depth - 1 - i))
    assert lr_of[id(model.backbone.norm.weight)] == pytest.approx(1e-3)
    assert all(lr_of[id(p)] == 1e-2 for p in model.head.parameters())
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    biases = [g for g in groups if any(p is model.backbone.blocks[0].attn.qkv.bias for p in g["params"])]
    assert biases[0]["weight_decay"] == 0.0


def test_pretrained_vit_file_at_another_input_size_resamples_positions(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)  # 14 x 14 patches
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    cfg = ModelConfig(backbone="vit_tiny_patch16_224", head="linear", class_names=["a"], input_size=SIZE,
                      pretrained=str(tmp_path / "vit.safetensors"))  # fmt: skip
    model = build_model(cfg)
    assert model.backbone.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(model.backbone.blocks[3].mlp.fc1.weight, source.blocks[3].mlp.fc1.weight)
    assert torch.equal(model.backbone.pos_embed[0, 0], source.pos_embed[0, 0])  # the class token's own position
