"""ML-Decoder head: shapes, attention rows, query permutation, group FC and the 2-D sine-cosine encoding by hand."""

from __future__ import annotations

import math

import pytest
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.models.heads import build_head
from cxrlt_core.models.ml_decoder import sincos_position_encoding

C_FEAT, H, W = 12, 3, 4
SMALL = {"embed_dim": 8, "num_heads": 2, "ffn_dim": 16}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _feat(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, C_FEAT, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("groups, layers", [(-1, 1), (3, 2), (1, 1)])
def test_shapes_and_attention_rows_sum_to_one(groups, layers):
    torch.manual_seed(0)
    head = build_head("ml_decoder", C_FEAT, 7, {**SMALL, "num_groups": groups, "num_layers": layers}).eval()
    with torch.no_grad():
        logits, maps = head.forward_with_maps(_feat())
    assert logits.shape == (2, 7) and maps.shape == (2, 7, H, W)
    assert head.num_groups == (7 if groups == -1 else groups)
    assert torch.allclose(maps.sum(dim=(2, 3)), torch.ones(2, 7), atol=1e-5)
    assert (maps >= 0).all()
    # classes of one group share that group's query, hence its attention map
    same = head.class_group == head.class_group[0]
    assert torch.equal(maps[:, same], maps[:, :1].expand(-1, int(same.sum()), -1, -1))
    assert torch.allclose(logits, head(_feat()), atol=1e-6)


def test_permuting_queries_permutes_outputs_and_maps():
    torch.manual_seed(1)
    head = build_head("ml_decoder", C_FEAT, 5, SMALL).eval()
    with torch.no_grad():
        logits, maps = head.forward_with_maps(_feat())
        perm = torch.tensor([3, 0, 4, 1, 2])
        head.queries.copy_(head.queries[perm])
        head.group_weight.copy_(head.group_weight[perm])
        head.group_bias.copy_(head.group_bias[perm])
        logits_p, maps_p = head.forward_with_maps(_feat())
    assert torch.allclose(logits_p, logits[:, perm], atol=1e-5)
    assert torch.allclose(maps_p, maps[:, perm], atol=1e-6)


def test_group_fully_connected_by_hand():
    """K = 5 classes in G = 2 groups of ⌈5/2⌉ = 3: logit_k = q_{k // 3} · W[k // 3][:, k % 3] + b_k."""
    torch.manual_seed(2)
    head = build_head("ml_decoder", C_FEAT, 5, {**SMALL, "num_groups": 2}).eval()
    captured = {}
    layer = head.layers[-1]
    layer.register_forward_hook(lambda _m, _i, out: captured.update(q=out[0]))
    with torch.no_grad():
        head.group_bias.copy_(torch.arange(5.0))
        logits = head(_feat())
    q = captured["q"]  # (B, G, D)
    for k in range(5):
        g, j = divmod(k, 3)
        expected = q[:, g] @ head.group_weight[g, :, j] + k
        assert torch.allclose(logits[:, k], expected, atol=1e-5)


def test_fixed_queries_are_a_saved_buffer_unless_learned():
    head = build_head("ml_decoder", C_FEAT, 4, SMALL)
    assert "queries" in head.state_dict() and all(p is not head.queries for p in head.parameters())
    learned = build_head("ml_decoder", C_FEAT, 4, {**SMALL, "learn_queries": True})
    assert any(p is learned.queries for p in learned.parameters())


def test_sincos_position_encoding_by_hand():
    pe = sincos_position_encoding(8, 3, 5)  # quarter = 2: ω = (1, 1/100)
    assert pe.shape == (8, 3, 5)
    r, c = 2, 4
    expected = [
        math.sin(r), math.sin(r / 100), math.cos(r), math.cos(r / 100),
        math.sin(c), math.sin(c / 100), math.cos(c), math.cos(c / 100),
    ]  # fmt: skip
    assert pe[:, r, c].tolist() == pytest.approx(expected, abs=1e-6)
    assert pe[:, 0, 0].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert sincos_position_encoding(6, 2, 2).shape == (6, 2, 2)  # padded to 8 and cut back


def test_position_encoding_changes_logits_only_when_on():
    torch.manual_seed(3)
    plain = build_head("ml_decoder", C_FEAT, 4, SMALL).eval()
    with_pe = build_head("ml_decoder", C_FEAT, 4, {**SMALL, "pos_encoding": True}).eval()
    with_pe.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(_feat()), with_pe(_feat()))


def test_bad_settings_are_input_errors():
    with pytest.raises(InputError, match="ml_decoder"):
        build_head("ml_decoder", C_FEAT, 4, {"embed_dim": 10, "num_heads": 3})
    with pytest.raises(InputError, match="no parameter"):
        build_head("ml_decoder", C_FEAT, 4, {"groups": 2})
