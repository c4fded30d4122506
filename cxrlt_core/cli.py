"""The ``cxrlt`` command: every dashboard action, for terminals and clusters.

Each command group lives in ``cxrlt_core/commands/<group>.py`` and exposes ``register(subparsers)``;
heavy libraries (torch, open_clip) are imported inside the commands so ``cxrlt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from cxrlt_core import __version__
from cxrlt_core.errors import CxrltError

COMMAND_MODULES = (
    "cxrlt_core.commands.capsule",
    "cxrlt_core.commands.data",
    "cxrlt_core.commands.demo",
    "cxrlt_core.commands.evaluate",
    "cxrlt_core.commands.compare",
    "cxrlt_core.commands.audit",
    "cxrlt_core.commands.submission",
    "cxrlt_core.commands.pipeline",
    "cxrlt_core.commands.predict",
    "cxrlt_core.commands.predict_run",
    "cxrlt_core.commands.recipes",
    "cxrlt_core.commands.runs",
    "cxrlt_core.commands.shift",
    "cxrlt_core.commands.train",
    "cxrlt_core.commands.zeroshot",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-command per registered command module."""
    parser = argparse.ArgumentParser(prog="cxrlt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cxrlt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _warning_line(message: object, category: object, filename: str, lineno: int, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line on stderr (no file and line noise)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input ends with one ``error:`` line on stderr and exit status 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from cxrlt_core.lifeline import bind_from_env

    bind_from_env()  # started by a cxrlt parent (dashboard, demo build): end with it
    warnings.showwarning = _warning_line
    try:
        return int(args.func(args) or 0)
    except CxrltError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, a read-only folder, an output naming a folder: one line, no traceback
        from cxrlt_core.oserrors import describe_os_error

        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
