"""Drive the dashboard in a real browser (Playwright + Chromium): the steps of the user journeys.

Shared by ``tests/test_browser.py`` (what must hold) and ``benchmarks/dashboard_journeys.py`` (how fast, how tall).
Every function takes a Playwright ``page`` already on the dashboard; nothing here starts a server or a browser.
"""

from __future__ import annotations

import time
from typing import Any

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
    """Click the sidebar entry ``title``; returns the page's h1 once drawn ('' when the page stays blank)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    try:
        page.locator("h1").first.wait_for(timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - a blank page is reported by the empty title
        return ""
    settle(page, timeout_s)
    return page.locator("h1").first.inner_text()


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


def type_into_cell(page: Any, grid: Any, row: int, text: str, column_x: int = 60) -> None:
    """Open row ``row`` of a ``st.data_editor`` grid for editing and type ``text`` over it (not yet committed).

    The grid is drawn on a canvas: cells are found by position (35 px rows under a 35 px header). Short pauses let
    the grid take the selection and open its editor, as a person's clicks would.
    """
    box = grid.bounding_box()
    page.mouse.click(box["x"] + column_x, box["y"] + 35 + 35 * row + 17)
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")  # open the cell editor on the current text
    page.wait_for_timeout(300)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(text)
    page.wait_for_timeout(200)


def edit_grid_cell(page: Any, grid: Any, row: int, text: str) -> None:
    """Replace the text of row ``row`` of a ``st.data_editor`` grid and commit it (Enter)."""
    type_into_cell(page, grid, row, text)
    page.keyboard.press("Enter")


def unsaved_changes(page: Any) -> str:
    """The text of the Prompts page's 'Unsaved changes' list."""
    expander = page.locator('[data-testid="stExpander"]').filter(has_text="Unsaved changes").first
    return expander.inner_text()
