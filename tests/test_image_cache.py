"""The on-disk decoded-and-resized image cache: hits, invalidation, corrupt entries, concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrlt_core.data import image_cache
from cxrlt_core.data.image_cache import ImageCache
from cxrlt_core.data.images import Preprocess, load_image
from cxrlt_core.errors import InputError, ValidationError


def write_png(path: Path, seed: int = 0, shape: tuple[int, int] = (90, 70)) -> Path:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 4096, size=shape).astype(np.uint16), (5, 5), 0)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


@pytest.fixture
def counted_loads(monkeypatch):
    """Count calls to the decoder behind the cache."""
    calls: list[str] = []

    def counting_load(path, preprocess):
        calls.append(os.fspath(path))
        return load_image(path, preprocess)

    monkeypatch.setattr(image_cache, "load_image", counting_load)
    return calls


def test_hit_after_miss_returns_identical_array_without_decoding(tmp_path, counted_loads):
    image_path = write_png(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache", Preprocess(32))
    first = cache.get(image_path)
    second = cache.get(image_path)
    assert counted_loads == [os.fspath(image_path)]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, load_image(image_path, Preprocess(32)))
    assert second.dtype == np.uint8 and second.shape == (32, 32)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.repaired) == (1, 1, 0) and stats.hit_rate == 0.5
    # A second cache object (another worker, a later run) finds the entry on disk.
    fresh = ImageCache(tmp_path / "cache", Preprocess(32))
    np.testing.assert_array_equal(fresh.get(image_path), first)
    assert fresh.stats().hits == 1 and len(counted_loads) == 1
    assert (cache.directory / "preprocess.json").is_file()


def test_touched_file_misses(tmp_path, counted_loads):
    image_path = write_png(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache", Preprocess(16))
    cache.get(image_path)
    info = image_path.stat()
    os.utime(image_path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    cache.get(image_path)
    assert len(counted_loads) == 2 and cache.stats().misses == 2


def test_replaced_content_misses(tmp_path):
    image_path = write_png(tmp_path / "a.png", seed=1)
    cache = ImageCache(tmp_path / "cache", Preprocess(16))
    before = cache.get(image_path)
    mtime = image_path.stat().st_mtime_ns
    write_png(image_path, seed=2, shape=(120, 60))  # new size on disk
    os.utime(image_path, ns=(mtime, mtime))  # same mtime: the size alone must tell
    after = cache.get(image_path)
    assert cache.stats().misses == 2
    np.testing.assert_array_equal(after, load_image(image_path, Preprocess(16)))
    assert not np.array_equal(before, after)


def test_changed_preprocess_misses(tmp_path, counted_loads):
    image_path = write_png(tmp_path / "a.png")
    small = ImageCache(tmp_path / "cache", Preprocess(16))
    other_clip = ImageCache(tmp_path / "cache", Preprocess(16, clip_high=99.0))
    small.get(image_path)
    out = other_clip.get(image_path)
    assert len(counted_loads) == 2 and other_clip.stats().misses == 1
    assert small.directory != other_clip.directory
    assert out.shape == (16, 16)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_shape", "empty"])
def test_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path, counted_loads, damage):
    image_path = write_png(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache", Preprocess(24))
    good = cache.get(image_path)
    entry = cache.entry_path(image_path)
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:200])
    elif damage == "garbage":
        entry.write_bytes(b"not a numpy file at all" * 10)
    elif damage == "wrong_shape":
        with open(entry, "wb") as handle:
            np.save(handle, np.zeros((3, 3), dtype=np.uint8))
    else:
        entry.write_bytes(b"")
    repaired = cache.get(image_path)
    np.testing.assert_array_equal(repaired, good)
    assert cache.stats().repaired == 1 and len(counted_loads) == 2
    # The rewritten entry now hits.
    np.testing.assert_array_equal(cache.get(image_path), good)
    assert len(counted_loads) == 2


def test_missing_and_bad_files_raise_and_are_not_cached(tmp_path):
    cache = ImageCache(tmp_path / "cache", Preprocess(16))
    with pytest.raises(InputError, match=r"gone\.png: image file not found"):
        cache.get(tmp_path / "gone.png")
    bad = tmp_path / "bad.png"
    bad.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.png: a text file"):
        cache.get(bad)
    assert not cache.entry_path(bad).exists()


def test_fill_reports_progress_and_lists_bad_files(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    bad = tmp_path / "zero.png"
    bad.write_bytes(b"")
    cache = ImageCache(tmp_path / "cache", Preprocess(16))
    seen: list[tuple[int, int]] = []
    stats = cache.fill(paths, progress=lambda done, total: seen.append((done, total)), show_progress=False)
    assert (stats.misses, stats.hits) == (3, 0) and seen[-1] == (3, 3)
    assert cache.fill(paths, show_progress=False).hits == 3
    with pytest.raises(ValidationError, match=r"1 of 4 images could not be cached: .*zero\.png"):
        cache.fill([*paths, bad], show_progress=False)


def _worker_get(args: tuple[str, str, int]) -> bytes:
    root, image, rounds = args
    cache = ImageCache(root, Preprocess(64))
    out = b""
    for _ in range(rounds):
        out = cache.get(image).tobytes()
    return out


def test_concurrent_workers_fill_the_same_entries(tmp_path):
    images = [write_png(tmp_path / f"{i}.png", seed=i, shape=(300, 240)) for i in range(3)]
    root = tmp_path / "cache"
    jobs = [(os.fspath(root), os.fspath(images[i % 3]), 5) for i in range(12)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_worker_get, jobs)
    for (_, image, _), result in zip(jobs, results):
        assert result == load_image(image, Preprocess(64)).tobytes()
    entries = sorted(root.rglob("*.npy"))
    assert len(entries) == 3
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]  # no temporary files left behind
    cache = ImageCache(root, Preprocess(64))
    for image in images:
        cache.get(image)
    assert cache.stats().hits == 3
