"""Errors that carry one readable line for the user (file, row, column), never a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class CxrltError(Exception):
    """Base class of every error cxrlt raises on bad input or a bad state.

    The message is one line meant for a person; the CLI prints it as ``error: <message>``.
    """


class InputError(CxrltError, ValueError):
    """Bad user input: a file, a row, a column or a value that cannot be used."""


class ValidationError(InputError):
    """Several problems found at once (e.g. by ``cxrlt data check``); ``problems`` holds one line each."""

    def __init__(self, summary: str, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{summary}: {shown}{more}" if self.problems else summary)
