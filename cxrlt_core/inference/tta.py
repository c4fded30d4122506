"""Test-time augmentation: views as batched tensor ops on the model's device, merged per model.

docs/method.md "Task 1 inference": views identity, horizontal flip, rotations ±5°, zoom in 1.1 (centre crop resized back
to size) and zoom out 0.9 (resized down and padded back to size), in the named sets ``none``, ``flip``, ``light``,
``medium`` and ``flip_scale``; the views of each model are merged by the mean of probabilities (the paper) or by
logit mean, geometric mean, max or median.

All views of a batch are made with a few tensor ops on the model's device and go through the model in batched calls
of at most ``forward_batch`` view-images (``None``: all ``V x B`` in one call). How large that call should be is a
property of the device, measured by ``benchmarks/tta_bench.py`` (:data:`DEFAULT_FORWARD_BATCH`).

Two geometries (the model's input contract says which, from its fidelity profile):

``cxrlt``: zoom-out and rotation corners are filled with ``fill``; zoom-in crops ``round(H / f)`` and resizes back
(zoom-out resizes to ``round(H · f)``, antialiased). The predict pipeline applies the views to the gray image *before*
normalisation with ``fill = 0``, i.e. black, which after normalisation is ``-mean / std``, exactly what a black pixel
of the image becomes (the percentile-clipped image's minimum is 0).

``winning_code`` (the CXR-LT 2026 winners' ``tta.py``): rotations sample with reflection padding; zoom-in upsamples to
``int(H · f)`` (bilinear) and centre-crops ``H`` from offset ``(int(H · f) − H) // 2``; zoom-out resizes to
``int(H · f)`` (bilinear, no antialiasing) and pads back by reflection, ``(H − h) // 2`` before. At 512 px: zoom-in
1.1 → 563 (offset 25), 1.05 → 537 (offset 12); zoom-out 0.9 → 460 (26 + 26 padding), 0.95 → 486 (13 + 13).
The winners apply the views to the normalised tensor, cxrlt to the gray image before normalisation; reflection,
bilinear weights (summing to 1) and the affine normalisation commute, so both give the same values up to float
rounding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cxrlt_core.errors import InputError
from cxrlt_core.registry import Registry

__all__ = [
    "DEFAULT_FORWARD_PIXELS",
    "GEOMETRIES",
    "MERGE_MODES",
    "TTA_SETS",
    "View",
    "default_forward_batch",
    "get_merge",
    "get_tta_set",
    "hflip",
    "make_views",
    "merge_views",
    "naive_tta_logits",
    "rotate",
    "tta_logits",
    "tta_probabilities",
    "zoom",
    "zoom_in",
    "zoom_in_upsample",
    "zoom_out",
    "zoom_out_reflect",
]

Fill = float | torch.Tensor
GEOMETRIES = ("cxrlt", "winning_code")


# ------------------------------------------------------------------------------------------------------- the views
def _fill_like(fill: Fill, x: torch.Tensor) -> torch.Tensor | float:
    """A scalar fill, or a per-channel (C,) fill shaped (1, C, 1, 1) on ``x``'s device and dtype."""
    if isinstance(fill, torch.Tensor):
        return fill.to(device=x.device, dtype=x.dtype).reshape(1, -1, 1, 1)
    return float(fill)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right: ``y[..., i, j] = x[..., i, W - 1 - j]``."""
    return x.flip(-1)


def zoom_in(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Centre crop of ``round(H / factor) x round(W / factor)`` resized back to ``H x W`` (bilinear), ``factor > 1``.

    The crop's offset is ``round((H − h) / 2)``, torchvision's ``center_crop`` convention.
    """
    height, width = x.shape[-2:]
    crop_h, crop_w = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = round((height - crop_h) / 2), round((width - crop_w) / 2)
    crop = x[..., top : top + crop_h, left : left + crop_w]
    return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)


