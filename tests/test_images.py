"""Radiograph decoding and preprocessing: generated PNG/JPEG/DICOM files with known answers, bad input, real data."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from cxrlt_core.data.images import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    apply_preprocess,
    decode_radiograph,
    load_image,
    read_radiograph,
    resize_image,
    sniff_format,
    to_gray,
    to_model_tensor,
    to_uint8,
    to_uint8_full_range,
)
from cxrlt_core.errors import InputError


def smooth_image(shape: tuple[int, int], seed: int = 0, dtype: type = np.uint8, high: int = 255) -> np.ndarray:
    """A blurred random image (compresses like a radiograph, so JPEG has real entropy-coded scans)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 4)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.rint(noise * high).astype(dtype)


def write_image(path: Path, image: np.ndarray, *params: int) -> Path:
    ok, encoded = cv2.imencode(path.suffix, image, list(params))
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def expected_clip(image: np.ndarray, low: float = 0.5, high: float = 99.5, sample_pixels: int = 2000) -> np.ndarray:
    """The method's formula, written out independently of the implementation."""
    flat = image.ravel()
    sample = flat[:: max(1, flat.size // sample_pixels)]
    lo, hi = np.percentile(sample, [low, high])
    scaled = (np.clip(image.astype(np.float64), lo, hi) - lo) / (hi - lo) * 255.0
    return np.rint(scaled).astype(np.uint8)


def dicom_bytes(pixels: np.ndarray, photometric: str = "MONOCHROME2", pixel_data: bool = True, **elements) -> bytes:
    """An uncompressed single-frame DICOM file (Explicit VR Little Endian) built in memory."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = elements.pop("BitsStored", bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------- PNG and JPEG
def test_png_8bit_round_trip(tmp_path):
    image = smooth_image((40, 30))
    path = write_image(tmp_path / "a.png", image)
    decoded = read_radiograph(path)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, image)
    assert to_uint8(decoded) is decoded  # uint8 passes through unchanged, as in the winning code


def test_png_16bit_percentile_clipping_matches_numpy_on_strided_sample(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(1000, 3001, size=(120, 97), dtype=np.uint16)
    image[0, :5] = [0, 65535, 60000, 5, 40000]  # outliers that the clipping must remove
    path = write_image(tmp_path / "b16.png", image)
    decoded = read_radiograph(path)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, image)
    clipped = to_uint8(decoded)
    np.testing.assert_array_equal(clipped, expected_clip(image))
    assert clipped.min() == 0 and clipped.max() == 255
    # The sample is strided: 11640 pixels // 2000 -> every 5th pixel; outliers at 0..4 include pixel 0 only.
    np.testing.assert_array_equal(to_uint8(decoded, 1.0, 99.0, sample_pixels=100), expected_clip(image, 1, 99, 100))


def test_to_uint8_float_matches_formula_and_constant_is_zero():
    image = np.linspace(-1000.0, 3000.0, 5000, dtype=np.float32).reshape(50, 100)
    np.testing.assert_array_equal(to_uint8(image), expected_clip(image))
    constant = np.full((10, 10), 1234, dtype=np.uint16)
    out = to_uint8(constant)
    assert out.dtype == np.uint8 and not out.any()
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(np.full((4, 4), np.nan, dtype=np.float32))


def test_uint16_lookup_table_equals_float_path():
    image = smooth_image((64, 64), seed=3, dtype=np.uint16, high=4095)
    np.testing.assert_array_equal(to_uint8(image), to_uint8(image.astype(np.float32)))


def test_full_range_scaling():
    image = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8_full_range(image), [[0, 255], [128, 1]])
    floats = np.array([[-10.0, 10.0]], dtype=np.float32)
    np.testing.assert_array_equal(to_uint8_full_range(floats), [[0, 255]])


def test_rgb_and_rgba_png_reduce_to_luma(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    luma = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.int16)
    gray = read_radiograph(write_image(tmp_path / "rgb.png", bgr))
    assert gray.shape == (20, 30) and gray.dtype == np.uint8
    assert np.abs(gray.astype(np.int16) - luma).max() <= 1  # OpenCV's fixed-point Rec. 601
    alpha = rng.integers(0, 256, size=(20, 30, 1), dtype=np.uint8)
    gray_rgba = read_radiograph(write_image(tmp_path / "rgba.png", np.concatenate([bgr, alpha], axis=2)))
    np.testing.assert_array_equal(gray_rgba, gray)  # alpha dropped


def test_gray_replicated_rgb_is_exact_and_16bit_rgba_keeps_depth(tmp_path):
    image = smooth_image((16, 16), seed=4)
    np.testing.assert_array_equal(read_radiograph(write_image(tmp_path / "g3.png", np.dstack([image] * 3))), image)
    deep = smooth_image((16, 16), seed=5, dtype=np.uint16, high=65535)
    out = read_radiograph(write_image(tmp_path / "g16.png", np.dstack([deep] * 4)))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, deep)
    # gray + alpha given as 2 channels keeps the gray channel
    np.testing.assert_array_equal(to_gray(np.dstack([image, image // 2])), image)


def test_jpeg_decodes_close_to_source(tmp_path):
    image = smooth_image((64, 48), seed=6)
    decoded = read_radiograph(write_image(tmp_path / "c.jpg", image, cv2.IMWRITE_JPEG_QUALITY, 95))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 2


def test_unicode_path_and_bytes_agree(tmp_path):
    image = smooth_image((12, 10), seed=7)
    path = write_image(tmp_path / "tórax é.png", image)
    np.testing.assert_array_equal(read_radiograph(path), image)
    np.testing.assert_array_equal(decode_radiograph(path.read_bytes(), "upload.png"), image)


# ------------------------------------------------------------------------------------------------------------ DICOM
def test_dicom_monochrome2_native_dtype():
    pixels = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 80).astype(np.uint16)
    out = decode_radiograph(dicom_bytes(pixels, BitsStored=12), "m2.dcm")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, pixels)


def test_dicom_monochrome1_is_inverted_so_bone_is_bright():
    pixels = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 80 + 100).astype(np.uint16)
    out = decode_radiograph(dicom_bytes(pixels, "MONOCHROME1", BitsStored=12), "m1.dcm")
    expected = int(pixels.max()) + int(pixels.min()) - pixels.astype(np.int64)
    np.testing.assert_array_equal(out, expected)
    # After clipping, MONOCHROME1 is the mirror of the same pixels stored as MONOCHROME2.
    m2 = decode_radiograph(dicom_bytes(pixels, BitsStored=12), "m2.dcm")
    np.testing.assert_array_equal(to_uint8(out), 255 - to_uint8(m2))


def test_dicom_rescale_slope_intercept_gives_float32():
    pixels = np.array([[0, 1, 2], [100, 200, 4095]], dtype=np.uint16)
    out = decode_radiograph(dicom_bytes(pixels, BitsStored=12, RescaleSlope=2, RescaleIntercept=-1024), "ct.dcm")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, pixels.astype(np.float32) * 2 - 1024)


def test_dicom_signed_pixels():
    pixels = np.array([[-1000, -1], [0, 2000]], dtype=np.int16)
    np.testing.assert_array_equal(decode_radiograph(dicom_bytes(pixels), "s.dcm"), pixels)


def test_dicom_window_center_width_linear_function():
    """DICOM PS3.3 C.11.2.1.2.1 linear window on unsigned 12-bit data: output range 0..4095."""
    pixels = np.arange(0, 4096, 64, dtype=np.uint16).reshape(8, 8)
    center, width = 2000.0, 1000.0
    out = decode_radiograph(dicom_bytes(pixels, BitsStored=12, WindowCenter=center, WindowWidth=width), "w.dcm")
    x = pixels.astype(np.float64)
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 4095.0
    y[x <= center - 0.5 - (width - 1) / 2] = 0.0
    y[x > center - 0.5 + (width - 1) / 2] = 4095.0
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-3)


def test_dicom_voi_lut_sequence_applied():
    pixels = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.LUTData = np.array([10, 20, 40, 80], dtype=np.uint16).tobytes()
    out = decode_radiograph(dicom_bytes(pixels, VOILUTSequence=[item]), "lut.dcm")
    np.testing.assert_array_equal(out, [[10, 20, 40, 80]])


def test_dicom_rgb_reduced_to_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], dtype=np.uint8)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 1, 4, 3, 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    out = decode_radiograph(buffer.getvalue(), "rgb.dcm")
    np.testing.assert_array_equal(out, [[76, 150, 29, 10]])  # round(255 * 0.299 / 0.587 / 0.114)


def test_dicom_bad_window_is_an_error():
    data = dicom_bytes(np.zeros((2, 2), dtype=np.uint16), WindowCenter=10, WindowWidth=0)
    with pytest.raises(InputError, match=r"w0\.dcm: cannot apply the DICOM LUT/window"):
        decode_radiograph(data, "w0.dcm")


def test_dicom_detected_by_content_without_extension(tmp_path):
    pixels = smooth_image((10, 12), seed=8, dtype=np.uint16, high=4000)
    path = tmp_path / "no_extension"
    path.write_bytes(dicom_bytes(pixels))
    assert sniff_format(path.read_bytes()) == "dicom"
    np.testing.assert_array_equal(read_radiograph(path), pixels)
    assert load_image(path, Preprocess(8)).shape == (8, 8)


def test_dicom_without_pixel_data_is_an_error():
    data = dicom_bytes(np.zeros((4, 4), dtype=np.uint16), pixel_data=False)
    with pytest.raises(InputError, match=r"report\.dcm: .*no pixel data"):
        decode_radiograph(data, "report.dcm")


def test_truncated_dicom_is_an_error():
    data = dicom_bytes(smooth_image((32, 32), dtype=np.uint16, high=4000))
    with pytest.raises(InputError, match=r"cut\.dcm: cannot decode DICOM pixel data"):
        decode_radiograph(data[:-100], "cut.dcm")


# -------------------------------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.png: image file not found"):
        read_radiograph(tmp_path / "nothere.png")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: image file is empty"):
        read_radiograph(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_png(tmp_path, keep):
    data = write_image(tmp_path / "full.png", smooth_image((64, 64), dtype=np.uint16, high=65535)).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match=r"cut\.png: truncated PNG"):
        read_radiograph(path)


@pytest.mark.parametrize("cut", [2, 50, "half"])
def test_truncated_jpeg(tmp_path, cut):
    data = write_image(tmp_path / "full.jpg", smooth_image((96, 80))).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2] if cut == "half" else data[:-cut])
    with pytest.raises(InputError, match=r"cut\.jpg: truncated JPEG"):
        read_radiograph(path)


def test_truncated_progressive_jpeg(tmp_path):
    data = write_image(tmp_path / "p.jpg", smooth_image((96, 80)), cv2.IMWRITE_JPEG_PROGRESSIVE, 1).read_bytes()
    with pytest.raises(InputError, match="truncated JPEG"):
        decode_radiograph(data[: len(data) * 2 // 3], "p.jpg")


def test_jpeg_with_trailing_bytes_is_accepted(tmp_path):
    image = smooth_image((32, 32), seed=9)
    data = write_image(tmp_path / "t.jpg", image).read_bytes()
    assert decode_radiograph(data + b"\x00" * 16, "t.jpg").shape == image.shape


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("ImageID,Atelectasis\nabc,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"notes\.png: a text file, not an image"):
        read_radiograph(path)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [(b"GIF89a" + bytes(40), "a GIF file"), (b"II*\x00" + bytes(40), "a TIFF file"), (bytes(range(256)), "not a")],
)
def test_unsupported_formats(data, phrase):
    with pytest.raises(InputError, match=rf"x\.bin: {phrase}.*supported images are PNG, JPEG and DICOM"):
        decode_radiograph(data, "x.bin")


def test_corrupt_png_body(tmp_path):
    data = bytearray(write_image(tmp_path / "ok.png", smooth_image((32, 32))).read_bytes())
    data[60:80] = bytes(20)  # zero a stretch of compressed data; chunk structure is intact
    with pytest.raises(InputError, match=r"bad\.png: corrupt or unsupported PNG"):
        decode_radiograph(bytes(data), "bad.png")


def test_size_limit():
    with pytest.raises(InputError, match=r"big\.png: .*more than the limit of 10"):
        decode_radiograph(b"\x89PNG\r\n\x1a\n" + bytes(100), "big.png", max_bytes=10)


def test_directory_is_an_error(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_radiograph(tmp_path)


# ---------------------------------------------------------------------------------------------------- preprocessing
def test_preprocess_round_trip_and_key():
    pp = Preprocess(image_size=(384, 512), interpolation="linear", keep_aspect=True)
    assert pp.image_size == (384, 512)
    again = Preprocess.from_dict(pp.to_dict())
    assert again == pp and again.key() == pp.key()
    assert Preprocess(512).key() == Preprocess((512, 512)).key()
    assert Preprocess(512).key().startswith("512x512-")
    keys = {
        Preprocess().key(),
        Preprocess(224).key(),
        Preprocess(clip_high=99.0).key(),
        Preprocess(keep_aspect=True).key(),
    }
    assert len(keys) == 4
    with pytest.raises(InputError, match="unknown preprocess settings"):
        Preprocess.from_dict({"size": 3})
    with pytest.raises(InputError, match="interpolation"):
        Preprocess(interpolation="bicubicc")
    with pytest.raises(InputError, match="clip percentiles"):
        Preprocess(clip_low=60, clip_high=40)


@pytest.mark.parametrize("interpolation", ["auto", "area", "linear", "cubic", "lanczos", "nearest"])
@pytest.mark.parametrize("source", [(300, 200), (20, 40)])
def test_resize_shapes(interpolation, source):
    image = smooth_image(source)
    out = resize_image(image, Preprocess((64, 48), interpolation=interpolation))
    assert out.shape == (64, 48) and out.dtype == np.uint8


def test_auto_interpolation_is_area_when_shrinking():
    image = smooth_image((256, 256), seed=10)
    np.testing.assert_array_equal(
        resize_image(image, Preprocess(64)), cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    )
    np.testing.assert_array_equal(
        resize_image(image, Preprocess(300)), cv2.resize(image, (300, 300), interpolation=cv2.INTER_LINEAR)
    )


def test_letterbox_keeps_aspect_and_pads():
    image = np.full((100, 50), 200, dtype=np.uint8)
    out = resize_image(image, Preprocess(64, keep_aspect=True, pad_value=7))
    assert out.shape == (64, 64)
    np.testing.assert_array_equal(out[:, 16:48], 200)
    assert (out[:, :16] == 7).all() and (out[:, 48:] == 7).all()


def test_load_image_clips_then_resizes(tmp_path):
    image = smooth_image((200, 160), seed=11, dtype=np.uint16, high=12000)
    path = write_image(tmp_path / "x.png", image)
    pp = Preprocess(image_size=(50, 40))
    expected = cv2.resize(expected_clip(image), (40, 50), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(load_image(path, pp), expected)
    np.testing.assert_array_equal(apply_preprocess(image, pp), expected)


def test_to_model_tensor_known_values():
    image = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    out = to_model_tensor(image)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    for c in range(3):
        expected = (image / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(out[c], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], -0.485 / 0.229, atol=1e-6)
    batch = to_model_tensor(np.stack([image, image[::-1]]), CLIP_MEAN, CLIP_STD)
    assert batch.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(batch[1, 2], (image[::-1] / 255.0 - CLIP_MEAN[2]) / CLIP_STD[2], atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        to_model_tensor(image.astype(np.float32))


# -------------------------------------------------------------------------------------------------------- real data
def _check_loaded(path: Path, pp: Preprocess) -> None:
    out = load_image(path, pp)
    assert out.shape == (pp.height, pp.width), path
    assert out.dtype == np.uint8, path
    assert out.std() > 1.0, f"{path} loaded as a (near-)constant image"


def test_every_fullres_sample_loads(shared_data):
    paths = sorted((shared_data / "fullres-cxr-samples" / "images").iterdir())
    assert len(paths) >= 100
    pp = Preprocess(256)
    for path in paths:
        _check_loaded(path, pp)


def test_nih_sample_loads(shared_data):
    paths = sorted((shared_data / "nih-cxr14-64px" / "images").glob("*.png"))
    assert len(paths) >= 600
    pp = Preprocess(128)
    for path in paths[::20]:
        assert read_radiograph(path).ndim == 2
        _check_loaded(path, pp)
