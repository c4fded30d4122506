"""Hostile input typed into the dashboard: every page shows one error and keeps running; nothing is written."""

from __future__ import annotations

import pytest

from cxrlt_core.paths import REPO_ROOT
from tests.hostile_world import snapshot

pytestmark = pytest.mark.slow
st_testing = pytest.importorskip("streamlit.testing.v1")


@pytest.fixture
def page(tiny_workspace, monkeypatch):
    monkeypatch.setenv("CXRLT_WORKSPACE", str(tiny_workspace.root))
    monkeypatch.chdir(REPO_ROOT)

    def run(script: str):
        app = st_testing.AppTest.from_file(str(REPO_ROOT / "pages" / script), default_timeout=180)
        app.run()
        assert not app.exception, [e.message for e in app.exception]
        return app

    return run


@pytest.mark.parametrize("name", ["../escape", "a b", "x/y", ".hidden", ""])
def test_prompts_save_as_with_an_invalid_name_is_a_message(page, tiny_workspace, name: str):
    app = page("3_Prompts.py")
    before = snapshot(tiny_workspace.root)
    box = next(t for t in app.text_input if t.label == "Save as prompt set")
    box.set_value(name).run()
    assert not app.exception, [e.message for e in app.exception]
    assert any("prompt set name" in str(e.value) for e in app.error), [e.value for e in app.error]
    next(b for b in app.button if b.label == "Save new version").click().run()
    assert not app.exception and not app.success
    assert snapshot(tiny_workspace.root) == before
    assert not (tiny_workspace.root / "escape").exists()


def _page_that_fails() -> None:
    """An AppTest script: a page whose run hits a full disk while writing /x/out.csv."""
    import errno

    from cxrlt_dashboard.common import run_page

    class FullDiskPage:
        def run(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/out.csv")

    run_page(FullDiskPage())


def test_an_os_error_escaping_a_page_is_one_line_not_a_traceback():
    app = st_testing.AppTest.from_function(_page_that_fails, default_timeout=60)
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == ["/x/out.csv: no space left on the device"]
