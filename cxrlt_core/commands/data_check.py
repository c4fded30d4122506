"""``cxrlt data check``: read a labels CSV and its images and list every problem, one per line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cxrlt_core.registry import RegistryChoices

if TYPE_CHECKING:
    from cxrlt_core.data.manifest import Manifest

UNCERTAIN_CHOICES = RegistryChoices("cxrlt_core.data.manifest:UNCERTAIN_POLICIES")


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``check`` to the ``cxrlt data`` group."""
    parser = data_subparsers.add_parser(
        "check",
        help="check a labels CSV and its image folder",
        description="Exit 0 with a summary when the data set is clean, else exit 1 with one line per problem "
        "(bad label cell, blank or duplicate id, missing or empty image, unknown column).",
    )
    parser.add_argument("--labels", required=True, metavar="CSV", help="labels CSV (ImageID/image column + classes)")
    parser.add_argument("--images", metavar="DIR", help="image folder the ids are relative to (checked when given)")
    parser.add_argument("--label-space", metavar="NAME", help="registered label space (default: from the header)")
    parser.add_argument(
        "--uncertain", choices=UNCERTAIN_CHOICES, default="ignore", metavar="POLICY", help="-1 cells: %(choices)s"
    )
    parser.add_argument("--id-column", metavar="NAME", help="id column (default: ImageID, image, Path, ...)")
    parser.add_argument("--meta", metavar="CSV", help="metadata CSV joined by id (e.g. one holding Patient ID)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the data set; print the summary (exit 0) or the problems (exit 1)."""
    from cxrlt_core.data.manifest import count_problems, read_manifest
    from cxrlt_core.errors import ValidationError

    try:
        manifest = read_manifest(
            args.labels,
            image_root=args.images,
            label_space=args.label_space,
            id_column=args.id_column,
            uncertain=args.uncertain,
            check_images=args.images is not None,
            meta_csv=args.meta,
            strict_columns=True,
        )
    except ValidationError as exc:
        for line in exc.problems:
            print(line)
        print(f"error: {args.labels}: {count_problems(exc.problems)}", file=sys.stderr)
        return 1
    print(summary(manifest, images_checked=args.images is not None))
    return 0


def summary(manifest: Manifest, images_checked: bool) -> str:
    """A short text summary: images, patients, classes and per-class positives / negatives / unknown."""
    import numpy as np

    patients = "no patient column"
    if manifest.patients is not None:
        named = [p for p in manifest.patients if p is not None]
        patients = f"{len(set(named))} patients"
    lines = [
        f"{manifest.path}: {len(manifest)} images, {patients}, {manifest.num_classes} classes of label space "
        f"{manifest.label_space.name!r}" + (", every image file present" if images_checked else ""),
    ]
    if manifest.missing_classes:
        lines.append(f"no column for {len(manifest.missing_classes)} classes: {', '.join(manifest.missing_classes)}")
    if manifest.num_classes:
        known = ~np.isnan(manifest.labels)
        positives = np.nansum(manifest.labels, axis=0).astype(int)
        width = max(len(c) for c in manifest.classes)
        lines.append(f"{'class':<{width}}  {'positive':>8}  {'negative':>8}  {'unknown':>8}")
        for j, name in enumerate(manifest.classes):
            n_known = int(known[:, j].sum())
            negatives = n_known - int(positives[j])
            lines.append(f"{name:<{width}}  {positives[j]:>8}  {negatives:>8}  {len(manifest) - n_known:>8}")
    return "\n".join(lines)
