"""``cxrlt demo``: build the embedded demo workspace (data, two Task 1 runs with predictions, a demo CLIP)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="build the demo workspace (synthetic data, trained models, predictions, demo CLIP)",
        description="Build the demo workspace step by step; finished steps are skipped, interrupted ones resume.",
    )
    parser.add_argument("--workspace", help="folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    parser.add_argument("--profile", default="default", help="default, or tiny (seconds; for tests)")
    parser.add_argument("--force", action="store_true", help="rebuild every step")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cxrlt_core.demo_workspace import STEPS, build_demo_workspace

    bar = tqdm(total=1000, desc="demo workspace", unit="‰", bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def on_progress(step: str, fraction: float, message: str) -> None:
        bar.n = int(round(1000 * fraction))
        bar.set_postfix_str(message[:60], refresh=True)

    try:
        workspace = build_demo_workspace(args.workspace, profile=args.profile, progress=on_progress, force=args.force)
    finally:
        bar.close()
    print(f"demo workspace ready at {workspace.root} ({len(STEPS)} steps)")
    print(f"open it: CXRLT_WORKSPACE={workspace.root} streamlit run app.py")
    return 0
