"""The repository's promises: README's commands are the ones CI runs, and the code is ruff clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlt_core.paths import REPO_ROOT


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", text, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    setup = _readme_commands()[:2]
    assert len(setup) == 2, "README must open with the dashboard command and the test command"
    dashboard, tests = setup
    assert "streamlit run app.py" in dashboard
    assert "pytest" in tests
    ci_script = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.strip() in ci_script, ".ci/run must run README's test command verbatim"


def test_requirements_pin_every_dependency():
    lines = [
        line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all("==" in line for line in lines), [line for line in lines if "==" not in line]
    assert "torch==2.14.1" in lines and "torchvision==0.29.1" in lines


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed in this environment")
    result = subprocess.run([ruff, "check", "."], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_core_has_no_streamlit_imports():
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "cxrlt_core").rglob("*.py")
        if re.search(r"^\s*(import streamlit|from streamlit)", path.read_text(encoding="utf-8"), flags=re.M)
    ]
    assert not offenders, f"cxrlt_core must not import streamlit: {offenders}"


def test_every_docs_reference_resolves():
    """A docstring or recipe that points to ``docs/<page>.md "<section>"`` names a page and heading that exist."""
    pattern = re.compile(r'docs/(\w+)\.md(?:,? "([^"]+)")?')
    sources = [*(REPO_ROOT / "cxrlt_core").rglob("*.py"), *(REPO_ROOT / "train_jobs").glob("*.yaml")]
    broken = []
    found = 0
    for source in sources:
        for page, section in pattern.findall(source.read_text(encoding="utf-8")):
            found += 1
            doc = REPO_ROOT / "docs" / f"{page}.md"
            if not doc.is_file():
                broken.append(f"{source.name}: docs/{page}.md")
            elif section and f"## {section}\n" not in doc.read_text(encoding="utf-8"):
                broken.append(f'{source.name}: docs/{page}.md "{section}"')
    assert found > 10 and not broken, broken
    leftovers = [p.name for p in sources if re.search(r"\b(METHOD|DESIGN)\.md|\.\./shared", p.read_text("utf-8"))]
    assert not leftovers, leftovers
