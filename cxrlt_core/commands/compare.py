"""``cxrlt compare A B --labels L``: paired bootstrap comparison of two prediction files on the same images."""

from __future__ import annotations

import argparse
import sys

from cxrlt_core.commands.evaluate import add_scoring_arguments, scoring_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare``."""
    parser = subparsers.add_parser(
        "compare",
        help="is B better than A? per-class and macro delta AP/AUC/F1/ECE with paired bootstrap intervals",
        description="Score two prediction files of the same images on the same bootstrap resamples (patients when "
        "the labels name them) and print B - A per class, sorted, with 95%% intervals and two-sided p-values.",
    )
    parser.add_argument("pred_a", metavar="A", help="predictions .csv or .parquet (the baseline)")
    parser.add_argument("pred_b", metavar="B", help="predictions .csv or .parquet (the candidate)")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help="labels CSV of the same images")
    parser.add_argument("--train-labels", metavar="TRAIN.csv", help="training labels: head/medium/tail buckets")
    parser.add_argument("--label-space", metavar="NAME", help="registered label space (default: labels header)")
    parser.add_argument("--threshold", type=float, default=None, help="F1 decision threshold (default 0.5)")
    parser.add_argument("--figure", choices=("ap", "auc", "f1", "ece"), default="ap", help="per-class table figure")
    add_scoring_arguments(parser, default_bootstrap=1000)
    parser.add_argument("--json", metavar="OUT.json", help="write the comparison as JSON (atomically)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare, print, optionally write JSON; exit 0."""
    from cxrlt_core.atomic import write_json
    from cxrlt_core.comparison import compare, format_comparison
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.predictions import read_predictions

    options = scoring_options(args)
    labels = read_manifest(args.labels, label_space=args.label_space)
    train = read_manifest(args.train_labels, label_space=labels.label_space) if args.train_labels else None
    pred_a, pred_b = read_predictions(args.pred_a), read_predictions(args.pred_b)
    comparison = compare(pred_a, pred_b, labels, train, progress=sys.stderr.isatty(), **options)
    for note in comparison.notes:
        print(f"note: {note}", file=sys.stderr)
    print(format_comparison(comparison, args.figure))
    if args.json:
        write_json(args.json, comparison.to_dict())
        print(f"wrote {args.json}")
    return 0
