"""Demo data set benchmark: generation speed, and how learnable (but not trivial) the phantom findings are.

1. Generation: builds the demo data set (default sizes, 256 px) with N worker processes and prints images/s (wall
   clock), plus the CPU milliseconds one image costs in one process (render + PNG encode), which do not depend on
   what else runs on the machine.
2. Learnability: a simple baseline, one-vs-rest logistic regression on 32 x 32 downsampled pixels (read through
   cxrlt's own image loader, percentile-scaled to 8 bits, standardised; balanced class weights), C chosen per class
   on the validation split from a small grid, evaluated on the test split with scikit-learn's
   ``average_precision_score``. The prevalence
   baseline (a constant score) has AP = test prevalence. Prints the per-class table and the macro figures, with the
   head / medium / tail bucket of each class by training prevalence (CXR-LT convention: > 10 %, 1-10 %, < 1 %).

Usage:
    .venv/bin/python benchmarks/demo_data_bench.py [--out DIR] [--workers 2] [--n-train 2000 --n-val 400
        --n-test 600] [--image-size 256] [--reuse]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlt_core.data.demo import generate_demo_dataset, plan_cohort, render_case  # noqa: E402
from cxrlt_core.data.demo.sampling import render_arguments  # noqa: E402
from cxrlt_core.data.images import Preprocess, load_image  # noqa: E402
from cxrlt_core.data.manifest import read_manifest  # noqa: E402
from cxrlt_core.labels import assign_buckets, get_label_space  # noqa: E402

C_GRID = (0.003, 0.03)


def cpu_ms_per_image(size: int, count: int = 200, seed: int = 0) -> tuple[float, float]:
    """CPU time of rendering and of PNG-encoding one image, in one process (ms)."""
    cv2.setNumThreads(1)
    cohort = plan_cohort(count, 0, 0, seed=seed)
    images = []
    start = time.process_time()
    for row in range(count):
        images.append(render_case(size=size, **render_arguments(cohort, seed, row)).image)
    rendered = time.process_time()
    for image in images:
        cv2.imencode(".png", image)
    encoded = time.process_time()
    return (rendered - start) / count * 1000, (encoded - rendered) / count * 1000


def features(folder: Path, csv: str, pixels: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Downsampled pixels (n, pixels**2) and labels of one split, read the way cxrlt reads any data set."""
    manifest = read_manifest(folder / csv, image_root=folder / "images", label_space="cxrlt2026")
    preprocess = Preprocess(image_size=pixels)
    x = np.stack([load_image(manifest.image_path(i), preprocess).reshape(-1) for i in range(len(manifest))])
    return x.astype(np.float32) / 255.0, manifest.labels, manifest.classes


def learnability(folder: Path, pixels: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    space = get_label_space("cxrlt2026")
    x_train, y_train, classes = features(folder, "train.csv", pixels)
    x_val, y_val, _ = features(folder, "val.csv", pixels)
    x_test, y_test, test_classes = features(folder, "test_labels.csv", pixels)
    y_test = y_test[:, [test_classes.index(c) for c in classes]]
    scaler = StandardScaler().fit(x_train)
    x_train, x_val, x_test = scaler.transform(x_train), scaler.transform(x_val), scaler.transform(x_test)
    buckets = assign_buckets(y_train, classes)

    print(f"\nLearnability: logistic regression on {pixels}x{pixels} pixels, C per class on val from {C_GRID}")
    print(
        f"{'class':32s} {'bucket':7s} {'n_train_pos':>11s} {'n_test_pos':>10s} {'prev_AP':>8s} {'LR_AP':>7s} {'C':>6s}"
    )
    rows = []
    started = time.perf_counter()
    for k, name in enumerate(classes):
        best = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=300, tol=1e-3, class_weight="balanced").fit(x_train, y_train[:, k])
            val_ap = average_precision_score(y_val[:, k], model.decision_function(x_val)) if y_val[:, k].any() else 0
            if best is None or val_ap > best[0]:
                best = (val_ap, c, model)
        _, c, model = best
        ap = average_precision_score(y_test[:, k], model.decision_function(x_test))
        prevalence = float(y_test[:, k].mean())
        rows.append((name, buckets[name], int(y_train[:, k].sum()), int(y_test[:, k].sum()), prevalence, ap))
        print(f"{name:32s} {buckets[name]:7s} {rows[-1][2]:11d} {rows[-1][3]:10d} {prevalence:8.3f} {ap:7.3f} {c:6g}")
    seconds = time.perf_counter() - started
    prevalence_ap = np.array([r[4] for r in rows])
    lr_ap = np.array([r[5] for r in rows])
    print(f"\nmacro AP: logistic regression {lr_ap.mean():.3f} vs prevalence baseline {prevalence_ap.mean():.3f}")
    losers = [r[0] for r in rows if r[5] <= r[4]]
    print(f"classes where the baseline does not beat prevalence: {losers or 'none'}")
    for bucket in ("head", "medium", "tail"):
        members = [r for r in rows if r[1] == bucket]
        if members:
            print(
                f"  {bucket:6s} ({len(members):2d} classes): mean AP {np.mean([r[5] for r in members]):.3f}, "
                f"prevalence {np.mean([r[4] for r in members]):.3f}"
            )
    rare = sorted(rows, key=lambda r: r[2])[:8]
    print(
        f"8 rarest classes (by training positives): mean AP {np.mean([r[5] for r in rare]):.3f} "
        f"(max {max(r[5] for r in rare):.3f}); unseen classes present in test: {list(space.unseen)}"
    )
    print(f"({len(classes)} classes x {len(C_GRID)} C values fitted in {seconds:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where to build (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="skip generation if --out already holds the data set")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-val", type=int, default=400)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixels", type=int, default=32)
    args = parser.parse_args(argv)

    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="cxrlt-demo-bench-")) / "demo" if temporary else args.out
    try:
        render_ms, encode_ms = cpu_ms_per_image(args.image_size)
        print(
            f"one process: render {render_ms:.2f} ms + PNG encode {encode_ms:.2f} ms CPU per {args.image_size}px "
            f"image -> {1000 / (render_ms + encode_ms):.0f} images/s per core"
        )
        total = args.n_train + args.n_val + args.n_test
        if not (args.reuse and (out / "dataset.json").is_file()):
            started = time.perf_counter()
            generate_demo_dataset(
                out,
                args.n_train,
                args.n_val,
                args.n_test,
                args.image_size,
                args.seed,
                workers=args.workers,
                progress=lambda done, total: None,
                overwrite=True,
            )
            seconds = time.perf_counter() - started
            size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
            print(
                f"generation: {total} images at {args.image_size}px with {args.workers} workers in {seconds:.1f} s "
                f"= {total / seconds:.0f} images/s wall clock (load average {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} cores); {size_mb:.0f} MB on disk"
            )
        learnability(out, args.pixels)
    finally:
        if temporary:
            shutil.rmtree(out.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
