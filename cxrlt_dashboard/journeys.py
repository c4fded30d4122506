"""Drive the dashboard in a real browser (Playwright + Chromium): the steps of the user journeys.

Shared by ``tests/test_browser.py`` (what must hold) and ``benchmarks/dashboard_journeys.py`` (how fast, how tall).
Every function takes a Playwright ``page`` already on the dashboard; nothing here starts a server or a browser.
"""

from __future__ import annotations

import time
from typing import Any

TITLE_JS = "() => { const h = document.querySelector('h1'); return h ? h.innerText : ''; }"
BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'


def settle(page: Any, timeout_s: float = 120.0, quiet_s: float = 1.0) -> None:
    """Wait until the script run has finished: no 'Running…' status widget or spinner for ``quiet_s`` seconds."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator(BUSY).count() > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > quiet_s:
            return
        time.sleep(0.1)
    raise AssertionError("the page kept running")


def workspace_field(page: Any) -> Any:
    """The sidebar's workspace text field."""
    return page.locator('[data-testid="stSidebar"] input[aria-label="Workspace folder"]')


def click_sidebar_page(page: Any, title: str, timeout_s: float = 120.0) -> str:
    """Click the sidebar entry ``title``; returns the new page's h1 once its run has ended ('' for a blank page).

    Every page has its own title, so the new page is drawn when the h1 differs from the one before the click.
    """
    before = page.evaluate(TITLE_JS)
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    try:
        page.wait_for_function(
            "before => { const h = document.querySelector('h1'); return h && h.innerText !== before; }",
            arg=before,
            timeout=timeout_s * 1000,
        )
    except Exception:  # noqa: BLE001 - no new title within the time: a blank page
        return ""
    settle(page, timeout_s)
    return page.evaluate(TITLE_JS)


def page_height(page: Any) -> int:
    """Scroll height of the main area (Streamlit scrolls its main section, not the document)."""
    return int(
        page.evaluate(
            "Math.max(document.documentElement.scrollHeight,"
            ' ...Array.from(document.querySelectorAll(\'[data-testid="stMain"], section.main,'
            ' [data-testid="stAppScrollToBottomContainer"]\')).map(e => e.scrollHeight))'
        )
    )


def metric_value(page: Any, label: str) -> str:
    """The shown value of the ``st.metric`` called ``label``."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


def wait_for_change(page: Any, read: Any, before: str, timeout_s: float = 30.0) -> tuple[str, float]:
    """Poll ``read()`` until it differs from ``before``; returns the new value and the seconds it took."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        value = read()
        if value != before:
            return value, time.perf_counter() - started
        time.sleep(0.02)
    raise AssertionError(f"nothing changed within {timeout_s} s (still {before!r})")


def move_slider(page: Any, label: str, steps: int = 1) -> None:
    """Focus the slider called ``label`` and press the right arrow ``steps`` times (one step each)."""
    slider = page.locator('[data-testid="stSlider"]').filter(has_text=label).first.get_by_role("slider")
    slider.focus()
    for _ in range(steps):
        slider.press("ArrowRight")


def type_into_cell(page: Any, grid: Any, row: int, text: str, column_x: int = 60) -> Any:
    """Open row ``row`` of a ``st.data_editor`` grid in its cell editor and type ``text`` over it (not committed).

    The grid is drawn on a canvas: the cell is found by position (35 px rows under a 35 px header) and opened with
    a double click; its editor is a real text area. Returns that text area (press Enter in it to commit).
    """
    box = grid.bounding_box()
    page.mouse.dblclick(box["x"] + column_x, box["y"] + 35 + 35 * row + 17)
    editor = page.locator("textarea.gdg-input")
    editor.wait_for(timeout=30_000)
    editor.fill(text)
    return editor


def edit_grid_cell(page: Any, grid: Any, row: int, text: str) -> None:
    """Replace the text of row ``row`` of a ``st.data_editor`` grid and commit it (Enter)."""
    type_into_cell(page, grid, row, text).press("Enter")


def unsaved_changes(page: Any) -> str:
    """The text of the Prompts page's 'Unsaved changes' list."""
    expander = page.locator('[data-testid="stExpander"]').filter(has_text="Unsaved changes").first
    return expander.inner_text()
