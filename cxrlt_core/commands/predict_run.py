"""``cxrlt predict-run RUN``: write a run's val / test predictions into its folder (what Results and Export list)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cxrlt predict-run``."""
    parser = subparsers.add_parser(
        "predict-run",
        help="write a trained run's val / test predictions into runs/<run>/predictions/",
        description="Predict the run's validation split and the data set's test.csv with its best checkpoint "
        "(no gating), as cxrlt train does when a run finishes.",
    )
    parser.add_argument("run", help="run name (a folder of <workspace>/runs)")
    parser.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    parser.add_argument("--tta", default="none", help="TTA set (default none)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from cxrlt_core.inference.tta import TTA_SETS
    from cxrlt_core.run_predictions import write_run_predictions
    from cxrlt_core.runs import run_dir_of
    from cxrlt_core.workspace import Workspace

    TTA_SETS.get(args.tta)  # an unknown name is one error line listing the choices
    workspace = Workspace.open(args.workspace, create=False)
    run_dir = run_dir_of(workspace, args.run)
    written = write_run_predictions(run_dir, workspace.root, tta=args.tta, device=args.device,
                                    show_progress=not args.no_progress)  # fmt: skip
    for split, path in written.items():
        print(f"{split} predictions: {path}")
    return 0
