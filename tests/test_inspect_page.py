"""The Inspect page on a tiny built workspace: model card, shift check, uncalibrated scores, maps that follow the
Finding box (AppTest, no browser)."""

from __future__ import annotations

import pytest

from cxrlt_core.paths import REPO_ROOT

pytestmark = pytest.mark.slow
st_testing = pytest.importorskip("streamlit.testing.v1")


@pytest.fixture
def inspect_page(tiny_workspace, monkeypatch):
    monkeypatch.setenv("CXRLT_WORKSPACE", str(tiny_workspace.root))
    monkeypatch.chdir(REPO_ROOT)
    app = st_testing.AppTest.from_file(str(REPO_ROOT / "pages" / "5_Inspect.py"), default_timeout=180)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _image_captions(app) -> list[str]:
    """Captions of every ``st.image`` (kept in the image elements' protos, not as caption elements)."""
    return [img.caption for element in app.get("image") for img in element.proto.imgs]


def _text(app) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption])


def test_card_shift_check_and_uncalibrated_scores_are_shown(inspect_page) -> None:
    app = inspect_page
    text = _text(app)
    assert "Model card" in text and "M parameters" in text and "Intended use" in text and "synthetic phantom" in text
    verdicts = [m.value for m in list(app.success) + list(app.warning)]
    assert any("feature distance" in v for v in verdicts), verdicts  # the training run fitted the shift check
    assert any("Uncalibrated" in c.value for c in app.caption)


def test_maps_follow_the_finding_box(inspect_page) -> None:
    app = inspect_page
    box = next(s for s in app.selectbox if s.label == "Finding")
    first = box.value
    assert any(f"map · {first} " in c for c in _image_captions(app))
    other = next(c for c in box.options if c != first)
    box.set_value(other).run()
    assert not app.exception
    captions = _image_captions(app)
    assert any(f"head map · {other}" in c for c in captions) and any(f"gradcam · {other}" in c for c in captions)
    assert not any(f"map · {first} " in c for c in captions)
    assert any("min-max normalised" in c.value for c in app.caption)


def test_occlusion_as_the_second_map(inspect_page) -> None:
    """Choosing occlusion draws it beside the head map and offers its overlay for download."""
    app = inspect_page
    finding = next(s for s in app.selectbox if s.label == "Finding").value
    next(s for s in app.selectbox if s.label == "Second map").set_value("occlusion").run()
    assert not app.exception, [e.message for e in app.exception]
    assert any(f"occlusion · {finding}" in c for c in _image_captions(app))
    assert any(b.label == "Download occlusion overlay" for b in app.get("download_button"))
