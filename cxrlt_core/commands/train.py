"""``cxrlt train``: train a recipe here, on N local processes (torchrun), or on SLURM (submitit)."""

from __future__ import annotations

import argparse

from cxrlt_core.training.arguments import add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cxrlt train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a Task 1 recipe (a shipped one by name, or a YAML file)",
        description="Train a recipe: cxrlt train --config demo_csra [key=value ...] (shipped recipes: the files of "
        "train_jobs/, installed with the package; or a path to your own YAML)",
    )
    add_arguments(parser)
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from cxrlt_core.training.entry import run_from_args

    return run_from_args(args)
