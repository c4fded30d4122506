"""Radiograph decoding and preprocessing: any supported file to the model's gray uint8 array and tensor.

One path for training, inference, zero-shot and dashboard uploads:

``read_radiograph`` / ``decode_radiograph`` (PNG 8/16-bit, JPEG, DICOM; colour reduced to gray) ->
``to_uint8`` (percentile clipping, docs/method.md "Task 1 model") -> resize (``Preprocess``) -> ``to_model_tensor``.

A file that cannot be decoded (missing, empty, truncated, not an image, a DICOM without pixel data) raises
:class:`~cxrlt_core.errors.InputError` naming the file: a failed read never becomes a silent black image. So does a
file whose header declares more pixels than the limit (``cxrlt_core.data.image_headers``), before decoding.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from cxrlt_core.data.image_headers import check_dicom_pixels, check_header_pixels
from cxrlt_core.errors import InputError

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_MAX_BYTES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTENSITY_MODES",
    "INTERPOLATIONS",
    "Preprocess",
    "ROUNDINGS",
    "apply_preprocess",
    "decode_radiograph",
    "load_image",
    "read_radiograph",
    "resize_image",
    "sniff_format",
    "to_gray",
    "to_model_tensor",
    "to_uint8",
    "to_uint8_full_range",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# OpenAI CLIP's normalisation (open_clip.constants.OPENAI_DATASET_MEAN / _STD).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""Largest upload ``decode_radiograph`` accepts by default (256 MiB; a 4k x 4k 16-bit DICOM is ~32 MiB)."""

INTERPOLATIONS: dict[str, int] = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
    "nearest": cv2.INTER_NEAREST,
}
"""Resize interpolations by name; ``"auto"`` (the default) is area for shrinking and linear for enlarging."""

ROUNDINGS = ("rint", "truncate")
"""How rescaled intensities become uint8: ``rint`` rounds to the nearest level; ``truncate`` drops the fraction, as a
numpy ``astype(np.uint8)`` cast does (the winning code)."""

INTENSITY_MODES = ("percentile", "full_range")
"""``percentile``: the method's 0.5/99.5 clipping (``to_uint8``); ``full_range``: divide by the dtype's maximum as the
WhyXrayCLIP paper does (``to_uint8_full_range``)."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
# Signatures of formats we recognise but do not read, so the error can say what the file is.
_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
)


# ----------------------------------------------------------------------------------------------------------- reading
def read_radiograph(path: str | os.PathLike[str], max_bytes: int | None = None) -> np.ndarray:
    """Read a radiograph file into a 2-D gray array of its native dtype.

    Args:
        path: a PNG (8/16-bit, gray/RGB/RGBA), JPEG or DICOM file; the format is detected from the content (the
            extension only decides for DICOM files written without the 128-byte preamble).
        max_bytes: refuse files larger than this (``None``: no limit).

    Returns:
        ``uint8`` or ``uint16`` for PNG/JPEG; for DICOM the stored integer dtype, or ``float32`` once a rescale
        slope/intercept, modality LUT or VOI window has been applied.

    Raises:
        InputError: the file is missing, unreadable, empty, truncated, not a supported image, or a DICOM without pixel
            data; the message names the file.
    """
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: image file not found") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, not an image file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read image file ({exc.strerror or exc})") from None
    return decode_radiograph(data, name, max_bytes=max_bytes)


def decode_radiograph(data: bytes, name: str = "<upload>", max_bytes: int | None = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Decode a radiograph held in memory (e.g. a dashboard upload); same output as :func:`read_radiograph`.

    Args:
        data: the file's bytes.
        name: the file name, used in error messages and to recognise preamble-less DICOM by its extension.
        max_bytes: refuse larger inputs (``None``: no limit). Default :data:`DEFAULT_MAX_BYTES`.

    Raises:
        InputError: naming ``name`` and what is wrong.
    """
    data = bytes(data) if not isinstance(data, bytes) else data
    if not data:
        raise InputError(f"{name}: image file is empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"{name}: image file has {len(data):,} bytes, more than the limit of {max_bytes:,}")
    kind = sniff_format(data, name)
    if kind == "dicom":
        return _decode_dicom(data, name)
    if kind in ("png", "jpeg"):
        check_header_pixels(data, name, kind)  # a pixel bomb is refused before any allocation
    if kind == "png":
        _check_png_complete(data, name)
    elif kind == "jpeg":
        _check_jpeg_complete(data, name)
    else:
        raise InputError(f"{name}: {kind}; supported images are PNG, JPEG and DICOM")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"{name}: corrupt or unsupported {kind.upper()} file (OpenCV could not decode it)")
    return to_gray(image, channel_order="bgr")


