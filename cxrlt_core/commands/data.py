"""``cxrlt data ...``: check data sets, build and draw the synthetic demo data set."""

from __future__ import annotations

import argparse
import importlib

DATA_COMMAND_MODULES = (
    "cxrlt_core.commands.data_check",
    "cxrlt_core.commands.data_demo",
    "cxrlt_core.commands.data_split",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` group; each module in ``DATA_COMMAND_MODULES`` adds its own sub-commands."""
    parser = subparsers.add_parser("data", help="check data sets; make the demo data set")
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    for module_name in DATA_COMMAND_MODULES:
        importlib.import_module(module_name).register(data_subparsers)
