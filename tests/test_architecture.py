"""Which parts of cxrlt may import which, read from the source (every import, module level or inside a function).

Rules (docs/design.md "Layout"):
- ``cxrlt_core`` never imports Streamlit or the dashboard package (``cxrlt_dashboard``);
- ``cxrlt_core.data`` never imports ``cxrlt_core.models``;
- ``cxrlt_core.models`` never imports ``cxrlt_core.training``;
- imports inside ``cxrlt_core`` form no cycle, counting those inside functions (kept there only where import time
  matters, e.g. torch for ``cxrlt --help``): a lazy import hides an edge from Python, not from this test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "cxrlt_core"

#: (importer prefix, forbidden import prefix, why)
RULES = (
    ("cxrlt_core", "streamlit", "the core never imports the UI"),
    ("cxrlt_core", "cxrlt_dashboard", "the core never imports the UI"),
    ("cxrlt_core.data", "cxrlt_core.models", "data knows nothing of models"),
    ("cxrlt_core.models", "cxrlt_core.training", "models know nothing of training"),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path = CORE.parent) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False, top_level_only: bool = False) -> set[str]:
    """Absolute names imported by ``source`` (relative imports resolved against ``module``)."""
    tree = ast.parse(source)
    nodes: Iterable[ast.AST] = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def violations(graph: Mapping[str, set[str]], rules: Iterable[tuple[str, str, str]] = RULES) -> list[str]:
    """``importer -> imported (why)`` for every import that a rule forbids."""
    return sorted(
        f"{importer} -> {name} ({why})"
        for importer, names in graph.items()
        for name in names
        for owner, forbidden, why in rules
        if _within(importer, owner) and _within(name, forbidden)
    )


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Import cycles among the modules of ``graph`` (edges to modules outside it are ignored)."""
    edges = {m: sorted(n for n in names if n in graph and n != m) for m, names in graph.items()}
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def core_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(CORE.rglob("*.py")):
        name = module_name(path)
        graph[name] = imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", top_level_only)
    return graph


def _package_edges(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """``from cxrlt_core.models import checkpoint`` names a module; keep names that are modules or packages."""
    known = set(graph)
    return {m: {n for n in names if n in known} | {n for n in names if not n.startswith("cxrlt_core")}
            for m, names in graph.items()}  # fmt: skip


def test_core_keeps_the_layering_rules():
    graph = core_graph()
    assert len(graph) > 50 and "cxrlt_core.models.checkpoint" in graph
    assert not violations(graph)


def test_core_has_no_import_cycles():
    graph = _package_edges(core_graph())
    # a package's __init__ importing its own submodules is how packages re-export; it is not a cycle
    for package in [m for m in graph if (CORE.parent / m.replace(".", "/") / "__init__.py").is_file()]:
        graph[package] = {n for n in graph[package] if not _within(n, package)}
    assert not cycles(graph)


def test_the_rules_catch_synthetic_offenders():
    fake = {
        "cxrlt_core.explain": imports_of("import streamlit as st\n", "cxrlt_core.explain"),
        "cxrlt_core.export": imports_of("def f():\n    from cxrlt_dashboard.common import x\n", "cxrlt_core.export"),
        "cxrlt_core.data.sampler": imports_of("from ..models import heads\n", "cxrlt_core.data.sampler"),
        "cxrlt_core.models.heads": imports_of(
            "from cxrlt_core.training.loop import Trainer\n", "cxrlt_core.models.heads"
        ),
        "cxrlt_core.data.manifest": imports_of(
            "from cxrlt_core.labels import LabelSpace\n", "cxrlt_core.data.manifest"
        ),
        "cxrlt_dashboard.common": {"streamlit", "cxrlt_core.models"},
    }
    assert violations(fake) == [
        "cxrlt_core.data.sampler -> cxrlt_core.models (data knows nothing of models)",
        "cxrlt_core.data.sampler -> cxrlt_core.models.heads (data knows nothing of models)",
        "cxrlt_core.explain -> streamlit (the core never imports the UI)",
        "cxrlt_core.export -> cxrlt_dashboard.common (the core never imports the UI)",
        "cxrlt_core.export -> cxrlt_dashboard.common.x (the core never imports the UI)",
        "cxrlt_core.models.heads -> cxrlt_core.training.loop (models know nothing of training)",
        "cxrlt_core.models.heads -> cxrlt_core.training.loop.Trainer (models know nothing of training)",
    ]


def test_cycles_are_found_in_a_synthetic_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "numpy"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


#: the longest a function of the core may be, in lines (``def`` to its last line, docstring included)
MAX_FUNCTION_LINES = 80


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source`` longer than ``limit`` lines."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_core_function_is_longer_than_the_limit():
    offenders = [
        f"{path.relative_to(CORE.parent)}: {name} ({lines} lines)"
        for path in sorted(CORE.rglob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], f"split these into helpers with one job each (limit {MAX_FUNCTION_LINES} lines)"


def test_long_functions_counts_def_to_last_line():
    body = "".join(f"    x{i} = {i}\n" for i in range(4))
    source = f"def short():\n{body}\nclass A:\n    def method(self):\n{body.replace('    ', '        ')}"
    assert long_functions(source, limit=5) == []
    assert long_functions(source, limit=4) == [("short", 5), ("method", 5)]
