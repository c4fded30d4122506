"""``cxrlt submission ...``: validate a challenge submission CSV, or write one from a predictions file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cxrlt_core.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``submission`` group with ``validate`` and ``write``."""
    parser = subparsers.add_parser("submission", help="validate or write challenge submission CSVs")
    commands = parser.add_subparsers(dest="submission_command", metavar="SUBMISSION_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    validate = commands.add_parser(
        "validate",
        help="check a submission: columns, order, one row per test id, probabilities in [0, 1]",
        description="Exit 0 when the file is valid, else exit 1 with one line per problem.",
    )
    validate.add_argument("submission", metavar="SUB.csv", help="the submission CSV")
    validate.add_argument(
        "--task", type=int, choices=(1, 2), required=True, help="1: in-distribution classes, 2: unseen classes"
    )
    validate.add_argument("--ids", required=True, metavar="TEST.csv", help="CSV with the test ImageIDs")
    validate.add_argument(
        "--label-space", metavar="NAME", help="label space (default: the one the --ids folder's dataset.json names)"
    )
    validate.add_argument(
        "--strict-spelling", action="store_true", help="require the label space's output spelling exactly"
    )
    validate.set_defaults(func=run_validate)

    write = commands.add_parser(
        "write",
        help="write a validated submission from a predictions file",
        description="Select the task's classes and the test rows (a missing row is an error, never zero-filled), "
        "write atomically and validate before the file is renamed into place.",
    )
    write.add_argument("--pred", required=True, metavar="PRED", help="predictions .csv or .parquet")
    write.add_argument(
        "--task", type=int, choices=(1, 2), required=True, help="1: in-distribution classes, 2: unseen classes"
    )
    write.add_argument("--ids", required=True, metavar="TEST.csv", help="CSV with the test ImageIDs")
    write.add_argument("--out", required=True, metavar="SUB.csv", help="submission CSV to write")
    write.add_argument(
        "--label-space", metavar="NAME", help="label space (default: the one the predictions name, from their model)"
    )
    write.add_argument(
        "--output-name",
        action="append",
        default=[],
        metavar="CLASS=SPELLING",
        help="a submission column spelling other than the label space's; repeat",
    )
    write.add_argument("--goiter-spelling", choices=("goiter", "Goiter"), help="same as --output-name Goiter=SPELLING")
    write.set_defaults(func=run_write)


def run_validate(args: argparse.Namespace) -> int:
    """Print the problems (exit 1) or a one-line confirmation (exit 0)."""
    from cxrlt_core.data.manifest import count_problems
    from cxrlt_core.submission import submission_columns, validate_submission

    space = _space(args.label_space, None, args.ids)
    problems = validate_submission(args.submission, args.task, args.ids, space, strict_spelling=args.strict_spelling)
    if problems:
        for line in problems:
            print(line)
        print(f"error: {args.submission}: {count_problems(problems)}", file=sys.stderr)
        return 1
    n_classes = len(submission_columns(space, args.task)) - 1
    print(f"{args.submission}: valid task {args.task} submission ({n_classes} classes, one row per test id)")
    return 0


def run_write(args: argparse.Namespace) -> int:
    """Build the rows from predictions and write the submission."""
    from cxrlt_core.predictions import read_predictions
    from cxrlt_core.submission import submission_from_predictions, write_submission

    pred = read_predictions(args.pred)
    space = _space(args.label_space, pred.metadata.get("label_space"), args.ids)
    spellings = dict(_spelling(text) for text in args.output_name)
    if args.goiter_spelling:
        spellings["Goiter"] = args.goiter_spelling
    for name, spelling in spellings.items():
        if space.resolve(name) is None:
            raise InputError(f"--output-name {name}={spelling}: label space {space.name!r} has no class {name!r}")
    space = space.with_output_names({space.resolve(k): v for k, v in spellings.items()})
    rows = submission_from_predictions(pred, args.ids, space, args.task)
    if rows.n_ignored:
        print(f"note: {rows.n_ignored} prediction rows are not test ids and were left out", file=sys.stderr)
    write_submission(args.out, rows.ids, rows.scores, space, args.task, test_ids=rows.ids)
    print(f"wrote {args.out}: {len(rows.ids)} rows, {len(rows.classes)} classes (task {args.task})")
    return 0


def _space(name: str | None, stored: Any, ids: str) -> Any:
    """The label space: ``--label-space``, else the one the predictions name, else the ids folder's ``dataset.json``."""
    from pathlib import Path

    from cxrlt_core.data.manifest import folder_label_space
    from cxrlt_core.labels import as_label_space

    space = as_label_space(name) or as_label_space(stored) or folder_label_space(Path(ids).parent)
    if space is None:
        raise InputError(f"{ids}: no label space is named here; give --label-space NAME")
    return space


def _spelling(text: str) -> tuple[str, str]:
    name, sep, spelling = text.partition("=")
    if not sep or not name.strip() or not spelling.strip():
        raise InputError(f"--output-name must be CLASS=SPELLING, got {text!r}")
    return name.strip(), spelling.strip()