def sniff_format(data: bytes, name: str = "") -> str:
    """Name the format of ``data`` from its first bytes: ``"png"``, ``"jpeg"``, ``"dicom"``, or a description.

    DICOM is recognised by the ``DICM`` magic at offset 128, or by a ``.dcm``/``.dicom`` extension for files written
    without the preamble. Anything else returns a phrase such as ``"a TIFF file"`` or ``"a text file, not an image"``.
    """
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(_JPEG_SOI):
        return "jpeg"
    if data[128:132] == b"DICM" or name.lower().endswith(_DICOM_SUFFIXES):
        return "dicom"
    for signature, label in _UNSUPPORTED_SIGNATURES:
        if data.startswith(signature):
            return f"a {label} file"
    if data[8:12] == b"WEBP" and data.startswith(b"RIFF"):
        return "a WebP file"
    if _looks_like_text(data[:4096]):
        return "a text file, not an image"
    return "not a recognised image format"


def _looks_like_text(head: bytes) -> bool:
    """UTF-8 (a cut multi-byte character at the end tolerated) made of printable characters and line breaks."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return bool(text.strip()) and all(ch.isprintable() or ch in "\r\n\t\f" for ch in text)


def _check_png_complete(data: bytes, name: str) -> None:
    """Walk the PNG chunks up to ``IEND``: a file cut anywhere before its end fails (some decoders return the rows
    they got instead of an error)."""
    pos, size = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= size:
        length, chunk_type = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length  # length, type, data, CRC
        if end > size:
            break
        if chunk_type == b"IEND":
            return
        pos = end
    raise InputError(f"{name}: truncated PNG file (it ends before the IEND chunk)")


def _check_jpeg_complete(data: bytes, name: str) -> None:
    """A complete JPEG has an end-of-image marker (FFD9) after its last start-of-scan (FFDA).

    Entropy-coded data byte-stuffs every 0xFF, so FFD9 cannot occur inside a scan; an EXIF thumbnail's EOI comes
    before the main image's scans, so it cannot mask a cut in them.
    """
    if data.rfind(_JPEG_EOI) < max(data.rfind(_JPEG_SOS), 2):
        raise InputError(f"{name}: truncated JPEG file (no end-of-image marker after the image data)")


def _decode_dicom(data: bytes, name: str) -> np.ndarray:
    """DICOM -> gray array: Modality LUT (RescaleSlope/Intercept), VOI LUT or window, MONOCHROME1 inverted.

    The order is the DICOM grayscale pipeline (PS3.4 N.2): modality LUT, VOI LUT, then presentation, where
    MONOCHROME1 means that low values are displayed bright; we mirror it so that bone is bright, as in MONOCHROME2.
    """
    try:
        ds = pydicom.dcmread(BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types on a malformed stream
        raise InputError(f"{name}: not a readable DICOM file ({_one_line(exc)})") from None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError(f"{name}: DICOM file has no pixel data (PixelData element missing)")
    check_dicom_pixels(ds, name)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise InputError(f"{name}: DICOM file has {frames} frames; a radiograph must have exactly one")
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        raise InputError(f"{name}: cannot decode DICOM pixel data ({syntax_name}): {_one_line(exc)}") from None
    if pixels.size == 0:
        raise InputError(f"{name}: DICOM pixel data is empty")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        if photometric == "PALETTE COLOR" and pixels.ndim == 2:
            pixels = apply_color_lut(pixels, ds)
        if pixels.ndim == 3:
            # pydicom returns colour in RGB order (YBR converted); the LUT pipeline applies to grayscale only.
            return to_gray(pixels, channel_order="rgb")
        if pixels.ndim != 2:
            raise InputError(f"{name}: DICOM pixel data has shape {pixels.shape}, expected a 2-D image")
        image = apply_modality_lut(pixels, ds)
        image = apply_voi_lut(image, ds)
    except InputError:
        raise
    except Exception as exc:  # a malformed LUT or window element
        raise InputError(f"{name}: cannot apply the DICOM LUT/window ({_one_line(exc)})") from None
    if photometric == "MONOCHROME1":
        image = _mirror_range(image)
    if image.dtype.kind == "f":
        image = image.astype(np.float32, copy=False)
    return image


def _mirror_range(image: np.ndarray) -> np.ndarray:
    """``max + min - x``: inverts gray levels within the image's own range, so the dtype and the range are kept."""
    low, high = image.min(), image.max()
    if image.dtype.kind in "iu":
        return (high.astype(np.int64) - image.astype(np.int64) + low).astype(image.dtype)
    return high - image + low


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def to_gray(image: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """Reduce an image to one channel: gray is returned as is, alpha dropped, colour by Rec. 601 luma.

    ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, OpenCV's ``cvtColor`` to gray), in the input's dtype.
    A 2-channel image is gray + alpha and keeps channel 0.

    Args:
        image: (H, W) or (H, W, C) with C in 1..4.
        channel_order: ``"bgr"`` (OpenCV decoders) or ``"rgb"`` (pydicom, PIL).
    """
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 1..4) image, got shape {image.shape}")
    channels = image.shape[2]
    if channels <= 2:
        return np.ascontiguousarray(image[:, :, 0])
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        image = image.astype(np.float32)
    rgb = channel_order.lower() == "rgb"
    code = {
        (3, False): cv2.COLOR_BGR2GRAY,
        (4, False): cv2.COLOR_BGRA2GRAY,
        (3, True): cv2.COLOR_RGB2GRAY,
        (4, True): cv2.COLOR_RGBA2GRAY,
    }[(channels, rgb)]
    return cv2.cvtColor(np.ascontiguousarray(image), code)


