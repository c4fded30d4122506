"""Image sizes read from file headers, before any pixel is decoded: the guard against decompression ("pixel") bombs.

A 124 KB PNG can declare 32000 x 32000 pixels; decoding it would allocate gigabytes. Every decoder in cxrlt
(``cxrlt_core.data.images.decode_radiograph``: the CLI, the training and prediction loaders, dashboard uploads) first
reads the declared size here and refuses images above a pixel limit:

- PNG: width and height of the ``IHDR`` chunk (PNG spec, section 11.2.2), the first chunk after the signature;
- JPEG: height and width of the first start-of-frame segment (``SOF0``..``SOF15`` except ``DHT``/``JPG``/``DAC``,
  ITU-T T.81 B.2.2), found by walking the marker segments;
- DICOM: ``Rows`` x ``Columns`` x ``NumberOfFrames`` (checked in the DICOM decoder, before ``pixel_array``);
- anything else: Pillow's lazy ``Image.open``, which parses the header only.

The limit is :data:`DEFAULT_MAX_PIXELS` unless the environment variable ``CXRLT_MAX_PIXELS`` (a positive integer,
or ``0`` for no limit) says otherwise.
"""

from __future__ import annotations

import os
import struct
from io import BytesIO

from PIL import Image

from cxrlt_core.errors import InputError

DEFAULT_MAX_PIXELS = 8192 * 8192
"""64 Mpx (8192 x 8192): four times the largest flat-panel radiograph (43 x 43 cm at 100 um is 4300 x 4300)."""

MAX_PIXELS_ENV = "CXRLT_MAX_PIXELS"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0..7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def max_pixels() -> int | None:
    """The pixel limit in force: ``$CXRLT_MAX_PIXELS`` if set (``0``: none), else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise InputError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels (0 means no limit)") from None
    if value < 0:
        raise InputError(f"{MAX_PIXELS_ENV}={raw!r} must be 0 (no limit) or a positive number of pixels")
    return value or None


def png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's ``IHDR`` chunk, or ``None`` when the first chunk is not a whole IHDR."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        return None
    _length, chunk_type, width, height = struct.unpack_from(">I4sII", data, 8)
    return (width, height) if chunk_type == b"IHDR" else None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's first start-of-frame segment, or ``None`` if there is none before the scan.

    Walks the marker segments from SOI: ``FF xx`` then a big-endian length that counts itself; fill bytes ``FF``
    before a marker are skipped (T.81 B.1.1.2). A frame's header is ``P(1) Y(2) X(2) Nf(1)``.
    """
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF:
            if pos + 9 > size:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header, or a broken length
            return None
        pos += 2 + length
    return None


def pil_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from Pillow's lazy open (header only, no pixel decoding), or ``None`` if Pillow cannot."""
    try:
        with Image.open(BytesIO(data)) as image:
            return tuple(image.size)  # type: ignore[return-value]
    except Exception:  # Pillow raises many types on unknown or broken headers
        return None


def declared_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """The ``(width, height)`` a PNG / JPEG / other image declares; ``None`` when no header gives one.

    ``kind`` is the format named by ``cxrlt_core.data.images.sniff_format``. DICOM is checked by
    :func:`check_dicom_pixels`, on the parsed data set.
    """
    if kind == "png":
        return png_size(data) or pil_size(data)
    if kind == "jpeg":
        return jpeg_size(data) or pil_size(data)
    return pil_size(data)


def check_pixel_limit(
    name: str, width: int, height: int, limit: int | None = None, frames: int = 1, what: str = "image"
) -> None:
    """Raise an :class:`InputError` naming ``name`` and its declared size when it exceeds the pixel limit.

    Args:
        name: the file (or upload) name for the message.
        width, height, frames: the declared size.
        limit: pixels allowed (``None``: :func:`max_pixels`, the configured limit).
        what: the format, for the message ("PNG image", "DICOM file").
    """
    limit = max_pixels() if limit is None else limit
    pixels = int(width) * int(height) * max(1, int(frames))
    if limit and pixels > limit:
        shape = f"{int(width)} x {int(height)}" + (f" x {int(frames)} frames" if frames > 1 else "")
        raise InputError(
            f"{name}: {what} declares {shape} pixels ({pixels:,}), more than the limit of {limit:,} "
            f"(a decompression bomb or not a radiograph; raise the limit with {MAX_PIXELS_ENV}=N if it is genuine)"
        )


def check_header_pixels(data: bytes, name: str, kind: str, limit: int | None = None) -> None:
    """Refuse a PNG / JPEG (or other) image whose header declares more pixels than the limit, before decoding."""
    size = declared_size(data, kind)
    if size is not None:
        check_pixel_limit(name, size[0], size[1], limit, what=f"{kind.upper()} image")


def check_dicom_pixels(ds, name: str, limit: int | None = None) -> None:
    """Refuse a parsed DICOM data set whose ``Rows x Columns x NumberOfFrames`` exceeds the limit (before decoding)."""
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InputError(f"{name}: DICOM Rows/Columns/NumberOfFrames are not numbers") from None
    check_pixel_limit(name, columns, rows, limit, frames=frames, what="DICOM file")
