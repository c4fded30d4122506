"""Zero-shot ``paper`` preprocessing: float from the image's own values, two resizes, CLIP mean/std; prompt-set
version field."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrlt_core.data.images import CLIP_MEAN, CLIP_STD
from cxrlt_core.zeroshot.encode import ImagePipeline
from cxrlt_core.zeroshot.prompts import default_prompt_set, demo_prompt_set, parse_prompt_set


def _winners_float_pipeline(path: str, first: int = 512, size: int = 224) -> torch.Tensor:
    """The winning team's Task 2 steps, from their description: imread unchanged, float32, / 65535 if the maximum
    exceeds 255 else / 255, cv2 INTER_LINEAR to first x first, stack 3, bilinear to size, CLIP mean/std."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.float32)
    image = image / 65535.0 if image.max() > 255 else image / 255.0
    image = cv2.resize(image, (first, first), interpolation=cv2.INTER_LINEAR)
    x = torch.tensor(np.stack([image] * 3, axis=0), dtype=torch.float32)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((x - mean) / std)[0]


def _png(tmp_path, bits: int, shape=(300, 260)) -> str:
    rng = np.random.default_rng(bits)
    top = 2**bits - 1
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = (top * (0.5 + 0.3 * np.sin(xx / 17.0) * np.cos(yy / 23.0)) + rng.normal(0, top * 0.02, shape)).clip(0, top)
    dtype = np.uint8 if bits == 8 else np.uint16
    path = str(tmp_path / f"img{bits}.png")
    assert cv2.imwrite(path, image.astype(dtype))
    return path


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_paper_mode_matches_the_winners_float_pipeline(tmp_path, bits):
    path = _png(tmp_path, bits)
    pipeline = ImagePipeline(mode="paper", size=(224, 224), mean=CLIP_MEAN, std=CLIP_STD)
    ours = pipeline(path)
    theirs = _winners_float_pipeline(path)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert (ours - theirs).abs().max().item() < 1e-4
    assert float(ours.std()) > 0.05  # a real image, not a constant


def test_a_12_bit_png_keeps_all_its_grey_levels(tmp_path):
    levels = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # every 12-bit level once
    path = str(tmp_path / "levels12.png")
    assert cv2.imwrite(path, levels)
    # no resize at all (64 -> 64 -> 64): the input tensor holds one value per grey level
    pipeline = ImagePipeline(mode="paper", size=(64, 64), mean=CLIP_MEAN, std=CLIP_STD, paper_resize=64)
    x = pipeline(path)
    assert len(torch.unique(x[0])) == 4096
    expected = (torch.from_numpy(levels.astype(np.float32)) / 65535.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    torch.testing.assert_close(x[0], expected)
    # through a uint8 step the same file would keep round(4095 / 65535 * 255) + 1 = 17 levels
    assert len(np.unique(np.rint(levels / 65535 * 255))) == 17


def test_paper_cache_key_changed_and_open_clip_key_kept():
    paper = ImagePipeline(mode="paper", size=(224, 224), mean=CLIP_MEAN, std=CLIP_STD)
    other = ImagePipeline(mode="paper", size=(224, 224), mean=CLIP_MEAN, std=CLIP_STD, paper_resize=448)
    assert paper.key() != other.key()
    assert (
        "paper_resize" not in ImagePipeline(mode="open_clip", size=(224, 224), mean=CLIP_MEAN, std=CLIP_STD).to_dict()
    )


def test_prompt_sets_say_where_their_prompts_came_from():
    assert default_prompt_set().version.startswith("cxrlt-default/1")
    assert demo_prompt_set().version.startswith("cxrlt-demo/1")
    data = default_prompt_set().to_dict()
    assert data["version"] == default_prompt_set().version
    assert parse_prompt_set({**data, "version": "mine/2: copied from a colleague"}).version.startswith("mine/2")
    with pytest.raises(Exception, match="version must be a text"):
        parse_prompt_set({**data, "version": 3})
