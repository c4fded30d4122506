"""The dashboard journeys in a real browser, measured: blank pages, Overview height, slider / edit → new figures.

Starts ``streamlit run app.py`` headless on a free port with the given workspace (a built demo workspace; it is
copied first, since the prompt edits are not saved but a run is never launched either), opens Chromium (Playwright)
at 1440 × 900 and reports:

- blank pages in two rounds of sidebar clicks over every page, and whether the workspace field held;
- the Overview's scroll height in pixels and in screens of 900 px (also at 1024 × 768);
- Gating: seconds from an α slider key press to new figures on screen (median of ``--repeats``);
- Prompts: seconds from a prompt edit (Enter in the table) to the re-scored figures on screen.

    .venv/bin/python benchmarks/dashboard_journeys.py --workspace workspace/demo --repeats 5

Needs /usr/bin/chromium (Debian's) and playwright.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cxrlt_dashboard import journeys  # noqa: E402
from cxrlt_dashboard.common import PAGES  # noqa: E402
from cxrlt_dashboard.server import free_port, start_dashboard, wait_until_healthy  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    if not wait_until_healthy(url, timeout_s):
        raise SystemExit("error: streamlit did not start")


def navigation(browser, url: str) -> None:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    journeys.settle(page)
    start = journeys.workspace_field(page).input_value()
    blank, clicks, held = [], 0, True
    for _ in range(2):
        for info in (*PAGES[1:], PAGES[0]):  # start on the Overview: never click the page already shown
            clicks += 1
            if not journeys.click_sidebar_page(page, info.title):
                blank.append(info.title)
            held &= journeys.workspace_field(page).input_value() == start
    print(f"navigation: {len(blank)} blank pages in {clicks} sidebar clicks {blank or ''}; workspace held: {held}")
    page.context.close()


def overview_height(browser, url: str) -> None:
    for width, height in ((1440, 900), (1024, 768)):
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("link", name="Prompts →").wait_for(timeout=120_000)
        journeys.settle(page)
        tall = journeys.page_height(page)
        print(f"overview at {width}x{height}: {tall} px = {tall / height:.2f} screens")
        page.context.close()


def gating_latency(browser, url: str, repeats: int) -> None:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(f"{url}/Gating", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Save this choice").wait_for(timeout=180_000)
    journeys.settle(page)

    def figures() -> str:
        return page.locator('[data-testid="stMetric"]').all_inner_texts().__str__()

    times = []
    for _ in range(repeats):
        before = figures()
        journeys.move_slider(page, "α")
        _, seconds = journeys.wait_for_change(page, figures, before)
        times.append(seconds)
        journeys.settle(page)
    print(f"gating: α key press -> new figures {statistics.median(times):.2f} s median ({repeats} presses, "
          f"max {max(times):.2f} s)")  # fmt: skip
    page.context.close()


def prompt_latency(browser, url: str, repeats: int) -> None:
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(f"{url}/Prompts", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Save and history").wait_for(timeout=180_000)
    journeys.settle(page)
    grid = page.locator('[data-testid="stDataFrame"]').first

    times = []
    for i in range(repeats):
        before = journeys.unsaved_changes(page)
        editor = journeys.type_into_cell(page, grid, i % 3, f"a chest x-ray with a large finding number {i}")
        started = time.perf_counter()
        editor.press("Enter")  # commit the edit: the page reruns and re-scores
        journeys.wait_for_change(page, lambda: journeys.unsaved_changes(page), before)
        while page.locator(journeys.BUSY).count() > 0:  # the figures below the table are drawn when the run ends
            time.sleep(0.02)
        times.append(time.perf_counter() - started)
        journeys.settle(page)
    kept = journeys.unsaved_changes(page).count("+ ")
    print(f"prompts: edit -> re-scored figures {statistics.median(times):.2f} s median ({repeats} edits, "
          f"max {max(times):.2f} s); edits kept: {kept} added prompts listed")  # fmt: skip
    page.context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True, help="a built demo workspace (copied before use)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(shutil.copytree(args.workspace, Path(tmp) / "demo", symlinks=True))
        port = free_port()
        process = start_dashboard(workspace, port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                overview_height(browser, url)
                navigation(browser, url)
                gating_latency(browser, url, args.repeats)
                prompt_latency(browser, url, args.repeats)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
