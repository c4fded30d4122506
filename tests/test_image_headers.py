"""Pixel limits read from headers (PNG IHDR, JPEG SOF, DICOM Rows/Columns) before any decoding: pixel bombs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrlt_core.data.image_headers import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    check_pixel_limit,
    jpeg_size,
    max_pixels,
    pil_size,
    png_size,
)
from cxrlt_core.data.images import decode_radiograph, load_image, read_radiograph
from cxrlt_core.errors import InputError
from tests.test_images import dicom_bytes


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int, bit_depth: int = 1, rows: int | None = None) -> bytes:
    """A complete gray PNG declaring ``width x height``; ``rows`` rows of zeros are really stored (all if None)."""
    row_bytes = 1 + (width * bit_depth + 7) // 8
    stored = height if rows is None else rows
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(bytes(row_bytes)) for _ in range(stored)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose SOF0 header is patched to declare ``width x height``."""
    ok, encoded = cv2.imencode(".jpg", np.full((16, 16), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_png_and_jpeg_headers_give_the_declared_size():
    assert png_size(png_bomb(321, 123, rows=1)) == (321, 123)
    assert jpeg_size(jpeg_with_size(5000, 7000)) == (5000, 7000)
    ok, encoded = cv2.imencode(".png", np.zeros((17, 29), np.uint16))
    assert png_size(encoded.tobytes()) == (29, 17)
    assert pil_size(encoded.tobytes()) == (29, 17)
    assert png_size(b"not a png") is None and jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None


def test_png_bomb_is_refused_before_decoding_with_its_declared_size():
    bomb = png_bomb(32000, 32000, rows=2)  # declares 1.02 Gpx in a few hundred bytes
    with pytest.raises(InputError) as caught:
        decode_radiograph(bomb, "bomb.png")
    message = str(caught.value)
    assert message.startswith("bomb.png: PNG image declares 32000 x 32000 pixels (1,024,000,000)")
    assert f"{DEFAULT_MAX_PIXELS:,}" in message and MAX_PIXELS_ENV in message


def test_sixteen_bit_and_sixty_thousand_square_pngs_get_the_same_one_line_error(tmp_path: Path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_bomb(60000, 60000, bit_depth=16, rows=1))
    with pytest.raises(InputError, match=r"huge\.png: PNG image declares 60000 x 60000 pixels") as caught:
        load_image(path)
    assert "\n" not in str(caught.value) and "Assertion" not in str(caught.value)


def test_jpeg_bomb_is_refused():
    with pytest.raises(InputError, match=r"x\.jpg: JPEG image declares 30000 x 20000 pixels \(600,000,000\)"):
        decode_radiograph(jpeg_with_size(30000, 20000), "x.jpg")


def test_dicom_rows_columns_are_checked_before_pixel_data():
    pixels = np.zeros((4, 4), np.uint16)
    data = dicom_bytes(pixels, Rows=20000, Columns=30000)
    with pytest.raises(InputError, match=r"scan\.dcm: DICOM file declares 30000 x 20000 pixels"):
        decode_radiograph(data, "scan.dcm")


def test_limit_is_configurable_through_the_environment(monkeypatch, tmp_path: Path):
    ok, encoded = cv2.imencode(".png", np.full((20, 10), 7, np.uint8))
    path = tmp_path / "a.png"
    path.write_bytes(encoded.tobytes())
    monkeypatch.setenv(MAX_PIXELS_ENV, "199")
    with pytest.raises(
        InputError, match=r"a\.png: PNG image declares 10 x 20 pixels \(200\), more than the limit of 199"
    ):
        read_radiograph(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "200")
    assert read_radiograph(path).shape == (20, 10)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")
    assert max_pixels() is None
    assert decode_radiograph(png_bomb(40000, 1, rows=1), "wide.png").shape == (1, 40000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match="CXRLT_MAX_PIXELS='lots' is not a whole number"):
        max_pixels()


def test_check_pixel_limit_counts_frames():
    check_pixel_limit("f.dcm", 100, 100, limit=30000, frames=3)
    with pytest.raises(InputError, match=r"100 x 100 x 4 frames pixels \(40,000\)"):
        check_pixel_limit("f.dcm", 100, 100, limit=30000, frames=4)


def test_every_real_radiograph_passes_the_default_limit_and_headers_match_decoding(shared_data: Path):
    files = sorted((shared_data / "fullres-cxr-samples" / "images").iterdir())
    assert len(files) > 50
    for path in files:
        data = path.read_bytes()
        size = png_size(data) or jpeg_size(data)
        decoded = read_radiograph(path)  # passes the default limit
        assert size == (decoded.shape[1], decoded.shape[0]), path.name
        assert size[0] * size[1] < DEFAULT_MAX_PIXELS / 4
