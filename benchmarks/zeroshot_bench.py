"""Zero-shot scoring speed: first scoring (encode + score) vs re-scoring after one prompt edit with warm caches.

For each N, N distinct demo images (the demo set's PNGs, cycled, each copy made distinct by one pixel so that the
content-hash cache cannot share them) are

(a) encoded through an empty embedding cache and scored with the model's prompt set;
(b) re-scored after one prompt of one class is edited:
    - in memory: the dashboard's case, image embeddings already loaded: one text encode + one matrix product;
    - from disk: a new process's case, a fresh cache object: a ``stat`` per image (hash memo), the cached rows
      read back, then the same text encode + product.

Usage::

    .venv/bin/python benchmarks/zeroshot_bench.py --model local-dir:workspace/demo/models/demo_clip \\
        --data workspace/demo/datasets/demo --sizes 1000 10000

(build the demo data with ``cxrlt data make-demo`` and the model with ``cxrlt zeroshot train-demo``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def distinct_images(source: Path, folder: Path, n: int) -> list[Path]:
    """``n`` PNGs in ``folder``: the demo images cycled; copy k of an image has pixel (0, 0) raised by k."""
    originals = sorted(source.glob("*.png"))
    if not originals:
        raise SystemExit(f"no PNG images in {source}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        original = originals[i % len(originals)]
        copy = i // len(originals)
        path = folder / f"{original.stem}_{copy}.png"
        if not path.exists():
            if copy == 0:
                shutil.copyfile(original, path)
            else:
                image = cv2.imread(str(original), cv2.IMREAD_UNCHANGED)
                image[0, 0] = (int(image[0, 0]) + copy) % np.iinfo(image.dtype).max
                cv2.imwrite(str(path), image)
            old = time.time() - 60  # outside the hash memo's "racy" window, as files on disk normally are
            os.utime(path, (old, old))
        paths.append(path)
    return paths


def edited(prompt_set, number: int):
    """The prompt set with the first class's last prompt replaced by a new text."""
    from cxrlt_core.zeroshot.prompts import ClassPrompts

    name = prompt_set.class_names[0]
    entry = prompt_set.classes[name]
    prompts = (*entry.prompts[:-1], f"{entry.prompts[-1]} (edit {number})")
    classes = {**prompt_set.classes, name: ClassPrompts(prompts, entry.negatives)}
    return dataclasses.replace(prompt_set, classes=classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model spec, e.g. local-dir:workspace/demo/models/demo_clip")
    parser.add_argument("--data", required=True, help="demo data set folder (its images/ are used)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="numbers of images")
    parser.add_argument("--work", help="folder for the image copies and caches (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="image decoding processes (default 1)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from cxrlt_core.zeroshot.cache import EmbeddingCache
    from cxrlt_core.zeroshot.loading import load_model
    from cxrlt_core.zeroshot.predict import ZeroShotScorer, prompt_set_for_model

    torch.set_num_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zeroshot_bench_"))
    started = time.perf_counter()
    model = load_model(args.model, device="cpu")
    print(f"model {model.spec}: loaded in {time.perf_counter() - started:.2f} s; embedding width {model.embed_dim}")
    prompt_set, source = prompt_set_for_model(model)
    print(f"prompts: {source} ({len(prompt_set.class_names)} classes, {len(prompt_set.all_texts())} prompts)")
    print(f"torch threads {args.threads}, decoding workers {args.workers}, batch {args.batch_size}")
    # Other processes sharing the cores slow every figure; the load average says how busy the machine was.
    print(f"cpu cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}")
    print()
    print(f"{'N':>6}  {'first (s)':>9}  {'img/s':>6}  {'rescore mem (s)':>15}  {'rescore disk (s)':>16}  {'ratio':>7}")
    for n in args.sizes:
        paths = distinct_images(Path(args.data) / "images", work / "images", n)
        cache_dir = work / f"cache_{n}"
        shutil.rmtree(cache_dir, ignore_errors=True)

        t0 = time.perf_counter()
        scorer = ZeroShotScorer.from_paths(
            model,
            paths,
            cache=EmbeddingCache(cache_dir),
            batch_size=args.batch_size,
            num_workers=args.workers,
            show_progress=False,
        )
        scorer.score(prompt_set)
        first = time.perf_counter() - t0

        t0 = time.perf_counter()
        scores = scorer.score(edited(prompt_set, 1))
        in_memory = time.perf_counter() - t0

        t0 = time.perf_counter()
        fresh = ZeroShotScorer.from_paths(model, paths, cache=EmbeddingCache(cache_dir), show_progress=False)
        fresh.score(edited(prompt_set, 2))
        from_disk = time.perf_counter() - t0
        assert fresh.stats is not None and fresh.stats.encoded == 0, "warm cache should encode nothing"
        assert scores.shape == (n, len(prompt_set.class_names))
        print(
            f"{n:>6}  {first:>9.2f}  {n / first:>6.0f}  {in_memory:>15.4f}  {from_disk:>16.3f}"
            f"  {first / from_disk:>6.0f}x   (load average {os.getloadavg()[0]:.1f})"
        )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
