"""``cxrlt audit --pred P --labels L [--by sex,age,view,site]``: figures per subgroup, patient-clustered."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``audit``."""
    parser = subparsers.add_parser(
        "audit",
        help="subgroup audit: AP, AUC, TPR/FPR and underdiagnosis per sex, age band, view and site, with gaps",
        description="Score a predictions file per subgroup of the labels' metadata (sex, age band, view, site): "
        "per-class AP and AUC, TPR and FPR at the thresholds, the underdiagnosis rate (an image with a finding "
        "called Normal), each with a 95%% interval over patient resamples; a gap to the rest of the attribute is "
        "flagged only when its interval excludes 0.",
    )
    parser.add_argument("--pred", required=True, metavar="PRED", help="predictions .csv or .parquet")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help="labels CSV with metadata columns")
    parser.add_argument("--meta", metavar="META.csv", help="metadata CSV joined by id (e.g. NIH meta.csv)")
    parser.add_argument("--id-column", metavar="NAME", help="id column (default: ImageID, image, Path, ...)")
    parser.add_argument("--label-space", metavar="NAME", help="registered label space (default: labels header)")
    parser.add_argument("--by", default="sex,age,view,site", help="attributes, comma-separated (default: all four)")
    parser.add_argument("--columns", metavar="MAP", help="metadata column map, e.g. sex=Gender,site=Hospital")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold for TPR/FPR (default 0.5)")
    parser.add_argument("--thresholds", metavar="T.json", help="per-class thresholds (cxrlt thresholds output)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--resample", choices=("auto", "patient", "image"), default="auto", help="bootstrap unit")
    parser.add_argument("--json", metavar="OUT.json", help="write summary and per-class rows as JSON")
    parser.add_argument("--csv", metavar="OUT.csv", help="write the per-class rows as CSV")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Audit, print the summary, optionally write JSON / CSV; exit 0."""
    import numpy as np

    from cxrlt_core.atomic import write_json, write_text
    from cxrlt_core.audit import audit, format_audit
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.data.metadata import parse_column_map
    from cxrlt_core.errors import InputError
    from cxrlt_core.evaluation import resampling_clusters
    from cxrlt_core.inference.thresholds import load_thresholds
    from cxrlt_core.predictions import align_to_labels, read_predictions

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {args.threshold}")
    labels = read_manifest(args.labels, label_space=args.label_space, id_column=args.id_column, meta_csv=args.meta,
                           metadata_columns=parse_column_map(args.columns))  # fmt: skip
    scores, y, classes = align_to_labels(read_predictions(args.pred), labels)
    thresholds = np.full(len(classes), args.threshold)
    if args.thresholds:
        thresholds = load_thresholds(args.thresholds).for_classes(classes)
    by = [part.strip() for part in args.by.split(",") if part.strip()]
    clusters, kind = resampling_clusters(labels)
    result = audit(y, scores, classes, labels.metadata(), by=by, patients=clusters, thresholds=thresholds,
                   normal=labels.label_space.normal, n_resamples=args.bootstrap, seed=args.seed,
                   resample=args.resample, cluster_kind=kind)  # fmt: skip
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.pred} vs {args.labels}: {len(y)} images, {len(classes)} classes")
    print(format_audit(result))
    if args.json:
        write_json(args.json, result.to_dict())
        print(f"wrote {args.json}")
    if args.csv:
        write_text(args.csv, result.per_class.to_csv(index=False))
        print(f"wrote {args.csv}")
    return 0
