"""The dashboard in a real browser: `streamlit run app.py` on a free port, every page driven by Playwright + Chromium.

Needs Debian's chromium (``.ci/run`` installs it); skipped with a reason when it or playwright is absent.
Screenshots of every page go to ``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from cxrlt_core import jobs
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.runs import read_status
from cxrlt_core.workspace import Workspace
from cxrlt_dashboard import journeys
from cxrlt_dashboard.common import PAGES as DASHBOARD_PAGES
from cxrlt_dashboard.server import serving

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ("", "Train", "Results", "Prompts", "Gating", "Inspect", "Export", "Runs")
# What each page shows last, once its data are loaded and drawn (the sidebar must name the overview, too).
EXPECTED_LAST = {"": ("link", "Prompts →"), "Train": ("heading", "Train"),
                 "Results": ("heading", "Curves for one class"), "Prompts": ("heading", "Save and history"),
                 "Gating": ("heading", "Save this choice"),
                 "Inspect": ("heading", "Unseen findings (zero-shot scores)"),
                 "Export": ("tab", "Task 2 — 6 unseen findings"),
                 "Runs": ("heading", "Best checkpoint on the test split")}  # fmt: skip
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_workspace):
    """A copy of the tiny workspace: the journeys add runs and edits that other tests must not see."""
    return Workspace(Path(shutil.copytree(tiny_workspace.root, tmp_path_factory.mktemp("browser_ws") / "demo")))


@pytest.fixture(scope="module")
def server(tmp_path_factory, workspace):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    with serving(workspace.root, tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


def _settle(page, timeout_s: float = 120) -> None:
    """Wait until the script run has finished (the 'Running…' status widget is gone)."""
    page.wait_for_selector('[data-testid="stMain"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"], [data-testid="stSpinner"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:
            return
        time.sleep(0.25)
    raise AssertionError("the page kept running")


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_without_errors(browser, server, name):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/{name}", wait_until="domcontentloaded")
    # The page's last part appears once its data are loaded and drawn (fails the test after 2 minutes).
    role, label = EXPECTED_LAST[name]
    page.get_by_role(role, name=label).first.wait_for(timeout=120_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()
    assert page.locator("h1").count() >= 1
    assert page.get_by_text("Overview", exact=True).count() >= 1  # the sidebar's first entry (app.py's pages)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name or 'Overview'} scrolls horizontally by {overflow}px at 1280x800"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page_{name or 'Overview'}.png"), full_page=True)
    page.close()


@pytest.fixture
def session(browser):
    """One browser session (its own cookies and Streamlit session) per journey, at 1440 x 900."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def test_the_workspace_holds_across_every_page_twice(server, session, workspace):
    page = session
    page.goto(server, wait_until="domcontentloaded")
    journeys.settle(page)
    typed = str(workspace.root) + "/"  # the same folder, spelt as only a person would type it
    field = journeys.workspace_field(page)
    field.fill(typed)
    field.press("Enter")
    journeys.settle(page)
    blank = []
    for _ in range(2):
        for info in (*DASHBOARD_PAGES[1:], DASHBOARD_PAGES[0]):  # never the page already shown
            if not journeys.click_sidebar_page(page, info.title):
                blank.append(info.title)
            assert journeys.workspace_field(page).input_value() == typed, info.title
            assert page.get_by_text("Enter a workspace folder").count() == 0, info.title
    assert blank == [], f"blank pages after a sidebar click: {blank}"


def test_a_typed_run_name_is_used(server, session, workspace):
    page = session
    page.goto(f"{server}/Train", wait_until="domcontentloaded")
    page.get_by_role("button", name="Launch").wait_for(timeout=120_000)
    journeys.settle(page)
    page.locator('input[aria-label="Run name"]').fill("browser_named_run")
    overrides = "optim.max_steps_per_epoch=1 optim.phase2.epochs=1 data.image_size=64 optim.num_workers=0"
    page.locator('input[aria-label="More overrides (key=value, space separated)"]').fill(overrides)
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("Launched browser_named_run").wait_for(timeout=120_000)
    assert (workspace.runs_dir / "browser_named_run").is_dir()
    page.get_by_text("browser_named_run —").first.wait_for(timeout=60_000)  # the panel follows the new run
    run_dir = workspace.run("browser_named_run")
    deadline = time.monotonic() + 300
    while jobs.process_alive(read_status(run_dir) or {}) or (read_status(run_dir) or {}).get("state") == "queued":
        assert time.monotonic() < deadline, "the launched run did not finish"
        time.sleep(1)
    assert read_status(run_dir)["state"] == "finished"
    page.get_by_text("browser_named_run — finished").first.wait_for(timeout=60_000)  # without a reload


def test_three_prompt_edits_all_stick(server, session):
    page = session
    page.goto(f"{server}/Prompts", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Save and history").wait_for(timeout=180_000)
    journeys.settle(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    texts = ["first browser edit", "second browser edit", "third browser edit"]
    for row, text in enumerate(texts):
        journeys.edit_grid_cell(page, grid, row, text)
        journeys.settle(page)
    changes = journeys.unsaved_changes(page)
    assert all(f"'{text}'" in changes for text in texts), changes
