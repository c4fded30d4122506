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
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from cxrlt_core.labels import LABEL_SPACES

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


#: The function-local imports the core keeps, outside ``cxrlt_core/commands/`` and ``cli.py`` (which stay lazy so
#: that ``cxrlt --help`` imports no torch): (file, function, module imported, why it is not at module level).
LOCAL_IMPORTS = (
    ("config.py", "check_registered", "cxrlt_core.data.sampler", "recipe reading stays torch-free"),
    ("config.py", "check_registered", "cxrlt_core.losses", "recipe reading stays torch-free"),
    ("config.py", "check_registered", "cxrlt_core.models.heads", "recipe reading stays torch-free"),
    ("jobs.py", "head_names", "cxrlt_core.models.heads", "the job queue (Train page) stays torch-free"),
    ("jobs.py", "loss_names", "cxrlt_core.losses", "the job queue (Train page) stays torch-free"),
    ("jobs.py", "check_recipe", "timm", "the job queue (Train page) stays torch-free"),
    ("data/augment.py", "_import_albumentations", "albumentations", "NO_ALBUMENTATIONS_UPDATE set first; needs torch"),
    ("data/splits.py", "patient_shuffle_split", "sklearn.model_selection", "1 s of sklearn for one split kind"),
    ("inference/calibration.py", "fit", "sklearn.isotonic", "1 s of sklearn for one calibrator"),
    ("shift.py", "_fit_gaussian", "sklearn.covariance", "1 s of sklearn, only when fitting"),
    ("demo_workspace.py", "_step_train", "cxrlt_core.training", "the Overview page stays torch-free"),
    ("demo_workspace.py", "_parallel_cores", "torch", "the Overview page stays torch-free"),
    ("demo_workspace.py", "_step_predictions", "cxrlt_core.inference.predict", "the Overview page stays torch-free"),
    ("demo_workspace.py", "_step_clip", "cxrlt_core.zeroshot.demo_clip", "the Overview page stays torch-free"),
    ("demo_workspace.py", "_step_embeddings", "cxrlt_core.zeroshot.loading", "the Overview page stays torch-free"),
    ("demo_workspace.py", "_step_embeddings", "cxrlt_core.zeroshot.predict", "the Overview page stays torch-free"),
    ("tracking/__init__.py", "open_tracker", "cxrlt_core.tracking.tensorboard_tracker", "the chosen backend only"),
    ("tracking/__init__.py", "open_tracker", "cxrlt_core.tracking.mlflow_tracker", "the chosen backend only"),
    ("training/entry.py", "_submit_slurm", "submitit", "optional package, --slurm only"),
    ("zeroshot/demo_clip.py", "minilm_dir", "transformers", "optional package, probed"),
    ("explain.py", "grad_cam", "pytorch_grad_cam", "only Grad-CAM maps need it"),
    ("explain.py", "grad_cam", "pytorch_grad_cam.utils.model_targets", "only Grad-CAM maps need it"),
)


def local_imports(source: str) -> list[tuple[str, str]]:
    """(outermost function, module) of every import inside a function of ``source``."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, function or child.name)
            elif function and isinstance(child, ast.Import):
                found.extend((function, alias.name) for alias in child.names)
            elif function and isinstance(child, ast.ImportFrom):
                found.append((function, "." * child.level + (child.module or "")))
            else:
                visit(child, function)

    visit(ast.parse(source), None)
    return found


def test_core_imports_at_module_level():
    """Imports sit at the top of their module, where they show the module's real dependencies; the exceptions are
    listed above. ``commands/`` and ``cli.py`` are exempt: they stay lazy so that ``cxrlt --help`` imports no torch."""
    found = {
        (path.relative_to(CORE).as_posix(), function, module)
        for path in sorted(CORE.rglob("*.py"))
        if path.relative_to(CORE).parts[0] != "commands" and path.relative_to(CORE).as_posix() != "cli.py"
        for function, module in local_imports(path.read_text(encoding="utf-8"))
    }
    allowed = {(file, function, module) for file, function, module, _ in LOCAL_IMPORTS}
    assert sorted(found - allowed) == [], "move these imports to the top of their module (or list them with a reason)"
    assert sorted(allowed - found) == [], "these listed imports are gone: remove them from LOCAL_IMPORTS"


def test_local_imports_are_found_inside_functions_only():
    source = (
        "import os\n"
        "def f():\n    import torch\n    from . import x\n    def g():\n        from a.b import c\n"
        "class A:\n    def m(self):\n        if True:\n            import cv2\n"
    )
    assert local_imports(source) == [("f", "torch"), ("f", "."), ("f", "a.b"), ("m", "cv2")]


def test_label_space_names_are_spelled_only_in_labels_py():
    """Product code takes a label space from the data (manifests, sidecars, prompt sets) or from ``labels.py``'s
    constants, never from a literal name: a literal would tie a page or a command to one challenge's classes."""
    names = "|".join(re.escape(name) for name in [*LABEL_SPACES.names(), "padchest"])
    literal = re.compile(rf"""["']({names})["']""")
    root = CORE.parent
    product = [*CORE.rglob("*.py"), *(root / "cxrlt_dashboard").rglob("*.py"), *(root / "pages").glob("*.py")]
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in sorted([*product, root / "app.py"])
        if path != CORE / "labels.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert "cxrlt2026" in LABEL_SPACES.names() and "nih14" in LABEL_SPACES.names()
    assert offenders == [], "import the name from cxrlt_core.labels (or read it from the data)"
