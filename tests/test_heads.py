"""Heads on small feature tensors: every registered head forward/backward, maps, and each formula by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.models.heads import CSRA_TEMPERATURES, HEADS, CSRAMultiHead, build_head

C_FEAT, K, H, W = 16, 5, 4, 3
PARAMS = {
    "mlp": {"hidden": 8},
    "csra": {},
    "csra_mh": {"num_heads": 4},
    "linear": {},
    "ml_decoder": {"embed_dim": 8, "num_heads": 2, "ffn_dim": 16, "pos_encoding": True},
}


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models run faster on one intra-op thread; two threads spin against each other on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _feat(seed: int = 0, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, C_FEAT, H, W, generator=torch.Generator().manual_seed(seed))


def _randomise_norms(head: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode formulas are really tested."""
    gen = torch.Generator().manual_seed(1)
    for module in head.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen))
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=gen))
            module.bias.data.copy_(torch.randn(n, generator=gen))


def test_every_head_is_covered():
    assert set(PARAMS) == set(HEADS.names())


@pytest.mark.parametrize("name", HEADS.names())
def test_every_head_forward_backward_and_maps(name):
    head = build_head(name, C_FEAT, K, PARAMS[name])
    feat = _feat().requires_grad_()
    logits = head(feat)
    assert logits.shape == (3, K)
    logits.sum().backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all()
    assert all(p.grad is not None for p in head.parameters())
    head.eval()
    with torch.no_grad():
        again, maps = head.forward_with_maps(_feat())
        assert maps.shape == (3, K, H, W)
        assert torch.allclose(again, head(_feat()), atol=1e-6)
    assert head.map_kind in ("attention", "score")


def test_mlp_maps_are_the_head_at_each_position():
    head = build_head("mlp", C_FEAT, K, {"hidden": 8})
    _randomise_norms(head)
    head.eval()
    feat = _feat()
    with torch.no_grad():
        _, maps = head.forward_with_maps(feat)
        for i in range(H):
            for j in range(W):
                assert torch.allclose(maps[:, :, i, j], head(feat[:, :, i : i + 1, j : j + 1]), atol=1e-5)
    # In training mode the maps leave the running statistics to the logits' forward alone.
    twin = copy.deepcopy(head).train()
    head.train()
    torch.manual_seed(0)
    head.forward_with_maps(feat)
    torch.manual_seed(0)  # same dropout masks
    twin(feat)
    assert torch.equal(head.classifier[0].running_mean, twin.classifier[0].running_mean)
    assert torch.equal(head.classifier[4].running_var, twin.classifier[4].running_var)


def test_mlp_last_bias_starts_at_minus_two():
    head = build_head("mlp", C_FEAT, K)
    assert head.classifier[-1].bias.detach().numpy() == pytest.approx([-2.0] * K)
    assert head.classifier[2].out_features == 512 and head.classifier[1].p == 0.3


def test_csra_matches_hand_computed_formula():
    lam = 0.1
    head = build_head("csra", C_FEAT, K, {"lam": lam})
    _randomise_norms(head)
    head.eval()
    feat = _feat()
    with torch.no_grad():
        logits, maps = head.forward_with_maps(feat)
    x = feat.numpy().astype(np.float64)
    bn = head.bn
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    gamma, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    weight, bias = head.classifier.weight.detach().numpy(), head.classifier.bias.detach().numpy()
    att_w = head.conv_att.weight.detach().numpy()[:, :, 0, 0]
    for b in range(3):
        xn = (x[b] - mean[:, None, None]) / np.sqrt(var[:, None, None] + bn.eps) * gamma[:, None, None]
        xn = xn + beta[:, None, None]
        positions = [xn[:, i, j] for i in range(H) for j in range(W)]
        gap = sum(positions) / len(positions)
        for k in range(K):
            scores = [float(att_w[k] @ v) for v in positions]
            exp = [np.exp(s - max(scores)) for s in scores]
            att = [e / sum(exp) for e in exp]
            class_feat = sum(a * v for a, v in zip(att, positions))
            expected = weight[k] @ gap + bias[k] + lam * (class_feat @ weight[k] + bias[k])
            assert logits[b, k].item() == pytest.approx(expected, rel=1e-4, abs=1e-5)
            assert maps[b, k].flatten().numpy() == pytest.approx(att, rel=1e-4, abs=1e-6)


def test_csra_mh_matches_hand_computed_formula():
    lam = 0.2
    head = build_head("csra_mh", C_FEAT, K, {"num_heads": 2, "lam": lam})
    feat = _feat()
    with torch.no_grad():
        logits, maps = head.forward_with_maps(feat)
    x = feat.numpy().astype(np.float64)
    expected = np.zeros((3, K))
    expected_maps = np.zeros((3, K, H * W))
    for branch, temperature in zip(head.multi_head, (1, 99)):
        w = branch.head.weight.detach().numpy()[:, :, 0, 0]
        for b in range(3):
            for k in range(K):
                s = np.array([w[k] @ x[b, :, i, j] for i in range(H) for j in range(W)]) / np.linalg.norm(w[k])
                if temperature == 99:
                    att = s.max()
                else:
                    soft = np.exp(temperature * s - (temperature * s).max())
                    att = float((s * soft / soft.sum()).sum())
                expected[b, k] += s.mean() + lam * att
                expected_maps[b, k] += s
    assert logits.numpy() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert maps.flatten(2).numpy() == pytest.approx(expected_maps, rel=1e-4, abs=1e-5)


def test_csra_mh_t99_is_max_pooling_the_limit_of_sharp_softmax():
    head = build_head("csra_mh", C_FEAT, K, {"num_heads": 2})
    branch = head.multi_head[1]
    assert branch.temperature == 99
    feat = _feat()
    with torch.no_grad():
        score = branch.score_map(feat)
        flat = score.flatten(2)
        assert torch.allclose(branch(feat), flat.mean(2) + 0.1 * flat.amax(2), atol=1e-6)
        branch.temperature = 1e4  # a finite but very sharp softmax converges to the max-pooling path
        sharp = branch(feat)
        branch.temperature = 99
        assert torch.allclose(sharp, branch(feat), atol=1e-3)


@pytest.mark.parametrize("num_heads", sorted(CSRA_TEMPERATURES))
def test_csra_mh_temperature_table(num_heads):
    head = CSRAMultiHead(C_FEAT, K, num_heads=num_heads)
    temps = [b.temperature for b in head.multi_head]
    assert temps == list(CSRA_TEMPERATURES[num_heads]) and len(temps) == num_heads
    assert temps[-1] == (1 if num_heads == 1 else 99)


def test_bad_head_settings_are_clear_errors():
    with pytest.raises(InputError, match="unknown head 'fc'"):
        build_head("fc", C_FEAT, K)
    with pytest.raises(InputError, match="no parameter"):
        build_head("csra", C_FEAT, K, {"num_heads": 2})
    with pytest.raises(InputError, match="num_heads must be one of"):
        build_head("csra_mh", C_FEAT, K, {"num_heads": 3})


def test_linear_head_maps_average_to_the_logits():
    head = build_head("linear", C_FEAT, K, {}).eval()
    feat = _feat()
    with torch.no_grad():
        logits, maps = head.forward_with_maps(feat)
        expected = feat.mean(dim=(2, 3)) @ head.fc.weight.T + head.fc.bias
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(maps.mean(dim=(2, 3)), logits, atol=1e-5)
    assert torch.allclose(maps[1, 2, 3, 0], feat[1, :, 3, 0] @ head.fc.weight[2] + head.fc.bias[2], atol=1e-6)
