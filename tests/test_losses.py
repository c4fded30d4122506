"""Losses against their formulas computed by hand (plain numpy loops), NaN masking, DB weights, logit adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.losses import LOSSES, build_loss, loss_parameters

NAN = float("nan")
COUNTS = np.array([60.0, 25.0, 4.0, 1.0])
N_IMAGES = 100
LOGITS = np.array(
    [
        [1.2, -0.4, 0.3, -2.0],
        [-0.7, 2.1, -1.5, 0.8],
        [0.1, -3.0, 1.7, -0.2],
    ]
)
# Row 0: two positives; row 1: a NaN (unknown) entry; row 2: no positive at all (DB paper's infinite ratio).
TARGETS = np.array(
    [
        [1.0, 0.0, 0.0, 1.0],
        [0.0, 1.0, NAN, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)

# Every registered loss, plus the second DB variant, with parameters that exercise its options.
CASES = {
    "bce": ("bce", {}),
    "bce_balanced": ("bce", {"pos_weight": "balanced"}),
    "asl": ("asl", {}),
    "asl_weighted": ("asl", {"class_weights": "sqrt_inverse", "gamma_pos": 1.0}),
    "db_code": ("db", {}),
    "db_paper": ("db", {"variant": "paper", "preset": "constructor"}),
    "db_paper_nofocal": ("db", {"variant": "paper", "preset": "constructor", "focal": False}),
    "wbce": ("wbce", {}),
    "wasl": ("wasl", {}),
    "ldam_drw_on": ("ldam_drw", {"drw_epoch": 0, "scale": 2.0}),
    "ldam_drw_off": ("ldam_drw", {"drw_epoch": 3}),
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(z: float, y: float, pos_weight: float = 1.0) -> float:
    p = _sigmoid(z)
    return -(pos_weight * y * math.log(p) + (1 - y) * math.log(1 - p))


def _mean_known(per_entry) -> float:
    values = [v for row in per_entry for v in row if v is not None]
    return sum(values) / len(values)


def _reference(case: str, z: np.ndarray, y: np.ndarray) -> float:
    """The loss of ``case`` entry by entry, skipping NaN targets, then the mean over known entries."""
    n_rows, n_cls = y.shape
    counts = np.maximum(COUNTS, 1.0)
    out = [[None] * n_cls for _ in range(n_rows)]
    for i in range(n_rows):
        for c in range(n_cls):
            if math.isnan(y[i, c]):
                continue
            zi, yi = float(z[i, c]), float(y[i, c])
            if case == "bce":
                out[i][c] = _bce(zi, yi)
            elif case == "bce_balanced":
                out[i][c] = _bce(zi, yi, (N_IMAGES - COUNTS[c]) / COUNTS[c])
            elif case in ("asl", "asl_weighted"):
                gamma_pos = 1.0 if case == "asl_weighted" else 0.0
                weight = 1.0
                if case == "asl_weighted":
                    inv = [1.0 / math.sqrt(n) for n in counts]
                    weight = inv[c] / (sum(inv) / len(inv))
                p = _sigmoid(zi)
                if yi == 1:
                    value = -((1 - p) ** gamma_pos) * math.log(max(p, 1e-8))
                else:
                    pm = max(p - 0.05, 0.0)
                    value = -(pm**4) * math.log(max(1 - pm, 1e-8))
                out[i][c] = weight * value
            elif case in ("wbce", "wasl"):
                prevalence = COUNTS[c] / N_IMAGES
                weight = math.exp(1 - prevalence) if yi == 1 else math.exp(prevalence)
                p = _sigmoid(zi)
                if case == "wbce":
                    value = _bce(zi, yi)
                elif yi == 1:
                    value = -(1 - p) * math.log(max(p, 1e-8))
                else:
                    pm = max(p - 0.05, 0.0)
                    value = -(pm**4) * math.log(max(1 - pm, 1e-8))
                out[i][c] = weight * value
            elif case.startswith("ldam_drw"):
                scale = 2.0 if case == "ldam_drw_on" else 1.0
                margin = 0.5 * counts[c] ** -0.25 / min(counts) ** -0.25
                weight = 1.0
                if case == "ldam_drw_on":
                    eff = [(1 - 0.9999) / (1 - 0.9999**n) for n in counts]
                    weight = eff[c] / sum(eff) * len(eff)
                out[i][c] = weight * _bce(scale * (zi - yi * margin), yi)
            elif case == "db_code":
                beta = 0.9999
                eff = [(1 - beta) / (1 - beta**n) for n in counts]
                eff = [e / (sum(eff) / len(eff)) for e in eff]
                inv = [1 / e for e in eff]
                margin = 0.2 * (inv[c] - min(inv)) / (max(inv) - min(inv))
                out[i][c] = math.sqrt(eff[c]) * _bce(zi - yi * margin, yi)
            else:  # db_paper, db_paper_nofocal
                alpha, beta_m, gamma_m, lam, kappa = 10.0, 0.2, 0.1, 5.0, 0.1
                rate = sum(1.0 / counts[k] for k in range(n_cls) if y[i, k] == 1)
                ratio = (1.0 / counts[c]) / rate if rate > 0 else math.inf
                weight = alpha + (1.0 if ratio == math.inf else _sigmoid(beta_m * (ratio - gamma_m)))
                nu = -math.log(N_IMAGES / counts[c] - 1) * kappa / lam
                zz = zi + nu
                if yi == 0:
                    zz, weight = lam * zz, weight / lam
                b = _bce(zz, yi)
                value = weight * b
                if case == "db_paper":
                    value = 2.0 * (1 - math.exp(-b)) ** 2 * value
                out[i][c] = value
    return _mean_known(out)


def _loss(case: str, **extra):
    name, params = CASES[case]
    return build_loss(name, COUNTS, N_IMAGES, **{**params, **extra})


@pytest.mark.parametrize("case", list(CASES))
def test_loss_matches_hand_computed_formula(case):
    loss = _loss(case)
    value = loss(torch.tensor(LOGITS), torch.tensor(TARGETS))
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(_reference(case, LOGITS, TARGETS), rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_masking_equals_dropping(case):
    loss = _loss(case)
    z = torch.tensor(LOGITS, requires_grad=True)
    y = torch.tensor(TARGETS)
    full = loss(z, y)
    full.backward()
    # No gradient reaches an unknown entry, and its logit does not matter.
    assert z.grad[1, 2].item() == 0.0
    moved = z.detach().clone()
    moved[1, 2] = 40.0
    assert loss(moved, y).item() == pytest.approx(full.item(), rel=1e-6)
    # An all-unknown row is the same as no row.
    y_extra = torch.cat([y, torch.full((1, 4), NAN)])
    z_extra = torch.cat([z.detach(), torch.randn(1, 4)])
    assert loss(z_extra, y_extra).item() == pytest.approx(full.item(), rel=1e-6)
    # Sum reduction = mean × number of known entries.
    summed = _loss(case, reduction="sum")(z.detach(), y)
    assert summed.item() == pytest.approx(full.item() * 11, rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_loss_forward_backward(case, dtype):
    torch.manual_seed(0)
    loss = _loss(case, logit_adjust_tau=1.0)
    z = (3 * torch.randn(8, 4)).to(dtype).requires_grad_()
    y = (torch.rand(8, 4) < 0.3).float()
    y[0, 1] = NAN
    value = loss(z, y)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value)
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_every_registered_loss_has_a_case():
    assert {name for name, _ in CASES.values()} == set(LOSSES.names())


def test_db_code_weights_and_margins_on_known_counts():
    loss = build_loss("db", np.array([1000, 100, 10, 1, 0]), 2000)
    beta = 0.9999
    n = [1000, 100, 10, 1, 1]  # a class without positives counts as 1, as the winning code does
    eff = [(1 - beta) / (1 - beta**k) for k in n]
    eff = [e / (sum(eff) / 5) for e in eff]
    assert loss.weights.numpy() == pytest.approx([e**0.5 for e in eff], rel=1e-6)
    # The most frequent class gets the full 0.2 margin, the rarest none; margins fall with frequency.
    margins = loss.margins.numpy()
    assert margins[0] == pytest.approx(0.2) and margins[3] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(margins[:4]) < 0)
    # eff for n = 1 is exactly 1 before normalisation, so the weights' squares average to 1.
    assert np.mean(loss.weights.numpy() ** 2) == pytest.approx(1.0, rel=1e-6)
    inv = [1 / e for e in eff]
    assert margins[1] == pytest.approx(0.2 * (inv[1] - min(inv)) / (max(inv) - min(inv)), rel=1e-5)


def test_db_paper_rebalance_weights():
    loss = build_loss("db", COUNTS, N_IMAGES, variant="paper", preset="constructor")
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    weights = loss.rebalance_weights(y).numpy()
    rate = 1 / 60 + 1 / 4
    expected = [10 + _sigmoid(0.2 * ((1 / n) / rate - 0.1)) for n in COUNTS]
    assert weights[0] == pytest.approx(expected, rel=1e-6)
    assert weights[1] == pytest.approx([11.0] * 4)  # no positives: the ratio's limit +inf, sigma = 1
    bias = -np.log(N_IMAGES / COUNTS - 1) * 0.1 / 5
    assert loss.neg_bias.numpy() == pytest.approx(bias, rel=1e-6)


def test_db_paper_default_is_the_published_coco_config():
    """wutong16/DistributionBalancedLoss configs/coco/LT_resnet50_pfc_DB.py: map_param alpha 0.1, beta 10,
    gamma 0.2; logit_reg neg_scale 2, init_bias 0.05; focal gamma 2, balance 2."""
    loss = build_loss("db", COUNTS, N_IMAGES, variant="paper")
    assert loss.preset == "coco" and loss.params["neg_scale"] == 2.0 and loss.params["focal_balance"] == 2.0
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    weights = loss.rebalance_weights(y).numpy()
    rate = 1 / 60 + 1 / 4
    expected = [0.1 + _sigmoid(10 * ((1 / n) / rate - 0.2)) for n in COUNTS]
    assert weights[0] == pytest.approx(expected, rel=1e-6)
    # a row whose only positive is class 3 (n = 1): r = 1 for it -> 0.1 + sigmoid(8) = 1.0997; class 0: r = 1/60
    assert weights[1][3] == pytest.approx(0.1 + _sigmoid(8.0), rel=1e-6)
    assert weights[1][0] == pytest.approx(0.1 + _sigmoid(10 * (1 / 60 - 0.2)), rel=1e-6)
    assert weights.max() - weights.min() > 0.5  # a real spread, unlike the constructor defaults (10.5-11.0)
    bias = -np.log(N_IMAGES / COUNTS - 1) * 0.05 / 2.0
    assert loss.neg_bias.numpy() == pytest.approx(bias, rel=1e-6)
    voc = build_loss("db", COUNTS, N_IMAGES, variant="paper", preset="voc", map_alpha=0.2)
    assert (voc.params["map_gamma"], voc.params["neg_scale"], voc.params["map_alpha"]) == (0.3, 5.0, 0.2)
    with pytest.raises(InputError, match="unknown db preset"):
        build_loss("db", COUNTS, N_IMAGES, variant="paper", preset="lvis")
    with pytest.raises(InputError, match="does not take preset"):
        build_loss("db", COUNTS, N_IMAGES, preset="coco")


def test_logit_adjustment_shifts_logits_in_training_only():
    plain = build_loss("asl", COUNTS, N_IMAGES)
    adjusted = build_loss("asl", COUNTS, N_IMAGES, logit_adjust_tau=1.0)
    z, y = torch.tensor(LOGITS), torch.tensor(TARGETS)
    prior = COUNTS / COUNTS.sum()
    shifted = torch.tensor(LOGITS - np.log(prior + 1e-8))
    assert adjusted(z, y).item() == pytest.approx(plain(shifted, y).item(), rel=1e-6)
    adjusted.eval()
    assert adjusted(z, y).item() == pytest.approx(plain(z, y).item(), rel=1e-6)
    by_prevalence = build_loss("bce", COUNTS, N_IMAGES, logit_adjust_tau=0.5, logit_adjust_prior="prevalence")
    shifted = torch.tensor(LOGITS - 0.5 * np.log(COUNTS / N_IMAGES + 1e-8))
    assert by_prevalence(z, y).item() == pytest.approx(build_loss("bce")(shifted, y).item(), rel=1e-6)


def test_asl_without_focusing_or_clipping_is_bce():
    z, y = torch.tensor(LOGITS), torch.tensor(TARGETS)
    asl = build_loss("asl", gamma_neg=0, gamma_pos=0, clip=0)
    assert asl(z, y).item() == pytest.approx(build_loss("bce")(z, y).item(), rel=1e-6)


def test_bad_settings_are_clear_errors():
    with pytest.raises(InputError, match="unknown loss 'focal'"):
        build_loss("focal", COUNTS, N_IMAGES)
    with pytest.raises(InputError, match="no parameter"):
        build_loss("asl", COUNTS, N_IMAGES, gamma=2)
    with pytest.raises(InputError, match="belong to the other variant"):
        build_loss("db", COUNTS, N_IMAGES, neg_scale=2.0)
    with pytest.raises(InputError, match="class_counts"):
        build_loss("db")
    with pytest.raises(InputError, match="only 3 images"):
        build_loss("bce", COUNTS, 3)
    with pytest.raises(InputError, match="one value per class"):
        build_loss("bce", COUNTS, N_IMAGES, pos_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="class_counts has 4"):
        build_loss("bce", COUNTS, N_IMAGES)(torch.zeros(2, 3), torch.zeros(2, 3))


def test_loss_parameters_lists_defaults():
    params = loss_parameters("asl")
    assert params["gamma_neg"] == 4.0 and params["clip"] == 0.05 and params["logit_adjust_tau"] == 0.0


def test_weighted_asl_tiny_case_by_hand():
    """Two classes in 4 images (n = 1 and 3): one entry of each kind, numbers worked out on paper."""
    loss = build_loss("wasl", [1, 3], 4)
    z = torch.tensor([[0.0, math.log(3.0)]])  # p = 0.5 and 0.75
    y = torch.tensor([[1.0, 0.0]])
    # class 0 positive: w = e^(1 - 1/4), ASL = -(1 - 0.5)^1 log 0.5
    pos = math.exp(0.75) * 0.5 * math.log(2.0)
    # class 1 negative: w = e^(3/4), p_m = 0.70, ASL = -0.70^4 log 0.30
    neg = -math.exp(0.75) * 0.7**4 * math.log(0.3)
    assert loss(z, y).item() == pytest.approx((pos + neg) / 2, rel=1e-6)
    wbce = build_loss("wbce", [1, 3], 4)(z, y).item()
    assert wbce == pytest.approx(math.exp(0.75) * (math.log(2.0) + math.log(4.0)) / 2, rel=1e-6)


def test_weighted_losses_need_counts_and_images():
    for name in ("wasl", "wbce"):
        with pytest.raises(InputError, match="num_images"):
            build_loss(name, COUNTS)


def test_ldam_margins_and_deferred_reweighting():
    loss = build_loss("ldam_drw", [16.0, 1.0], 20, drw_epoch=2, max_margin=0.4)
    # Δ ∝ n^(-1/4): the rarest class 0.4, a class 16x more frequent half of it
    assert loss.margins.tolist() == pytest.approx([0.2, 0.4])
    z = torch.tensor([[0.3, -0.1], [1.0, 2.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # before drw_epoch: plain BCE of the margin-shifted logits (negatives unshifted)
    plain = [_bce(0.3 - 0.2, 1), _bce(-0.1, 0), _bce(1.0, 0), _bce(2.0 - 0.4, 1)]
    for epoch in (0, 1):
        loss.set_epoch(epoch)
        assert not loss.reweighting
        assert loss(z, y).item() == pytest.approx(sum(plain) / 4, rel=1e-6)
    loss.set_epoch(2)
    assert loss.reweighting
    eff = np.array([(1 - 0.9999) / (1 - 0.9999**16), 1.0])
    w = eff / eff.sum() * 2
    weighted = [w[0] * plain[0], w[1] * plain[1], w[0] * plain[2], w[1] * plain[3]]
    assert loss(z, y).item() == pytest.approx(sum(weighted) / 4, rel=1e-6)
    assert w[1] > 1 > w[0]
