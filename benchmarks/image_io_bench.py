"""Radiograph loading throughput on the real full-resolution samples: decode + clip + resize, and cache hits.

Run from the repository root::

    .venv/bin/python benchmarks/image_io_bench.py [--size 512] [--repeats 3]

Measures, in one process on one core's worth of work (OpenCV threads left at their default):

1. ``load_image`` at ``--size`` on the 101 JPEG/PNG files of ``$CXRLT_SHARED_DATA/fullres-cxr-samples`` (8-bit, so the
   percentile clipping is a pass-through), with the time split into decode / to_uint8 / resize;
2. the same images re-encoded as 16-bit PNGs in a temporary folder (the CXR-LT format), where clipping does work;
3. ``ImageCache``: the first pass (misses: load + write) and later passes (hits: read one .npy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlt_core.data.image_cache import ImageCache  # noqa: E402
from cxrlt_core.data.images import Preprocess, load_image, read_radiograph, resize_image, to_uint8  # noqa: E402
from cxrlt_core.paths import shared_data_dir  # noqa: E402


def best_rate(paths: Sequence[Path], step: Callable[[Path], object], repeats: int) -> tuple[float, float]:
    """(best, median) images per second over ``repeats`` passes."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            step(path)
        rates.append(len(paths) / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def stage_times(paths: Sequence[Path], preprocess: Preprocess) -> dict[str, float]:
    """Mean milliseconds per image for each stage of ``load_image``."""
    totals = {"decode": 0.0, "to_uint8": 0.0, "resize": 0.0}
    for path in paths:
        t0 = time.perf_counter()
        image = read_radiograph(path)
        t1 = time.perf_counter()
        gray = to_uint8(image, preprocess.clip_low, preprocess.clip_high, preprocess.sample_pixels)
        t2 = time.perf_counter()
        resize_image(gray, preprocess)
        t3 = time.perf_counter()
        totals["decode"] += t1 - t0
        totals["to_uint8"] += t2 - t1
        totals["resize"] += t3 - t2
    return {name: 1000 * value / len(paths) for name, value in totals.items()}


def to_16bit_copies(paths: Sequence[Path], folder: Path) -> list[Path]:
    """Re-encode each image as a 16-bit gray PNG spanning ~12 bits, with noise so that all 16 bits vary."""
    rng = np.random.default_rng(0)
    out = []
    for index, path in enumerate(paths):
        gray = read_radiograph(path).astype(np.uint32) * 16 + 200
        deep = np.clip(gray + rng.integers(0, 16, size=gray.shape), 0, 65535).astype(np.uint16)
        target = folder / f"{index:03d}.png"
        ok, encoded = cv2.imencode(".png", deep)
        assert ok
        target.write_bytes(encoded.tobytes())
        out.append(target)
    return out


def report(label: str, paths: Sequence[Path], preprocess: Preprocess, repeats: int) -> None:
    pixels = [read_radiograph(p).size for p in paths]
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    best, median = best_rate(paths, lambda p: load_image(p, preprocess), repeats)
    stages = stage_times(paths, preprocess)
    print(
        f"{label}: {len(paths)} files, {megabytes:.1f} MB, {min(pixels) / 1e6:.2f}-{max(pixels) / 1e6:.2f} Mpx "
        f"(median {statistics.median(pixels) / 1e6:.2f})"
    )
    print(f"  load_image -> {preprocess.height}x{preprocess.width}: {best:.1f} img/s best, {median:.1f} img/s median")
    print("  per image: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in stages.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--images", type=Path, default=(shared_data_dir() or Path("data")) / "fullres-cxr-samples" / "images"
    )
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.images.iterdir() if p.is_file())
    if not paths:
        print(f"no images in {args.images}", file=sys.stderr)
        return 1
    preprocess = Preprocess(args.size)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads, numpy {np.__version__}")
    report("real samples (8-bit JPEG/PNG)", paths, preprocess, args.repeats)

    with tempfile.TemporaryDirectory(prefix="cxrlt-bench-") as tmp:
        deep = to_16bit_copies(paths, Path(tmp))
        report("same images as 16-bit PNG", deep, preprocess, args.repeats)

        cache = ImageCache(Path(tmp) / "cache", preprocess)
        start = time.perf_counter()
        for path in paths:
            cache.get(path)
        fill_rate = len(paths) / (time.perf_counter() - start)
        hit_best, hit_median = best_rate(paths, cache.get, args.repeats)
        stats = cache.stats()
        entry_bytes = sum(p.stat().st_size for p in cache.directory.rglob("*.npy"))
        print(f"ImageCache at {preprocess.height}x{preprocess.width} ({entry_bytes / len(paths) / 1e3:.0f} kB/entry):")
        print(f"  first pass (miss: load + write): {fill_rate:.1f} img/s")
        print(f"  hits: {hit_best:.1f} img/s best, {hit_median:.1f} img/s median")
        print(f"  counted: {stats.hits} hits, {stats.misses} misses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
