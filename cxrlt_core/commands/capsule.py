"""``cxrlt capsule make`` / ``cxrlt capsule check``: reproduction capsules of a reported figure."""

from __future__ import annotations

import argparse
import sys
from typing import Any

UNCERTAIN_CHOICES = ("ignore", "zero", "one")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``capsule`` group with ``make`` and ``check``."""
    parser = subparsers.add_parser("capsule", help="pack a reported figure for re-checking; re-check one")
    commands = parser.add_subparsers(dest="capsule_command", metavar="CAPSULE_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    make = commands.add_parser(
        "make",
        help="pack predictions, recipes, hashes of labels / images / checkpoints, scorer and figures",
        description="Either --pred (and --labels) or --run (its best checkpoint's test predictions, the labels "
        "found beside the predicted ids and the recipe's training CSV).",
    )
    make.add_argument("--out", required=True, metavar="CAPSULE", help="capsule folder, or a .zip file")
    make.add_argument("--pred", metavar="PRED", help="predictions .parquet or .csv")
    make.add_argument("--run", metavar="RUN", help="a run of --workspace: its predictions/test file")
    make.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    make.add_argument("--labels", metavar="LABELS.csv", help="labels the figures are scored against")
    make.add_argument("--train-labels", metavar="TRAIN.csv", help="training labels: head/medium/tail buckets")
    make.add_argument("--ids", metavar="IDS.csv", help="CSV of the predicted images (default: from the provenance)")
    make.add_argument("--images", metavar="DIR", help="their folder (default: from the provenance)")
    make.add_argument("--file", action="append", default=[], metavar="FILE", help="another file to pack (repeat)")
    make.add_argument("--label-space", metavar="NAME", help="registered label space (default: labels header)")
    make.add_argument("--threshold", type=float, default=0.5, help="F1 decision threshold (default 0.5)")
    make.add_argument("--skipped-as-zero", action="store_true", help="classes without positives count as AP 0")
    make.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for the mAP CI")
    make.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    make.add_argument("--uncertain", choices=UNCERTAIN_CHOICES, default="ignore", help="policy for -1 cells")
    make.add_argument("--force", action="store_true", help="replace an existing capsule")
    make.set_defaults(func=run_make)

    check = commands.add_parser(
        "check",
        help="verify a capsule: hashes, re-scored figures, optionally re-run inference",
        description="Prints each file, image and figure as reproduced / differs / cannot be checked; exit 0 only "
        "when everything is reproduced.",
    )
    check.add_argument("capsule", metavar="CAPSULE", help="capsule folder or .zip")
    check.add_argument("--images", metavar="DIR", help="the image folder (default: where the capsule says)")
    check.add_argument("--labels", metavar="LABELS.csv", help="the labels CSV (default: where the capsule says)")
    check.add_argument("--rerun-inference", action="store_true", help="predict the images again and compare")
    check.set_defaults(func=run_check)


def _bar(desc: str) -> tuple[Any, Any]:
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit="file", disable=not sys.stderr.isatty(), dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _from_run(args: argparse.Namespace) -> None:
    """Fill --pred, --labels and --train-labels from ``--run`` (what was not given explicitly)."""
    from cxrlt_core.errors import InputError
    from cxrlt_core.predictions import read_predictions
    from cxrlt_core.runs_compare import best_predictions, find_labels, load_run, train_csv_of

    run = load_run(args.workspace_obj, args.run)
    pred = best_predictions(run)
    if pred is None:
        raise InputError(f"run {args.run!r} has no test predictions of its best checkpoint; give --pred")
    args.pred = str(pred)
    if not args.labels:
        ids = (read_predictions(pred).metadata.get("images") or {}).get("manifest", "")
        found = find_labels(args.ids or ids)
        args.labels = str(found) if found else None
    if not args.train_labels:
        train = train_csv_of(run, args.workspace_obj.root)
        args.train_labels = str(train) if train else None


def run_make(args: argparse.Namespace) -> int:
    from cxrlt_core.capsule.make import make_capsule
    from cxrlt_core.capsule.scoring import ScorerSpec
    from cxrlt_core.errors import InputError
    from cxrlt_core.workspace import Workspace

    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if args.run:
        args.workspace_obj = Workspace.open(args.workspace, create=False)
        _from_run(args)
    if not args.pred:
        raise InputError("give --pred PRED (or --run RUN)")
    spec = ScorerSpec(threshold=args.threshold, skipped_as_zero=args.skipped_as_zero, bootstrap=args.bootstrap,
                      seed=args.seed, uncertain=args.uncertain, label_space=args.label_space)  # fmt: skip
    bar, update = _bar("hashing images")
    with bar:
        result = make_capsule(args.out, args.pred, labels=args.labels, train_labels=args.train_labels, ids=args.ids,
                              images=args.images, scorer=spec, extra_files=args.file, overwrite=args.force,
                              progress=update)  # fmt: skip
    print(f"wrote {result.path}: {result.n_images} images, {result.n_checkpoints} checkpoints hashed")
    for name, value in result.figures.items():
        if not name.startswith("AP["):
            print(f"  {name} = {'none' if value is None else f'{value:.6f}'}")
    if not result.figures:
        print("  no figures (no labels given): the capsule re-checks hashes and re-runs inference only")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from cxrlt_core.capsule.check import check_capsule

    bar, update = _bar("hashing images")
    with bar:
        report = check_capsule(args.capsule, images=args.images, labels=args.labels,
                               rerun_inference=args.rerun_inference, progress=update)  # fmt: skip
    for item in report.items:
        print(item.line())
    print(report.summary())
    if report.reproduced:
        return 0
    print(f"error: {report.summary()}", file=sys.stderr)
    return 1
