"""``cxrlt data make-demo`` and ``cxrlt data demo-gallery``: build and draw the synthetic demo data set."""

from __future__ import annotations

import argparse
from pathlib import Path

# literal defaults so that `cxrlt --help` does not import the generator (numpy, OpenCV, pandas)
DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_N_TEST, DEFAULT_IMAGE_SIZE = 2000, 400, 600, 256


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``make-demo`` and ``demo-gallery`` to the ``cxrlt data`` group."""
    make = data_subparsers.add_parser(
        "make-demo",
        help="build the synthetic phantom chest X-ray data set (CXR-LT 2026 format)",
        description="Render phantom radiographs (16-bit PNG) with CXR-LT 2026 labels and short reports: train.csv, "
        "val.csv, test.csv, val_labels.csv, test_labels.csv, reports.csv, heldout_reports.csv, images/, "
        "dataset.json. The same seed gives byte-identical files.",
    )
    make.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to create")
    make.add_argument("--n-train", type=int, default=DEFAULT_N_TRAIN, metavar="N", help="training images")
    make.add_argument("--n-val", type=int, default=DEFAULT_N_VAL, metavar="N", help="validation images")
    make.add_argument("--n-test", type=int, default=DEFAULT_N_TEST, metavar="N", help="test images")
    make.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, metavar="S", help="pixels per side")
    make.add_argument("--seed", type=int, default=0, metavar="K", help="random seed")
    make.add_argument("--workers", type=int, default=None, metavar="W", help="rendering processes (default: CPUs)")
    make.add_argument("--overwrite", action="store_true", help="rebuild even if DIR already holds a data set")
    make.set_defaults(func=run_make_demo)

    gallery = data_subparsers.add_parser(
        "demo-gallery",
        help="draw one phantom example per class, named, into a PNG",
        description="One tile per CXR-LT 2026 class (Normal = no finding), unseen classes named in amber.",
    )
    gallery.add_argument("--out", required=True, type=Path, metavar="FILE.png", help="PNG to write")
    gallery.add_argument("--size", type=int, default=192, metavar="S", help="tile size in pixels")
    gallery.add_argument("--columns", type=int, default=6, metavar="N", help="tiles per row")
    gallery.add_argument("--seed", type=int, default=0, metavar="K", help="random seed")
    gallery.set_defaults(func=run_demo_gallery)


def run_make_demo(args: argparse.Namespace) -> int:
    """Build the demo data set with a progress bar and print where it is."""
    from cxrlt_core.data.demo import generate_demo_dataset, read_dataset_info
    from cxrlt_core.errors import InputError

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    out = generate_demo_dataset(
        args.out,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        image_size=args.image_size,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    info = read_dataset_info(out) or {}
    sizes = info.get("sizes", {})
    patients = info.get("patients", {})
    print(f"demo data set in {out}")
    for split in ("train", "val", "test"):
        print(f"  {split:5s} {sizes.get(split, 0):6d} images, {patients.get(split, 0):5d} patients")
    unseen = info.get("unseen_present", {})
    print(f"  unseen findings drawn in val: {len(unseen.get('val', []))}, test: {len(unseen.get('test', []))}")
    return 0


def run_demo_gallery(args: argparse.Namespace) -> int:
    """Write the gallery PNG and print its path."""
    from cxrlt_core.data.demo import make_gallery
    from cxrlt_core.errors import InputError

    if args.columns < 1:
        raise InputError(f"--columns must be at least 1, got {args.columns}")
    print(make_gallery(args.out, size=args.size, columns=args.columns, seed=args.seed))
    return 0
