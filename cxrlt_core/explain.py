"""Where a model looks: per-class attention maps (CSRA / head score maps) and Grad-CAM, as arrays and overlays.

- Head maps come from ``model.forward_with_maps`` (every registered head returns per-class spatial maps).
- Grad-CAM (Selvaraju et al., ICCV 2017) uses pytorch-grad-cam on the last backbone stage
  (``model.feature_layer()``): the channel weights are the spatially averaged gradients of the class logit, the map is
  ReLU(Σ_k w_k A_k), upsampled to the input size and scaled to [0, 1].
- Occlusion (Zeiler & Fergus, "Visualizing and understanding convolutional networks", ECCV 2014): how much the class
  logit falls when a square of the input is replaced by the training mean; it asks the model itself, so it works for
  any head and tells whether the model's decision depends on a region at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from cxrlt_core.data.images import Preprocess, to_gray, to_uint8
from cxrlt_core.models.contract import InputContract

CAM_METHODS = ("gradcam", "gradcam++", "hirescam", "eigencam")
MAP_METHODS = CAM_METHODS + ("occlusion",)


def normalize_map(heat: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] (min → 0, max → 1); a constant map becomes all zeros."""
    heat = np.asarray(heat, dtype=np.float32)
    low, high = float(heat.min()), float(heat.max())
    if high - low < 1e-12:
        return np.zeros_like(heat)
    return (heat - low) / (high - low)


