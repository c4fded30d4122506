"""TTA views on tensors with known answers, merge modes against numpy, batched views against the per-view loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cxrlt_core.errors import InputError
from cxrlt_core.inference.tta import (
    MERGE_MODES,
    TTA_SETS,
    View,
    hflip,
    merge_views,
    naive_tta_logits,
    rotate,
    tta_logits,
    tta_probabilities,
    zoom_in,
    zoom_out,
)


@pytest.fixture()
def image() -> torch.Tensor:
    return torch.rand(3, 2, 32, 40, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", TTA_SETS.names())
def test_every_view_keeps_shape_dtype_and_device(name: str, image: torch.Tensor) -> None:
    for view in TTA_SETS.get(name):
        out = view(image, fill=0.0)
        assert out.shape == image.shape and out.dtype == image.dtype and out.device == image.device, view.name


def test_named_sets_match_the_method() -> None:
    names = {key: [v.name for v in TTA_SETS.get(key)] for key in TTA_SETS.names()}
    assert names["none"] == ["identity"]
    assert names["flip"] == ["identity", "hflip"]
    assert names["light"] == ["identity", "hflip", "rot+5", "rot-5"]
    assert len(names["medium"]) == 6 and names["medium"][4:] == ["zoom_in_1.1", "zoom_out_0.9"]
    assert sorted(v.zoom for v in TTA_SETS.get("flip_scale")) == [0.95, 0.95, 1.0, 1.0, 1.05, 1.05]
    assert sum(v.flip for v in TTA_SETS.get("flip_scale")) == 3


def test_identity_view_returns_the_input(image: torch.Tensor) -> None:
    assert torch.equal(TTA_SETS.get("none")[0](image), image)


def test_flip_twice_is_identity_and_flip_reverses_columns(image: torch.Tensor) -> None:
    assert torch.equal(hflip(hflip(image)), image)
    ramp = torch.arange(5.0).view(1, 1, 1, 5)
    assert hflip(ramp).flatten().tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]


def test_zoom_in_equals_centre_crop_then_resize(image: torch.Tensor) -> None:
    crop = TF.center_crop(image, [round(32 / 1.1), round(40 / 1.1)])  # 29 x 36
    expected = TF.resize(crop, [32, 40], interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
    torch.testing.assert_close(zoom_in(image, 1.1), expected, rtol=0, atol=1e-6)


def test_zoom_out_equals_resize_then_pad_with_fill(image: torch.Tensor) -> None:
    fill = torch.tensor([-2.0, 0.5])
    small = TF.resize(image, [round(32 * 0.9), round(40 * 0.9)], interpolation=TF.InterpolationMode.BILINEAR)
    expected = torch.stack([TF.pad(small[:, c], [2, 1, 2, 2], fill=float(fill[c])) for c in range(2)], dim=1)
    torch.testing.assert_close(zoom_out(image, 0.9, fill), expected, rtol=0, atol=1e-6)
    out = zoom_out(image, 0.9, fill)
    assert torch.all(out[:, 0, 0, :] == -2.0) and torch.all(out[:, 1, :, 0] == 0.5)


def test_zoom_out_of_a_constant_image_is_constant_inside_and_fill_outside() -> None:
    out = zoom_out(torch.full((1, 1, 20, 20), 7.0), 0.9, fill=0.0)
    torch.testing.assert_close(out[..., 1:19, 1:19], torch.full((1, 1, 18, 18), 7.0))
    assert torch.all(out[..., 0, :] == 0.0) and torch.all(out[..., :, 19] == 0.0)


def test_rotation_matches_torchvision_inside_the_image(image: torch.Tensor) -> None:
    for angle in (5.0, -5.0):
        expected = TF.rotate(image, angle, interpolation=TF.InterpolationMode.BILINEAR)
        # torchvision blends its fill mask bilinearly at the border; inside the image both are plain bilinear sampling.
        torch.testing.assert_close(rotate(image, angle)[..., 4:-4, 4:-4], expected[..., 4:-4, 4:-4], atol=1e-5, rtol=0)


def test_rotation_of_a_radially_symmetric_image_is_the_image_and_corners_get_the_fill() -> None:
    size = 64
    yy, xx = torch.meshgrid(torch.arange(size) - 31.5, torch.arange(size) - 31.5, indexing="ij")
    blob = torch.exp(-(yy**2 + xx**2) / (2 * 8.0**2)).view(1, 1, size, size)
    for angle in (5.0, -5.0, 90.0):
        # Only bilinear interpolation error remains (second derivative of the Gaussian times a pixel squared).
        assert (rotate(blob, angle, fill=0.0) - blob).abs().max() < 5e-3
    corners = rotate(torch.ones(1, 2, size, size), 30.0, fill=torch.tensor([-1.0, 3.0]))
    assert corners[0, 0, 0, 0] == -1.0 and corners[0, 1, 0, 0] == 3.0
    assert torch.allclose(corners[0, :, 32, 32], torch.ones(2))


def test_rotations_mirror_each_other_under_flip(image: torch.Tensor) -> None:
    torch.testing.assert_close(rotate(hflip(image), 5.0), hflip(rotate(image, -5.0)), atol=1e-5, rtol=0)


def test_composite_view_is_zoom_then_flip(image: torch.Tensor) -> None:
    view = View("hflip_zoom_in_1.05", flip=True, zoom=1.05)
    assert torch.equal(view(image), hflip(zoom_in(image, 1.05)))


@pytest.mark.parametrize("merge", MERGE_MODES.names())
@pytest.mark.parametrize("views", [1, 2, 5, 6])
def test_merge_modes_against_numpy(merge: str, views: int) -> None:
    rng = np.random.default_rng(views)
    logits = rng.normal(scale=3.0, size=(views, 4, 3))
    probs = 1.0 / (1.0 + np.exp(-logits))
    expected = {
        "mean": probs.mean(axis=0),
        "logit_mean": 1.0 / (1.0 + np.exp(-logits.mean(axis=0))),
        "gmean": np.exp(np.log(probs).mean(axis=0)),
        "max": probs.max(axis=0),
        "median": np.median(probs, axis=0),
    }[merge]
    out = merge_views(torch.from_numpy(logits), merge)
    assert out.dtype == torch.float64 and out.shape == (4, 3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)


class _TinyNet(torch.nn.Module):
    """A deterministic conv net whose output depends on position, so every view gives different logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.head = torch.nn.Linear(4 * 15 * 19, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("forward_batch", [None, 1, 5, 100])
def test_batched_views_equal_the_per_view_loop(forward_batch: int | None) -> None:
    model = _TinyNet().eval()
    gray = torch.rand(3, 1, 32, 40, generator=torch.Generator().manual_seed(1))

    def to_rgb(x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) * 2.0 - 1.0

    with torch.inference_mode():
        batched = tta_logits(model, gray, "medium", transform=to_rgb, forward_batch=forward_batch)
        naive = naive_tta_logits(model, gray, "medium", transform=to_rgb)
        single = [model(to_rgb(view(gray))) for view in TTA_SETS.get("medium")]
    assert batched.shape == (6, 3, 5)
    torch.testing.assert_close(batched, naive, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[3], single[3], atol=1e-5, rtol=1e-5)
    probs = tta_probabilities(model, gray, "medium", "mean", transform=to_rgb, forward_batch=forward_batch)
    torch.testing.assert_close(probs, torch.sigmoid(naive.double()).mean(0), atol=1e-6, rtol=1e-6)


def test_bad_settings_are_input_errors(image: torch.Tensor) -> None:
    model = torch.nn.Identity()
    with pytest.raises(InputError, match="unknown TTA set 'heavy'"):
        tta_logits(model, image, "heavy")
    with pytest.raises(InputError, match="unknown TTA merge mode"):
        merge_views(torch.zeros(2, 1, 1), "vote")
    with pytest.raises(InputError, match="forward_batch"):
        tta_logits(model, image, "flip", forward_batch=0)
