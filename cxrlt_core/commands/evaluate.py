"""``cxrlt evaluate``: score a predictions file against a labels CSV, as the challenge does.

Rows are matched by id in any order and classes by column name; an id on one side only is an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cxrlt_core.registry import RegistryChoices

UNCERTAIN_CHOICES = RegistryChoices("cxrlt_core.data.manifest:UNCERTAIN_POLICIES")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against labels: mAP, mAUC, mF1, mECE, head/medium/tail",
        description="Print a per-class table and the macro figures; optionally write them as JSON.",
    )
    parser.add_argument("--pred", required=True, metavar="PRED", help="predictions .csv or .parquet")
    parser.add_argument("--labels", required=True, metavar="LABELS.csv", help="labels CSV of the same images")
    parser.add_argument("--train-labels", metavar="TRAIN.csv", help="training labels: head/medium/tail buckets")
    parser.add_argument("--label-space", metavar="NAME", help="registered label space (default: labels header)")
    parser.add_argument("--threshold", type=float, default=None, help="F1 decision threshold (default 0.5)")
    parser.add_argument(
        "--skipped-as-zero", action="store_true", help="count classes without positives as AP 0 (winning code)"
    )
    add_scoring_arguments(parser, default_bootstrap=0)
    parser.add_argument(
        "--uncertain", choices=UNCERTAIN_CHOICES, default="ignore", metavar="POLICY", help="-1 cells: %(choices)s"
    )
    parser.add_argument(
        "--allow-extra-columns",
        action="store_true",
        help="ignore label columns that are neither classes nor known metadata (default: error, as a misspelt "
        "class would otherwise drop out of the scores silently)",
    )
    parser.add_argument(
        "--label-map",
        metavar="NAME|FILE",
        help="score across label spaces: the name of a map registered in cxrlt_core.label_maps.LABEL_MAPS, or a "
        "YAML/JSON map file; predictions and/or labels in its source space are mapped to its target",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the report as JSON (atomically)")
    parser.set_defaults(func=run)


def add_scoring_arguments(parser: argparse.ArgumentParser, default_bootstrap: int) -> None:
    """``--bootstrap``, ``--seed``, ``--resample``, ``--scorer`` and ``--thresholds`` (shared with compare/audit)."""
    parser.add_argument(
        "--bootstrap", type=int, default=default_bootstrap, metavar="N", help="bootstrap resamples for 95%% intervals"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--resample",
        choices=("auto", "patient", "image"),
        default="auto",
        help="bootstrap unit: patients whenever the labels have a patient column (auto), or images",
    )
    parser.add_argument(
        "--scorer",
        metavar="NAME|SPEC",
        help="scorer variant: cxrlt (default), winning_code, sklearn_macro, strict, pooled_ece, ece10, tuned_f1, "
        "or empty=skip|zero|nan,ece=per_class|pooled,bins=N,f1=fixed|per_class,threshold=T",
    )
    parser.add_argument("--thresholds", metavar="T.json", help="per-class F1 thresholds (cxrlt thresholds output)")


def scoring_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``evaluation.evaluate`` from :func:`add_scoring_arguments`'s options."""
    import dataclasses

    from cxrlt_core.errors import InputError
    from cxrlt_core.inference.thresholds import load_thresholds
    from cxrlt_core.scorers import get_scorer

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    scorer = get_scorer(args.scorer, threshold=getattr(args, "threshold", None))
    per_class = None
    if args.thresholds:
        loaded = load_thresholds(args.thresholds)
        per_class = dict(zip(loaded.classes, loaded.thresholds))
        if scorer.f1 == "fixed":
            scorer = dataclasses.replace(scorer, name=f"{scorer.name}+thresholds", f1="per_class")
    return {"bootstrap": args.bootstrap, "seed": args.seed, "resample": args.resample, "scorer": scorer,
            "class_thresholds": per_class}  # fmt: skip


def _apply_label_map(spec: str, pred: Any, labels: Any, train: Any) -> tuple[Any, Any, Any]:
    """Bring predictions, labels and training labels into the map's target space; say what was mapped."""
    from cxrlt_core.label_maps import load_label_map, map_manifest, map_predictions

    label_map = load_label_map(spec)
    pred, mapped_pred = map_predictions(pred, label_map)
    labels, mapped_labels = map_manifest(labels, label_map)
    if train is not None:
        train, _ = map_manifest(train, label_map)
    mapped = [name for name, done in (("predictions", mapped_pred), ("labels", mapped_labels)) if done]
    print(f"label map {label_map.name} ({label_map.source} -> {label_map.target}) applied to "
          f"{' and '.join(mapped) or 'nothing (both already in the target space)'}", file=sys.stderr)  # fmt: skip
    return pred, labels, train


def run(args: argparse.Namespace) -> int:
    """Load, align, score, print; exit 0."""
    from cxrlt_core.atomic import write_json
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.errors import InputError
    from cxrlt_core.evaluation import evaluate
    from cxrlt_core.metrics import format_report_table
    from cxrlt_core.predictions import read_predictions

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold must be in [0, 1], got {args.threshold}")
    strict = not args.allow_extra_columns
    labels = read_manifest(args.labels, label_space=args.label_space, uncertain=args.uncertain, strict_columns=strict)
    train = None
    if args.train_labels:
        train = read_manifest(
            args.train_labels, label_space=labels.label_space, uncertain=args.uncertain, strict_columns=strict
        )
    pred = read_predictions(args.pred)
    if args.label_map:
        pred, labels, train = _apply_label_map(args.label_map, pred, labels, train)
    options = scoring_options(args)
    result = evaluate(
        pred,
        labels,
        train,
        skipped_as_zero=args.skipped_as_zero,
        progress=bool(args.bootstrap) and sys.stderr.isatty(),
        **options,
    )
    if labels.extra_columns:
        print(f"note: label columns ignored (not classes): {list(labels.extra_columns)}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.pred} vs {args.labels}: {len(result.labels)} images, {len(result.classes)} classes")
    print(f"scorer {options['scorer'].label()}")
    print(format_report_table(result.report))
    if args.json:
        write_json(args.json, result.report)  # json_safe makes numpy values plain
        print(f"wrote {args.json}")
    return 0
