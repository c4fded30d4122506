"""TTA view geometry: the winning code's reflection padding and zoom sizes, with values computed by hand."""

from __future__ import annotations

import pytest
import torch

from cxrlt_core.errors import InputError
from cxrlt_core.inference.tta import View, get_tta_set, rotate, zoom, zoom_in_upsample, zoom_out_reflect


def _checkerboard(n: int = 4) -> torch.Tensor:
    rows = torch.arange(n).view(-1, 1)
    cols = torch.arange(n).view(1, -1)
    return ((rows + cols) % 2 == 0).float().view(1, 1, n, n)  # row 0 = [1, 0, 1, 0]


def test_reflect_padded_rotation_of_a_checkerboard_by_hand():
    board = _checkerboard()
    # Output pixel (0, 0) sits at normalised (-0.75, -0.75); rotating by 45 degrees samples
    # x' = c(-0.75) - s(-0.75) = 0, y' = s(-0.75) + c(-0.75) = -1.06066  (c = s = 0.70711).
    # In pixels (align_corners=False): ix = ((x' + 1) * 4 - 1) / 2 = 1.5, iy = ((y' + 1) * 4 - 1) / 2 = -0.62132.
    # Reflection about -0.5 gives iy = -0.37868, clipped to row 0: the mean of columns 1 and 2 of row 0 = 0.5.
    # Zero padding mixes row 0 (weight 1 - 0.62132 = 0.37868) with a zero row: 0.37868 * 0.5 = 0.18934.
    reflected = rotate(board, 45.0, padding="reflection")
    zeros = rotate(board, 45.0, fill=0.0)
    assert reflected[0, 0, 0, 0].item() == pytest.approx(0.5, abs=1e-5)
    assert zeros[0, 0, 0, 0].item() == pytest.approx(0.18934, abs=1e-4)
    # a constant image stays constant under reflection (every sample is inside), not under zero padding
    flat = torch.full((1, 1, 8, 8), 3.0)
    assert torch.allclose(rotate(flat, 5.0, padding="reflection"), flat)
    assert rotate(flat, 5.0, fill=0.0).min() < 3.0
    # 90 degrees maps pixel centres onto pixel centres: the board's colours swap
    assert torch.allclose(rotate(board, 90.0, padding="reflection"), 1 - board, atol=1e-6)


def _ramp(size: int) -> torch.Tensor:
    """Each pixel holds its column index: bilinear resizing of a ramp is the ramp of the sampled positions."""
    return torch.arange(size, dtype=torch.float64).view(1, 1, 1, -1).expand(1, 1, size, size).contiguous()


@pytest.mark.parametrize(
    ("factor", "big", "offset"),
    [(1.1, 563, 25), (1.05, 537, 12)],  # int(512 * 1.1) = int(563.2); (563 - 512) // 2 = 25; int(537.6), 25 // 2
)
def test_zoom_in_at_512_upsamples_to_int_h_f_then_centre_crops(factor, big, offset):
    x = _ramp(512)
    out = zoom_in_upsample(x, factor)
    assert out.shape == (1, 1, 512, 512)
    # upsampled column j samples source column (j + 0.5) * 512 / big - 0.5; output column 0 is upsampled `offset`
    assert out[0, 0, 0, 0].item() == pytest.approx((offset + 0.5) * 512 / big - 0.5, abs=1e-9)
    assert out[0, 0, 0, 511].item() == pytest.approx((offset + 511 + 0.5) * 512 / big - 0.5, abs=1e-9)
    # cxrlt's geometry crops round(512 / f) from round((512 - crop) / 2) instead: another first column
    crop = round(512 / factor)
    start = round((512 - crop) / 2)
    cx = zoom(x, factor, geometry="cxrlt")
    expected = max(0.0, 0.5 * crop / 512 - 0.5) + start
    assert cx[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-9)
    assert abs(cx[0, 0, 0, 0].item() - out[0, 0, 0, 0].item()) > 0.1


@pytest.mark.parametrize(("factor", "small", "before"), [(0.9, 460, 26), (0.95, 486, 13)])
def test_zoom_out_at_512_resizes_to_int_h_f_and_reflects(factor, small, before):
    x = _ramp(512)
    out = zoom_out_reflect(x, factor)
    assert out.shape == (1, 1, 512, 512)
    after = 512 - small - before
    assert (before, after) == {0.9: (26, 26), 0.95: (13, 13)}[factor]
    inner = torch.nn.functional.interpolate(x, size=(small, small), mode="bilinear", align_corners=False)
    assert torch.equal(out[..., before : before + small, before : before + small], inner)
    # reflection without repeating the edge: padded column before - 1 - k equals inner column k + 1
    assert torch.equal(out[0, 0, 0, before - 1], inner[0, 0, 0, 1])
    assert torch.equal(out[0, 0, 0, 0], inner[0, 0, 0, before])
    assert torch.equal(out[0, 0, 0, 511], inner[0, 0, 0, small - 1 - after])
    # cxrlt's geometry: round(512 * f) pixels (461 at 0.9, not 460), black padding, (512 - h) // 2 before
    ours = zoom(x, factor, fill=-1.0, geometry="cxrlt")
    side = round(512 * factor)
    assert side == {0.9: 461, 0.95: 486}[factor]
    filled = (ours[0, 0, 256] == -1.0).sum().item()  # a middle row: only the side columns are padding
    assert filled == 512 - side


def test_views_apply_zoom_then_flip_and_reject_unknown_geometry():
    x = torch.rand(1, 1, 64, 64)
    view = View("hflip_zoom_in_1.05", flip=True, zoom=1.05)
    assert torch.equal(view(x, geometry="winning_code"), zoom_in_upsample(x, 1.05).flip(-1))
    rot = get_tta_set("medium")[2]
    assert torch.equal(rot(x, geometry="winning_code"), rotate(x, 5.0, padding="reflection"))
    with pytest.raises(InputError, match="unknown TTA geometry"):
        view(x, geometry="mirror")
