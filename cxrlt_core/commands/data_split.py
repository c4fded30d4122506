"""``cxrlt data split --labels CSV [--proxy]``: patient-grouped train / validation CSVs, or a proxy of the test."""

from __future__ import annotations

import argparse


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``split`` to the ``cxrlt data`` group."""
    parser = data_subparsers.add_parser(
        "split",
        help="split a labels CSV by patient; --proxy: a validation split that mimics the hidden test",
        description="Write train.csv and val.csv (the original rows) with no patient on both sides. With --proxy "
        "the validation set holds only frontal images (PA/AP) with at least one positive label, and the report "
        "compares it with a random image split of the same size (patient leakage, views, prevalence).",
    )
    parser.add_argument("--labels", required=True, metavar="CSV", help="labels CSV with a patient column")
    parser.add_argument("--meta", metavar="CSV", help="metadata CSV joined by id (patients, views)")
    parser.add_argument("--id-column", metavar="NAME", help="id column (default: ImageID, image, Path, ...)")
    parser.add_argument("--label-space", metavar="NAME", help="registered label space (default: from the header)")
    parser.add_argument("--columns", metavar="MAP", help="metadata column map, e.g. view=ViewCodeSequence")
    parser.add_argument("--proxy", action="store_true", help="frontal-only, labelled, patient-disjoint validation")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of (eligible) images in validation")
    parser.add_argument("--min-labels", type=int, default=1, help="--proxy: positive labels an image needs")
    parser.add_argument("--all-views", action="store_true", help="--proxy: keep laterals in validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for train.csv, val.csv, split.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Split, write, print the report; exit 0."""
    import numpy as np

    from cxrlt_core.atomic import write_json
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.data.metadata import parse_column_map
    from cxrlt_core.data.proxy_split import ProxySplit, format_split_report, proxy_split, write_split
    from cxrlt_core.data.splits import patient_grouped_split

    manifest = read_manifest(args.labels, label_space=args.label_space, id_column=args.id_column, meta_csv=args.meta,
                             metadata_columns=parse_column_map(args.columns))  # fmt: skip
    if args.proxy:
        split = proxy_split(manifest, args.val_fraction, args.seed, args.min_labels, not args.all_views)
        print(format_split_report(split.report))
    else:
        train, val = patient_grouped_split(manifest, args.val_fraction, seed=args.seed, labels=manifest.labels)
        split = ProxySplit(train, val, np.array([], dtype=np.int64), {"seed": args.seed, "proxy": False})
        print(f"{len(train)} training and {len(val)} validation images, no patient on both sides")
    for path in write_split(manifest, split, args.out):
        print(f"wrote {path}")
    write_json(f"{args.out}/split.json", split.report)
    return 0
