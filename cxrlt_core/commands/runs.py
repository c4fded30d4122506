"""``cxrlt runs list`` / ``cxrlt runs diff A B [C ...]``: the runs of a workspace, and several runs side by side
(what the dashboard's Runs page shows): differing recipe keys, curves per epoch, best-checkpoint test figures."""

from __future__ import annotations

import argparse

CELL_WIDTH = 48  # recipe values wider than this are cut in the terminal table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``runs`` group with ``list`` and ``diff``."""
    parser = subparsers.add_parser("runs", help="list training runs, compare several side by side")
    commands = parser.add_subparsers(dest="runs_command", metavar="RUNS_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    listing = commands.add_parser("list", help="every run: state, epochs, best val mAP (per bucket), MLflow run")
    listing.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    listing.set_defaults(func=run_list)

    diff = commands.add_parser(
        "diff",
        help="compare runs: recipe keys that differ, curves per epoch, best checkpoints' test figures",
        description="Prints the recipe keys whose values differ, val mAP / train loss per epoch and bucket, and "
        "the test figures of each run's best checkpoint (from its predictions/test file).",
    )
    diff.add_argument("runs", nargs="+", metavar="RUN", help="two or more run names")
    diff.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    diff.add_argument("--labels", metavar="LABELS.csv", help="test labels (default: found beside the predicted ids)")
    diff.set_defaults(func=run_diff)


def _table(frame) -> str:  # type: ignore[no-untyped-def]
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 60):
        return frame.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-")


def _workspace(path: str | None):  # type: ignore[no-untyped-def]
    from cxrlt_core.errors import InputError
    from cxrlt_core.workspace import Workspace

    workspace = Workspace.open(path, create=False)
    if not workspace.root.is_dir():
        raise InputError(f"workspace {workspace.root} does not exist")
    return workspace


def run_list(args: argparse.Namespace) -> int:
    from cxrlt_core.runs_compare import load_runs, summary_frame

    workspace = _workspace(args.workspace)
    names = workspace.list_runs()
    if not names:
        print(f"no runs in {workspace.runs_dir}")
        return 0
    print(_table(summary_frame(load_runs(workspace, names)).set_index("run")))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from cxrlt_core.runs_compare import best_test_frame, curves_frame, load_runs, recipe_diff, require_runs

    require_runs(args.runs)
    workspace = _workspace(args.workspace)
    records = load_runs(workspace, args.runs)
    diff = recipe_diff({run.name: run.recipe for run in records})
    print(f"recipe keys that differ ({len(diff)}):")
    short = diff.map(lambda v: v if len(v) <= CELL_WIDTH else v[: CELL_WIDTH - 3] + "...")
    print(_table(short) if len(diff) else "  none: the resolved recipes are the same")
    curves = curves_frame(records)
    if len(curves):
        wide = curves.pivot_table(index=["metric", "epoch"], columns="run", values="value", aggfunc="last")
        print("\nper epoch:")
        print(_table(wide[[r.name for r in records if r.name in wide.columns]]))
    print("\nbest checkpoint on the test split:")
    print(_table(best_test_frame(records, args.labels, workspace.root).set_index("run")))
    return 0