def zoom_out(x: torch.Tensor, factor: float, fill: Fill = 0.0) -> torch.Tensor:
    """Resize to ``round(H * factor) x round(W * factor)`` (bilinear, antialiased), centred on an ``H x W`` canvas of
    ``fill``, ``factor < 1``."""
    height, width = x.shape[-2:]
    small_h, small_w = max(1, round(height * factor)), max(1, round(width * factor))
    small = F.interpolate(x, size=(small_h, small_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (height - small_h) // 2, (width - small_w) // 2
    pad = (left, width - small_w - left, top, height - small_h - top)
    value = _fill_like(fill, x)
    if isinstance(value, float):
        return F.pad(small, pad, value=value)
    return F.pad(small - value, pad) + value


def zoom_in_upsample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Winning-code zoom-in: bilinear upsampling to ``int(H · f) x int(W · f)``, then the centre ``H x W`` from
    offset ``((int(H · f) − H) // 2, (int(W · f) − W) // 2)``."""
    height, width = x.shape[-2:]
    big_h, big_w = int(height * factor), int(width * factor)
    big = F.interpolate(x, size=(big_h, big_w), mode="bilinear", align_corners=False)
    top, left = (big_h - height) // 2, (big_w - width) // 2
    return big[..., top : top + height, left : left + width]


def zoom_out_reflect(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Winning-code zoom-out: bilinear resize (no antialiasing) to ``int(H · f) x int(W · f)``, then reflection
    padding back to ``H x W`` with ``(H − h) // 2`` rows on top (and the rest below), likewise for columns."""
    height, width = x.shape[-2:]
    small_h, small_w = int(height * factor), int(width * factor)
    small = F.interpolate(x, size=(small_h, small_w), mode="bilinear", align_corners=False)
    top, left = (height - small_h) // 2, (width - small_w) // 2
    return F.pad(small, (left, width - small_w - left, top, height - small_h - top), mode="reflect")


def zoom(x: torch.Tensor, factor: float, fill: Fill = 0.0, geometry: str = "cxrlt") -> torch.Tensor:
    """Zoom in (``factor > 1``) or out (``< 1``) in ``geometry``'s way; ``x`` itself for 1."""
    if factor == 1:
        return x
    if geometry == "winning_code":
        return zoom_in_upsample(x, factor) if factor > 1 else zoom_out_reflect(x, factor)
    return zoom_in(x, factor) if factor > 1 else zoom_out(x, factor, fill)


def rotate(x: torch.Tensor, angle: float, fill: Fill = 0.0, padding: str = "fill") -> torch.Tensor:
    """Rotate by ``angle`` degrees counter-clockwise about the image centre (bilinear), corners filled with ``fill``
    (``padding="fill"``) or sampled by reflection at the image border (``padding="reflection"``, the winning code).

    Output pixel ``p`` (pixel units, centred, y down) samples the input at ``R p`` with
    ``R = [[cos a, -sin a], [sin a, cos a]]``, the convention of ``torchvision.transforms.v2.functional.rotate``.
    ``grid_sample`` works in coordinates normalised per axis, so ``R`` is conjugated by ``diag(2/W, 2/H)``;
    the fill is exact because ``x - fill`` is sampled with zero padding and ``fill`` added back.
    """
    height, width = x.shape[-2:]
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    theta = torch.tensor(
        [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]], dtype=x.dtype, device=x.device
    )
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    if padding == "reflection":
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    value = _fill_like(fill, x)
    shifted = x if isinstance(value, float) and value == 0.0 else x - value
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out if shifted is x else out + value


@dataclasses.dataclass(frozen=True)
class View:
    """One test-time view: zoom, then rotation, then horizontal flip.

    Attributes:
        name: how the view is listed in provenance.
        flip: mirror left-right.
        angle: rotation in degrees, counter-clockwise.
        zoom: ``> 1`` zooms in (centre crop resized back), ``< 1`` zooms out (resized down, padded back).
    """

    name: str
    flip: bool = False
    angle: float = 0.0
    zoom: float = 1.0

    def __call__(self, x: torch.Tensor, fill: Fill = 0.0, geometry: str = "cxrlt") -> torch.Tensor:
        if geometry not in GEOMETRIES:
            raise InputError(f"unknown TTA geometry {geometry!r}; choose one of: {', '.join(GEOMETRIES)}")
        out = zoom(x, self.zoom, fill, geometry) if self.zoom != 1 else x
        if self.angle:
            out = rotate(out, self.angle, fill, "reflection" if geometry == "winning_code" else "fill")
        if self.flip:
            out = hflip(out)
        return out

    @property
    def is_identity(self) -> bool:
        return not self.flip and not self.angle and self.zoom == 1


IDENTITY = View("identity")
HFLIP = View("hflip", flip=True)

TTA_SETS: Registry[tuple[View, ...]] = Registry("TTA set")
TTA_SETS.add("none", (IDENTITY,))
TTA_SETS.add("flip", (IDENTITY, HFLIP))
TTA_SETS.add("light", (IDENTITY, HFLIP, View("rot+5", angle=5.0), View("rot-5", angle=-5.0)))
TTA_SETS.add(
    "medium",
    (*TTA_SETS.get("light"), View("zoom_in_1.1", zoom=1.1), View("zoom_out_0.9", zoom=0.9)),
)
TTA_SETS.add(
    "flip_scale",
    (
        IDENTITY,
        HFLIP,
        View("zoom_in_1.05", zoom=1.05),
        View("zoom_out_0.95", zoom=0.95),
        View("hflip_zoom_in_1.05", flip=True, zoom=1.05),
        View("hflip_zoom_out_0.95", flip=True, zoom=0.95),
    ),
)


def get_tta_set(name: str) -> tuple[View, ...]:
    """The views of the registered TTA set ``name`` (``InputError`` listing the choices otherwise)."""
    return TTA_SETS.get(name)


def make_views(x: torch.Tensor, views: Sequence[View], fill: Fill = 0.0, geometry: str = "cxrlt") -> torch.Tensor:
    """All views of a batch, view-major: (B, C, H, W) -> (V * B, C, H, W), rows ``v * B + b``."""
    return torch.cat([view(x, fill, geometry) for view in views], dim=0)


# ------------------------------------------------------------------------------------------------------ merge modes
Merge = Callable[[torch.Tensor], torch.Tensor]
MERGE_MODES: Registry[Merge] = Registry("TTA merge mode")


@MERGE_MODES.register("mean")
def _merge_mean(logits: torch.Tensor) -> torch.Tensor:
    """Mean of probabilities, ``(1/V) Σ_v σ(z_v)`` (the paper)."""
    return torch.sigmoid(logits).mean(dim=0)


@MERGE_MODES.register("logit_mean")
def _merge_logit_mean(logits: torch.Tensor) -> torch.Tensor:
    """Probability of the mean logit, ``σ((1/V) Σ_v z_v)``."""
    return torch.sigmoid(logits.mean(dim=0))


@MERGE_MODES.register("gmean")
def _merge_gmean(logits: torch.Tensor) -> torch.Tensor:
    """Geometric mean of probabilities, ``exp((1/V) Σ_v log σ(z_v))``, with ``log σ(z) = -softplus(-z)``."""
    return torch.exp(-F.softplus(-logits).mean(dim=0))


@MERGE_MODES.register("max")
def _merge_max(logits: torch.Tensor) -> torch.Tensor:
    """Largest probability over views, ``max_v σ(z_v)``."""
    return torch.sigmoid(logits.amax(dim=0))


@MERGE_MODES.register("median")
def _merge_median(logits: torch.Tensor) -> torch.Tensor:
    """Median probability over views; for an even V the mean of the two middle values (``numpy.median``)."""
    probs = torch.sigmoid(logits).sort(dim=0).values
    count = probs.shape[0]
    return 0.5 * (probs[(count - 1) // 2] + probs[count // 2])


def get_merge(name: str) -> Merge:
    """The registered merge mode ``name``."""
    return MERGE_MODES.get(name)


def merge_views(logits: torch.Tensor, merge: str = "mean") -> torch.Tensor:
    """Merge per-view logits (V, B, C) into probabilities (B, C), computed in float64."""
    if logits.ndim != 3:
        raise ValueError(f"expected per-view logits (V, B, C), got shape {tuple(logits.shape)}")
    return get_merge(merge)(logits.double())


# ---------------------------------------------------------------------------------------------- running the model
DEFAULT_FORWARD_PIXELS: dict[str, int | None] = {"cpu": 24 * 128 * 128, "cuda": None, "mps": None}
"""Pixel budget of one model call by device type: at most ``budget // (H·W)`` view-images (at least 1) go through
the model at once; ``None`` puts all ``V x B`` views of a batch in one call.

Measured with ``benchmarks/tta_bench.py`` (README "Measured figures"), ``medium`` set, 2 CPU threads. On CPU, time
per image grows with large calls once the activations leave the caches (convnextv2_base at 512: 1.40 s/image at
batch 1, 2.19 s/image at batch 8, so the budget must keep it at one 512 px image per call), while small images gain
from batching: convnextv2_atto at 128 px, batches of 32 images, reached 87 % of the forward-only limit with chunks of
8 view-images, 96 % with 16, 101 % with 24 and 92 % with 48 (idle machine); 24·128² pixels gives 24 view-images of
128 px and one of 512 px. On an H100 one call per batch is fastest (convnextv2_atto at 128, batches of 8 images:
5.3x the per-view loop).
"""


def default_forward_batch(device: torch.device | str, image_size: int | Sequence[int]) -> int | None:
    """The measured default chunk (view-images per model call) for ``device``'s type and an input of ``image_size``."""
    budget = DEFAULT_FORWARD_PIXELS.get(torch.device(device).type)
    if budget is None:
        return None
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return max(1, budget // (int(height) * int(width)))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def tta_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    views: Sequence[View] | str = "medium",
    fill: Fill = 0.0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    forward_batch: int | None = None,
    geometry: str = "cxrlt",
) -> torch.Tensor:
    """Per-view logits (V, B, C) of ``model`` on the batch ``images`` (B, C_in, H, W).

    Views are made on ``images``' device in one pass; ``transform`` (e.g. normalisation to the model's mean/std and
    gray → 3 channels) is applied to each model call's slice, so that only ``forward_batch`` transformed
    view-images exist at once. The model must be in eval mode; call under ``torch.inference_mode()``.

    Args:
        model: maps (N, 3, H, W) to logits (N, C).
        images: a batch on the model's device.
        views: a TTA set name or a sequence of :class:`View`.
        fill: value of padded pixels (in ``images``' units, before ``transform``).
        transform: applied to view-images before the model; default none.
        forward_batch: most view-images per model call; ``None`` puts all ``V x B`` in one call
            (:func:`default_forward_batch` gives the measured default of a device).
        geometry: ``cxrlt`` or ``winning_code`` (module docstring).
    """
    views = get_tta_set(views) if isinstance(views, str) else tuple(views)
    if not views:
        raise InputError("a TTA set needs at least one view")
    if forward_batch is not None and forward_batch < 1:
        raise InputError(f"forward_batch must be at least 1 or None, got {forward_batch}")
    transform = transform or _identity
    batch = images.shape[0]
    stacked = make_views(images, views, fill, geometry)
    total = stacked.shape[0]
    step = total if forward_batch is None else forward_batch
    outputs = [model(transform(stacked[start : start + step])) for start in range(0, total, step)]
    logits = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)
    return logits.reshape(len(views), batch, -1)


def naive_tta_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    views: Sequence[View] | str = "medium",
    fill: Fill = 0.0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    geometry: str = "cxrlt",
) -> torch.Tensor:
    """The reference per-view Python loop (one model call per view, each on the whole batch); (V, B, C).

    Kept as the baseline of ``benchmarks/tta_bench.py`` and as a test oracle for :func:`tta_logits`.
    """
    views = get_tta_set(views) if isinstance(views, str) else tuple(views)
    transform = transform or _identity
    return torch.stack([model(transform(view(images, fill, geometry))) for view in views], dim=0)


def tta_probabilities(
    model: torch.nn.Module,
    images: torch.Tensor,
    views: Sequence[View] | str = "medium",
    merge: str = "mean",
    fill: Fill = 0.0,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    forward_batch: int | None = None,
    geometry: str = "cxrlt",
) -> torch.Tensor:
    """TTA-merged probabilities (B, C), float64: :func:`tta_logits` then :func:`merge_views`."""
    return merge_views(tta_logits(model, images, views, fill, transform, forward_batch, geometry), merge)