def resize_map(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``size`` = (height, width)."""
    return cv2.resize(np.asarray(heat, dtype=np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


@torch.no_grad()
def head_attention_maps(model: torch.nn.Module, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (C,) and per-class head maps (C, h, w) for one image ``batch`` of shape (1, 3, H, W).

    For CSRA heads the maps are the class-specific spatial scores that the residual attention pools; for the MLP head
    they are the head applied at each position (see ``cxrlt_core.models.heads``).
    """
    model.eval()
    logits, maps = model.forward_with_maps(batch)
    return torch.sigmoid(logits[0].float()).cpu().numpy(), maps[0].float().cpu().numpy()


def grad_cam(
    model: torch.nn.Module,
    batch: torch.Tensor,
    class_index: int,
    method: str = "gradcam",
    target_layer: torch.nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM of class ``class_index`` for one image ``batch`` (1, 3, H, W): a (H, W) map in [0, 1].

    Args:
        method: one of ``CAM_METHODS`` (pytorch-grad-cam's GradCAM, GradCAMPlusPlus, HiResCAM, EigenCAM).
        target_layer: the layer whose activations are weighted; default the model's last backbone stage (for a
            token backbone its last block, whose tokens the model's ``cam_reshape_transform`` lays out on the grid).
    """
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM, "eigencam": EigenCAM}
    if method not in classes:
        raise ValueError(f"unknown CAM method {method!r}; one of {CAM_METHODS}")
    layer = target_layer if target_layer is not None else model.feature_layer()
    # token outputs (ViT, DINOv2) and channels-last maps (Swin) are laid out as (B, C, h, w) first
    reshape = getattr(model, "cam_reshape_transform", None)
    transform = reshape(tuple(batch.shape[-2:])) if reshape is not None else None
    was_training = model.training
    with classes[method](model=model, target_layers=[layer], reshape_transform=transform) as cam:
        heat = cam(input_tensor=batch, targets=[ClassifierOutputTarget(int(class_index))])[0]
    model.train(was_training)
    return normalize_map(heat)


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.45, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a [0, 1] map over a gray uint8 radiograph: an RGB uint8 image of the radiograph's size."""
    gray = np.asarray(image)
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError("overlay expects a 2-D uint8 radiograph")
    heat = resize_map(normalize_map(heat), gray.shape)
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(np.round(heat * 255)), colormap), cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB).astype(np.float32)
    blended = (1.0 - opacity) * base + opacity * colour.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


NORMALISATION_NOTE = (
    "Colours: the map is min-max normalised for this image and finding (0 = its lowest value, 1 = its highest); "
    "colours are not comparable between images or findings, and a high value is not a probability."
)


@torch.no_grad()
def occlusion_map(
    model: torch.nn.Module,
    batch: torch.Tensor,
    class_indices: Sequence[int],
    patch: int | None = None,
    stride: int | None = None,
    chunk: int = 64,
) -> np.ndarray:
    """Occlusion sensitivity of one image ``batch`` (1, C, H, W): (len(class_indices), H, W) logit drops.

    A ``patch`` x ``patch`` square (default a sixth of the shorter side) slides with ``stride`` (default half the
    patch) and is set to 0, the training mean after normalisation. Each pixel's value is the mean over the squares
    covering it of ``logit_k(image) - logit_k(occluded)`` (Zeiler & Fergus, ECCV 2014): positive where hiding the
    region lowers the class score. Pixels no square covers (at most ``stride - 1`` on the right and bottom) get 0.
    """
    model.eval()
    _, _, height, width = batch.shape
    patch = patch or max(2, min(height, width) // 6)
    stride = stride or max(1, patch // 2)
    index = torch.as_tensor(list(class_indices), dtype=torch.long)
    corners = [(y, x) for y in range(0, height - patch + 1, stride) for x in range(0, width - patch + 1, stride)]
    base = model(batch)[0, index].float()
    drops = []
    for start in range(0, len(corners), chunk):
        part = corners[start : start + chunk]
        occluded = batch.repeat(len(part), 1, 1, 1)
        for i, (y, x) in enumerate(part):
            occluded[i, :, y : y + patch, x : x + patch] = 0.0
        drops.append(base[None] - model(occluded)[:, index].float())
    drop = torch.cat(drops).cpu().numpy()  # (squares, K)
    heat = np.zeros((len(index), height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    for (y, x), value in zip(corners, drop):
        heat[:, y : y + patch, x : x + patch] += value[:, None, None]
        count[y : y + patch, x : x + patch] += 1
    return (heat / np.maximum(count, 1)).astype(np.float32)


def map_on_image(heat: np.ndarray, preprocess: Any, image_shape: tuple[int, int]) -> np.ndarray:
    """A map over the model input (any h x w) → the same map over the stored image (``image_shape`` = (H, W)).

    The map is upsampled (bilinear) to the model input size of ``preprocess`` (a ``Preprocess`` or its dict), the
    letterbox padding is cut away when the input kept the aspect ratio, and the rest is resized to (H, W): so the map
    has the image's aspect ratio and lines up with its pixels.
    """
    pre = preprocess if isinstance(preprocess, Preprocess) else Preprocess.from_dict(preprocess)
    full = resize_map(heat, (pre.height, pre.width))
    height, width = int(image_shape[0]), int(image_shape[1])
    if pre.keep_aspect:
        scale = min(pre.height / height, pre.width / width)
        fit_h = max(1, min(pre.height, round(height * scale)))
        fit_w = max(1, min(pre.width, round(width * scale)))
        top, left = (pre.height - fit_h) // 2, (pre.width - fit_w) // 2
        full = full[top : top + fit_h, left : left + fit_w]
    return resize_map(full, (height, width))


def display_gray(image: np.ndarray) -> np.ndarray:
    """A decoded radiograph (any dtype, gray or RGB) as the gray uint8 image shown under the maps (same size)."""
    gray = to_gray(image, channel_order="rgb") if image.ndim == 3 else image
    return gray if gray.dtype == np.uint8 else to_uint8(gray)


def display_size(shape: tuple[int, int], longest: int = 512) -> tuple[int, int]:
    """(height, width) scaled so the longer side is at most ``longest``, keeping the aspect ratio."""
    height, width = int(shape[0]), int(shape[1])
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def colour_bar(height: int, width: int = 56, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """An RGB uint8 colour bar (top = 1, bottom = 0) with tick labels 0, 0.5 and 1, for the right of an overlay."""
    ramp = np.linspace(255, 0, height).astype(np.uint8)[:, None]
    bar = cv2.cvtColor(cv2.applyColorMap(np.repeat(ramp, 14, axis=1), colormap), cv2.COLOR_BGR2RGB)
    panel = np.full((height, width, 3), 255, np.uint8)
    panel[:, 4:18] = bar
    for value in (1.0, 0.5, 0.0):
        y = int(round((1.0 - value) * (height - 1)))
        y_text = min(max(y + 4, 10), height - 2)
        cv2.line(panel, (18, y), (22, y), (0, 0, 0), 1)
        cv2.putText(panel, f"{value:g}", (24, y_text), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def overlay_with_bar(
    image: np.ndarray,
    heat: np.ndarray,
    opacity: float = 0.45,
    longest: int = 512,
    box: Sequence[int] | None = None,
) -> np.ndarray:
    """A map already on the image (``map_on_image``) blended over the gray uint8 ``image`` at display size, with a
    colour bar on the right: the image's aspect ratio is kept. ``box`` (``x0, y0, x1, y1`` in image pixels) is drawn
    as a white rectangle."""
    size = display_size(image.shape[:2], longest)
    gray = cv2.resize(np.asarray(image), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    blended = overlay(gray, resize_map(heat, size), opacity)
    if box is not None:
        scale = size[0] / image.shape[0]
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        cv2.rectangle(blended, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), (255, 255, 255), 1)
    return np.concatenate([blended, colour_bar(size[0])], axis=1)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB (or gray) uint8 image, for download buttons."""
    array = np.asarray(rgb)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("could not encode the overlay as PNG")
    return buffer.tobytes()


def top_findings(
    probabilities: np.ndarray, class_names: Sequence[str], k: int | None = None
) -> list[tuple[str, float]]:
    """Classes sorted by probability, highest first (the first ``k``)."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    if k is not None:
        order = order[:k]
    return [(class_names[i], float(probabilities[i])) for i in order]


def prepare_radiograph(image: np.ndarray, sidecar: dict) -> tuple[np.ndarray, torch.Tensor]:
    """A decoded radiograph → (the gray uint8 image the model sees, its (1, C, H, W) input tensor).

    Size, interpolation, rounding, clipping and normalisation come from the checkpoint's input contract
    (:class:`~cxrlt_core.models.contract.InputContract`, read from its sidecar), so an image is fed exactly as the
    model was trained.
    """
    contract = InputContract.from_sidecar(sidecar)
    gray = contract.prepare(image)
    return gray, contract.to_tensor(gray)[None]


def maps_for_image(
    model: torch.nn.Module,
    sidecar: dict,
    image: np.ndarray,
    class_indices: Sequence[int],
    cam_method: str | None = "gradcam",
) -> dict[str, dict[int, np.ndarray]]:
    """Head maps (named after the head) and ``cam_method`` maps (one of ``MAP_METHODS``, or None for none) of the
    given classes, each placed on ``image``'s pixels.

    Returns ``{method: {class index: (H, W) map}}`` with ``(H, W)`` the stored image's shape (``map_on_image``).
    """
    pre = InputContract.from_sidecar(sidecar).preprocess
    _, batch = prepare_radiograph(image, sidecar)
    _, maps = head_attention_maps(model, batch)
    shape = image.shape[:2]
    head = str(sidecar.get("model", {}).get("head", "head"))
    out = {head: {j: map_on_image(maps[j], pre, shape) for j in class_indices}}
    if cam_method == "occlusion":
        heat = occlusion_map(model, batch, class_indices)
        out[cam_method] = {j: map_on_image(heat[i], pre, shape) for i, j in enumerate(class_indices)}
    elif cam_method:
        with torch.enable_grad():
            out[cam_method] = {
                j: map_on_image(grad_cam(model, batch.clone(), j, method=cam_method), pre, shape) for j in class_indices
            }
    return out