# ------------------------------------------------------------------------------------------------------- intensities
def to_uint8(
    image: np.ndarray, low: float = 0.5, high: float = 99.5, sample_pixels: int = 2000, rounding: str = "rint"
) -> np.ndarray:
    """Percentile clipping to uint8 (docs/method.md, Task 1 preprocessing, after the winning code).

    With ``s = x.ravel()[::max(1, x.size // sample_pixels)]`` (a strided sample of about ``sample_pixels`` pixels),
    ``lo, hi = np.percentile(s, [low, high])`` (linear interpolation) and

        ``rint``:     ``y = round(255 * (clip(x, lo, hi) - lo) / (hi - lo))``
        ``truncate``: ``y = floor((clip(x, lo, hi) - lo) / (hi - lo) * 255)``  (the winning code's uint8 cast, in
                      its order of operations, so that exact integers land on the same side)

    computed in float64 (uint16 images through an exact 65,536-entry lookup table). ``uint8`` input is returned
    unchanged, as in the winning code. A constant image (``hi == lo``) maps to zeros with ``rint``; with
    ``truncate`` to ``floor(x / max(x) * 255)`` (zeros if ``max(x) <= 0``), the winning code's fallback.

    Raises:
        ValueError: the image holds NaN or infinity at the sampled percentiles.
    """
    if image.dtype == np.uint8:
        return image
    if image.size == 0:
        raise ValueError("cannot rescale an empty image")
    flat = image.reshape(-1)
    stride = max(1, flat.size // max(1, int(sample_pixels)))
    lo, hi = (float(v) for v in np.percentile(flat[::stride], [low, high]))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("image has non-finite pixel values")
    if rounding == "truncate":
        return _truncate_to_uint8(image, lo, hi)
    return _linear_to_uint8(image, lo, hi)


def _truncate_to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``floor((clip(x, lo, hi) - lo) / (hi - lo) * 255)`` in float64; ``hi <= lo``: ``floor(x / max * 255)``."""
    if image.dtype == np.uint16:
        table = _truncate_to_uint8(np.arange(65536, dtype=np.float64), lo, hi) if hi > lo else None
        if table is not None:
            return np.take(table, image)
    if not hi > lo:
        top = float(image.max())
        if top <= 0:
            return np.zeros(image.shape, dtype=np.uint8)
        return np.clip(image.astype(np.float64) / top * 255.0, 0.0, 255.0).astype(np.uint8)
    values = (np.clip(image.astype(np.float64), lo, hi) - lo) / (hi - lo) * 255.0
    return values.astype(np.uint8)


def to_uint8_full_range(image: np.ndarray) -> np.ndarray:
    """Scale by the dtype's full range, as WhyXrayCLIP's paper (÷255 or ÷65535), then back to uint8.

    ``y = round(255 * x / 65535)`` for uint16; uint8 unchanged; other dtypes (e.g. float DICOM) by their min-max
    range, ``y = round(255 * (x - min) / (max - min))`` (zeros if constant).
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return _linear_to_uint8(image, 0.0, 65535.0)
    lo, hi = float(image.min()), float(image.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("image has non-finite pixel values")
    return _linear_to_uint8(image, lo, hi)


def _linear_to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``round(255 * (clip(x, lo, hi) - lo) / (hi - lo))``; zeros when ``hi <= lo``."""
    if not hi > lo:
        return np.zeros(image.shape, dtype=np.uint8)
    if image.dtype == np.uint16:
        # One gather instead of four float passes over a large image; the table uses the same float64 formula.
        table = _linear_to_uint8(np.arange(65536, dtype=np.float64), lo, hi)
        return np.take(table, image)
    values = np.clip(image.astype(np.float64), lo, hi)
    values -= lo
    values *= 255.0 / (hi - lo)
    return np.rint(values, out=values).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocess:
    """How a radiograph becomes the model's gray uint8 image; travels with checkpoints and keys caches.

    Attributes:
        image_size: output (height, width); an int means a square.
        clip_low, clip_high: percentiles for :func:`to_uint8` (docs/method.md: 0.5 and 99.5).
        sample_pixels: pixels in the strided percentile sample (docs/method.md: ~2000).
        interpolation: ``"auto"`` (area to shrink, linear to enlarge) or a name in :data:`INTERPOLATIONS`.
        keep_aspect: ``False`` resizes straight to ``image_size`` (the method); ``True`` scales to fit and
            letterboxes, centred, with ``pad_value``.
        pad_value: gray level of the letterbox padding.
        intensity: ``"percentile"`` (the method) or ``"full_range"`` (WhyXrayCLIP paper: ÷255 / ÷65535).
        rounding: ``"rint"`` (nearest level) or ``"truncate"`` (the winning code's uint8 cast), see :func:`to_uint8`.
    """

    image_size: int | tuple[int, int] = 512
    clip_low: float = 0.5
    clip_high: float = 99.5
    sample_pixels: int = 2000
    interpolation: str = "auto"
    keep_aspect: bool = False
    pad_value: int = 0
    intensity: str = "percentile"
    rounding: str = "rint"

    #: Bump when the meaning of a field changes, so that caches keyed by :meth:`key` are not reused.
    VERSION = 1

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise InputError(f"image_size must be an int or (height, width), got {self.image_size!r}") from None
        if height <= 0 or width <= 0:
            raise InputError(f"image_size must be positive, got {self.image_size!r}")
        object.__setattr__(self, "image_size", (height, width))
        if not 0.0 <= self.clip_low < self.clip_high <= 100.0:
            raise InputError(
                f"clip percentiles must satisfy 0 <= clip_low < clip_high <= 100, got {self.clip_low}, {self.clip_high}"
            )
        if int(self.sample_pixels) < 1:
            raise InputError(f"sample_pixels must be at least 1, got {self.sample_pixels}")
        if self.interpolation != "auto" and self.interpolation not in INTERPOLATIONS:
            choices = ", ".join(["auto", *INTERPOLATIONS])
            raise InputError(f"unknown interpolation {self.interpolation!r}; choose one of: {choices}")
        if self.intensity not in INTENSITY_MODES:
            raise InputError(f"unknown intensity mode {self.intensity!r}; choose one of: {', '.join(INTENSITY_MODES)}")
        if self.rounding not in ROUNDINGS:
            raise InputError(f"unknown rounding {self.rounding!r}; choose one of: {', '.join(ROUNDINGS)}")
        if not 0 <= int(self.pad_value) <= 255:
            raise InputError(f"pad_value must be a gray level in 0..255, got {self.pad_value}")

    @property
    def height(self) -> int:
        return self.image_size[0]  # type: ignore[index]

    @property
    def width(self) -> int:
        return self.image_size[1]  # type: ignore[index]

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (YAML/JSON): ``image_size`` as ``[height, width]``."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)  # type: ignore[arg-type]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown preprocess settings {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def key(self) -> str:
        """A stable cache key such as ``"512x512-1f0c3a9b2e4d"``: the size, then a hash of every setting."""
        settings = self.to_dict()
        if settings["rounding"] == "rint":
            del settings["rounding"]  # the original behaviour keeps the cache keys it had before the field existed
        payload = json.dumps({"version": self.VERSION, **settings}, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
        return f"{self.height}x{self.width}-{digest}"


def resize_image(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Resize a 2-D image to ``preprocess.image_size`` (plain resize, or fit + centred letterbox padding)."""
    out_h, out_w = preprocess.height, preprocess.width
    in_h, in_w = image.shape[:2]
    if preprocess.keep_aspect:
        scale = min(out_h / in_h, out_w / in_w)
        fit_h, fit_w = max(1, min(out_h, round(in_h * scale))), max(1, min(out_w, round(in_w * scale)))
    else:
        fit_h, fit_w = out_h, out_w
    if (fit_h, fit_w) == (in_h, in_w):
        resized = image
    else:
        name = preprocess.interpolation
        if name == "auto":
            name = "area" if fit_h <= in_h and fit_w <= in_w else "linear"
        resized = cv2.resize(image, (fit_w, fit_h), interpolation=INTERPOLATIONS[name])
    if (fit_h, fit_w) == (out_h, out_w):
        return resized
    top, left = (out_h - fit_h) // 2, (out_w - fit_w) // 2
    canvas = np.full((out_h, out_w), preprocess.pad_value, dtype=resized.dtype)
    canvas[top : top + fit_h, left : left + fit_w] = resized
    return canvas


def apply_preprocess(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """A decoded radiograph (any dtype, gray or colour in RGB order) -> gray uint8 of ``preprocess.image_size``.

    Intensities are mapped to uint8 before resizing, as the method does.
    """
    if image.ndim == 3:
        image = to_gray(image, channel_order="rgb")
    if preprocess.intensity == "percentile":
        gray = to_uint8(image, preprocess.clip_low, preprocess.clip_high, preprocess.sample_pixels, preprocess.rounding)
    else:
        gray = to_uint8_full_range(image)
    return resize_image(gray, preprocess)


def load_image(path: str | os.PathLike[str], preprocess: Preprocess | None = None) -> np.ndarray:
    """Read → gray → uint8 (percentile clipping) → resize: the model's (H, W) uint8 image for one file.

    Raises:
        InputError: the file cannot be read as a radiograph (see :func:`read_radiograph`).
    """
    preprocess = preprocess or Preprocess()
    image = read_radiograph(path)
    try:
        return apply_preprocess(image, preprocess)
    except ValueError as exc:
        raise InputError(f"{os.fspath(path)}: {exc}") from None


# ------------------------------------------------------------------------------------------------------------ tensor
def to_model_tensor(
    images: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Gray uint8 -> normalised float32 with the gray replicated to 3 channels.

    ``out[c] = (x / 255 - mean[c]) / std[c]``. Numpy only; ``torch.from_numpy`` is the caller's.

    Args:
        images: (H, W) or a batch (N, H, W), dtype uint8.
        mean, std: per-channel; :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD` (Task 1) or
            :data:`CLIP_MEAN`/:data:`CLIP_STD`.

    Returns:
        (3, H, W) or (N, 3, H, W) float32.
    """
    if images.dtype != np.uint8:
        raise ValueError(f"to_model_tensor expects uint8 images, got {images.dtype}")
    if images.ndim not in (2, 3):
        raise ValueError(f"to_model_tensor expects (H, W) or (N, H, W), got shape {images.shape}")
    mean_arr = np.asarray(mean, dtype=np.float64).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean_arr.shape != (3,) or std_arr.shape != (3,) or np.any(std_arr <= 0):
        raise ValueError(f"mean and std need 3 values each (std > 0), got {tuple(mean)} and {tuple(std)}")
    scale = (1.0 / (255.0 * std_arr)).astype(np.float32)
    shift = (mean_arr / std_arr).astype(np.float32)
    batch = images[None] if images.ndim == 2 else images
    out = np.empty((batch.shape[0], 3, *batch.shape[1:]), dtype=np.float32)
    pixels = batch.astype(np.float32)
    for channel in range(3):
        np.multiply(pixels, scale[channel], out=out[:, channel])
        out[:, channel] -= shift[channel]
    return out[0] if images.ndim == 2 else out
