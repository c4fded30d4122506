"""The Inspect page in a real browser, one session: upload a real radiograph, see the model card and the input-shift
warning, switch findings after the upload and see both maps follow.

Needs Debian's chromium, playwright and the real data beside the clone (``shared_data``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cxrlt_core.models.contract import InputContract
from cxrlt_core.workspace import Workspace
from cxrlt_dashboard import journeys
from cxrlt_dashboard.server import serving

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_workspace):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    root = Workspace(Path(shutil.copytree(tiny_workspace.root, tmp_path_factory.mktemp("inspect_ws") / "demo"))).root
    with serving(root, tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


def _captions(page) -> str:
    """Captions of the page: ``st.caption`` elements and the captions under ``st.image``."""
    selector = '[data-testid="stCaptionContainer"], [data-testid="stImageCaption"]'
    return "\n".join(page.locator(selector).all_inner_texts())


def test_upload_shows_card_and_shift_warning_and_maps_follow_the_finding(server, shared_data, tiny_workspace):
    from playwright.sync_api import sync_playwright

    radiograph = sorted((shared_data / "fullres-cxr-samples" / "images").glob("*.jpg"))[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(f"{server}/Inspect", wait_until="domcontentloaded")
        page.get_by_role("heading", name="Unseen findings (zero-shot scores)").wait_for(timeout=180_000)
        journeys.settle(page)
        card = page.get_by_text("Model card").first
        assert card.is_visible()
        assert page.get_by_text("Intended use").first.is_visible() and page.get_by_text("M parameters").count() >= 1

        page.get_by_text("upload", exact=True).click()
        journeys.settle(page)
        page.locator('input[type="file"]').set_input_files(str(radiograph))
        page.get_by_text("Input shift.").first.wait_for(timeout=180_000)  # the warning names the shift
        journeys.settle(page)
        warning = page.get_by_text("unlike the images the model was trained on").first
        assert warning.is_visible()
        assert radiograph.name in _captions(page)  # the maps are of the uploaded image

        finding_box = page.get_by_role("combobox", name="Finding")
        shown = finding_box.input_value().strip()
        assert shown and f"map · {shown}" in _captions(page)  # box and maps agree right after the upload
        sidecar = tiny_workspace.root / "runs" / "demo_csra" / "checkpoints" / "best.json"
        classes = InputContract.from_sidecar(json.loads(sidecar.read_text())).class_names
        other = next(c for c in classes if c != shown)
        finding_box.click()
        finding_box.fill(other)  # the select box filters its options as one types; Enter picks the match
        page.keyboard.press("Enter")
        page.get_by_text(f"head map · {other}").first.wait_for(timeout=120_000)  # the maps follow the new choice
        journeys.settle(page)
        captions = _captions(page)
        assert finding_box.input_value().strip() == other
        assert f"head map · {other}" in captions and f"gradcam · {other}" in captions, captions
        assert f"map · {shown} " not in captions and f"gradcam · {shown}\n" not in captions + "\n", captions
        browser.close()
