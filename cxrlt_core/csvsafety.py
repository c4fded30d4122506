"""CSV hazards: ids a spreadsheet would run as formulas, and files that use another delimiter than the comma.

Formula injection (OWASP "CSV Injection"): a cell beginning with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return) is evaluated by Excel, LibreOffice and Google Sheets when the file is opened. cxrlt never rewrites an id
(the challenge's scorer matches ids exactly), so an export holding such ids gets a warning naming the file, the
count and the first rows.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from cxrlt_core.atomic import target_of

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
OTHER_DELIMITERS = (";", "\t", "|")


class FormulaIdWarning(UserWarning):
    """An exported CSV holds ids that a spreadsheet would evaluate as formulas."""


def formula_like(ids: Sequence[object]) -> list[tuple[int, str]]:
    """``(0-based position, id)`` of every id beginning with a formula character."""
    return [(i, str(value)) for i, value in enumerate(ids) if str(value).startswith(FORMULA_PREFIXES)]


def warn_formula_ids(path: str | os.PathLike[str], ids: Sequence[object], offset: int = 0) -> int:
    """Warn (never rewrite) when ``ids`` written to ``path`` hold formula-like values; returns how many.

    ``offset``: data rows already in the file (for a file written in chunks); a temporary of
    :func:`cxrlt_core.atomic.atomic_path` is named as the file it will become.
    """
    found = formula_like(ids)
    if found:
        path = target_of(path)
        shown = ", ".join(f"row {offset + i + 2} {value!r}" for i, value in found[:3])
        warnings.warn(
            FormulaIdWarning(
                f"{os.fspath(path)}: {len(found)} id(s) begin with =, +, - or @ ({shown}); a spreadsheet may run them "
                "as formulas. They are written unchanged: open the file as text, or import the id column as text"
            ),
            stacklevel=2,
        )
    return len(found)


def delimiter_problem(header_line: str) -> str | None:
    """What is wrong when a CSV's first line is split by another delimiter than the comma, else ``None``.

    ``"the header 'ImageID;Atelectasis;...' has no comma but 12 ';': the file is ';'-separated..."``.
    """
    if "," in header_line:
        return None
    counts = {d: header_line.count(d) for d in OTHER_DELIMITERS}
    delimiter, count = max(counts.items(), key=lambda item: item[1])
    if count == 0:
        return None
    name = {"\t": "tab", ";": "semicolon ';'", "|": "pipe '|'"}[delimiter]
    head = header_line if len(header_line) <= 60 else header_line[:57] + "..."
    return (
        f"the header {head!r} has no comma but {count} {name} characters: the file is {name}-separated; "
        "cxrlt reads comma-separated files (re-save it as CSV with commas, e.g. "
        f"pandas.read_csv(path, sep={delimiter!r}).to_csv(path, index=False))"
    )
