"""Attention maps, Grad-CAM and overlays on a tiny model with known shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlt_core.explain import (
    encode_png,
    grad_cam,
    head_attention_maps,
    maps_for_image,
    normalize_map,
    occlusion_map,
    overlay,
    prepare_radiograph,
    resize_map,
    top_findings,
)
from cxrlt_core.models import ModelConfig, build_model
from cxrlt_core.models.checkpoint import load_checkpoint, save_checkpoint


def test_normalize_and_resize_maps():
    heat = np.array([[1.0, 3.0], [2.0, 5.0]])
    np.testing.assert_allclose(normalize_map(heat), [[0, 0.5], [0.25, 1]])
    assert not normalize_map(np.full((3, 3), 7.0)).any()
    assert resize_map(heat, (8, 6)).shape == (8, 6)


def test_overlay_blends_colour_over_gray():
    gray = np.full((32, 40), 100, np.uint8)
    out = overlay(gray, np.zeros((4, 5)), opacity=0.0)
    assert out.shape == (32, 40, 3) and out.dtype == np.uint8 and (out == 100).all()
    hot = overlay(gray, np.eye(4), opacity=1.0)
    assert not (hot == 100).all()
    with pytest.raises(ValueError, match="uint8"):
        overlay(gray.astype(np.float32), np.eye(4))
    assert encode_png(hot)[:8] == b"\x89PNG\r\n\x1a\n"


def test_top_findings_orders_by_probability():
    assert top_findings(np.array([0.1, 0.9, 0.5]), ["a", "b", "c"], k=2) == [("b", 0.9), ("c", 0.5)]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    names = ["Normal", "cardiomegaly", "Nodule"]
    model = build_model(ModelConfig(backbone="convnextv2_atto", head="csra", num_classes=3, class_names=names,
                                    drop_path_rate=0.0, input_size=64))  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "best.safetensors"
    save_checkpoint(path, model.eval())
    return path


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "eigencam"])
def test_grad_cam_and_head_maps_on_a_radiograph(tiny_checkpoint, method):
    model, sidecar = load_checkpoint(tiny_checkpoint)
    image = (np.random.default_rng(0).random((90, 70)) * 4095).astype(np.uint16)
    gray, batch = prepare_radiograph(image, sidecar)
    assert gray.shape == (64, 64) and gray.dtype == np.uint8 and tuple(batch.shape) == (1, 3, 64, 64)
    probs, maps = head_attention_maps(model, batch)
    assert probs.shape == (3,) and maps.shape[0] == 3 and maps.ndim == 3
    with torch.no_grad():
        np.testing.assert_allclose(probs, torch.sigmoid(model(batch))[0].numpy(), atol=1e-6)
    cam = grad_cam(model, batch, class_index=1, method=method)
    assert cam.shape == (64, 64) and cam.min() >= 0.0 and cam.max() <= 1.0
    assert not model.training


def _radiograph_with_blob(left: bool) -> np.ndarray:
    """A smooth gray field with one bright disc on the left or the right half."""
    yy, xx = np.mgrid[:96, :96]
    cx = 24 if left else 72
    image = 800 + 300 * (yy / 96) + 2500 * (((yy - 48) ** 2 + (xx - cx) ** 2) < 12**2)
    return image.astype(np.uint16)


@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
def test_grad_cam_maps_follow_the_input(tiny_checkpoint, method):
    """Two different radiographs give clearly different maps; the same one gives the same map twice.

    (The tiny model's feature map is 2 x 2 at 64 px; HiResCAM's maps of these two images differ by 0.007 on
    average there, too little to tell apart from a map that ignores its input, so it is not part of this check.)
    """
    model, sidecar = load_checkpoint(tiny_checkpoint)
    _, left = prepare_radiograph(_radiograph_with_blob(left=True), sidecar)
    _, right = prepare_radiograph(_radiograph_with_blob(left=False), sidecar)
    cam_left = grad_cam(model, left, class_index=1, method=method)
    cam_right = grad_cam(model, right, class_index=1, method=method)
    again = grad_cam(model, left, class_index=1, method=method)
    np.testing.assert_allclose(cam_left, again, atol=1e-6)
    assert cam_left.std() > 0.01 and cam_right.std() > 0.01  # not a constant map
    assert np.abs(cam_left - cam_right).mean() > 0.05, "Grad-CAM ignores its input"


class _RegionSums(torch.nn.Module):
    """Logit 0 = sum of channel 0 over rows/cols 4:8; logit 1 = sum over rows/cols 0:2 (a known occlusion answer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0, 4:8, 4:8].sum((1, 2)), x[:, 0, 0:2, 0:2].sum((1, 2))], dim=1)


def test_occlusion_map_known_answer():
    """12 x 12 input of ones, 4 x 4 squares every 2 px: a square's drop is its overlap with the class's region.

    Pixel (5, 5) is covered by the squares at (2, 2), (2, 4), (4, 2), (4, 4), overlapping the 4:8 region by 4, 8, 8
    and 16 pixels: mean 9. Pixel (11, 11) is covered only by the square at (8, 8), which misses the region: 0.
    """
    batch = torch.ones(1, 3, 12, 12)
    heat = occlusion_map(_RegionSums(), batch, [1, 0], patch=4, stride=2, chunk=5)
    assert heat.shape == (2, 12, 12)
    assert heat[1, 5, 5] == pytest.approx(9.0)
    assert heat[1, 11, 11] == 0.0
    assert heat[1].max() == pytest.approx(9.0) and heat[1, 4:8, 4:8] == pytest.approx(np.full((4, 4), 9.0))
    # class 1's region is rows/cols 0:2: only the squares at (0, 0) (overlap 4) and (0, 2)/(2, 0) (0) touch it
    assert heat[0, 0, 0] == pytest.approx(4.0)
    assert heat[0, 2, 2] == pytest.approx(4.0 / 4)  # covered by (0, 0), (0, 2), (2, 0), (2, 2): only the first hits


def test_occlusion_maps_on_the_image_follow_the_input(tiny_checkpoint):
    """maps_for_image(..., "occlusion") gives one map per class on the stored image; two inputs, two maps."""
    model, sidecar = load_checkpoint(tiny_checkpoint)
    left = maps_for_image(model, sidecar, _radiograph_with_blob(left=True), [1, 2], "occlusion")
    right = maps_for_image(model, sidecar, _radiograph_with_blob(left=False), [1, 2], "occlusion")
    assert set(left) == {"csra", "occlusion"} and set(left["occlusion"]) == {1, 2}
    assert left["occlusion"][1].shape == (96, 96)
    assert np.abs(left["occlusion"][1] - right["occlusion"][1]).mean() > 1e-4
