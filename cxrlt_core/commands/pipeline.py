"""``cxrlt pipeline run FILE`` / ``cxrlt pipeline show FILE``: chained training runs (Stage 1 -> Stage 2)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pipeline`` with ``run``, ``show`` and ``list``."""
    parser = subparsers.add_parser(
        "pipeline",
        help="run chained training stages (Stage 1 -> Stage 2), resumable per stage",
        description="Run a pipeline file (train_jobs/pipelines/*.yaml, or your own): its stages train one after "
        "another in the workspace; finished stages are skipped and a stopped stage resumes.",
    )
    sub = parser.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="train the stages that have not finished")
    run.add_argument("pipeline", help="a pipeline file, or a shipped pipeline's name (e.g. demo_two_stage)")
    run.add_argument("--workspace", help="workspace folder (default $CXRLT_WORKSPACE or ./workspace/demo)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)
    show = sub.add_parser("show", help="the stages, their recipes and runs, and how far each got")
    show.add_argument("pipeline", help="a pipeline file or a shipped pipeline's name")
    show.add_argument("--workspace", help="workspace folder")
    show.set_defaults(func=_show)
    listing = sub.add_parser("list", help="the shipped pipelines")
    listing.set_defaults(func=_list)


def _run(args: argparse.Namespace) -> int:
    from cxrlt_core.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(args.pipeline)
    done = run_pipeline(pipeline, args.workspace, show_progress=not args.no_progress)
    print(f"pipeline {pipeline.name}: {len(done)} of {len(pipeline.stages)} stages finished")
    return 0


def _show(args: argparse.Namespace) -> int:
    from cxrlt_core.pipeline import load_pipeline, stage_states

    pipeline = load_pipeline(args.pipeline)
    print(f"{pipeline.name}: {pipeline.description}")
    for stage, state in stage_states(pipeline, args.workspace):
        start = f" from {stage.pretrained} ({stage.transfer or 'auto'})" if stage.pretrained else ""
        print(f"  {stage.name}: {stage.recipe}{start} -> run {pipeline.run_name(stage)} [{state}]")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cxrlt_core.pipeline import pipeline_names

    for name in pipeline_names():
        print(name)
    return 0
