"""Every dashboard page runs against a tiny built workspace, shows its key widgets and survives one interaction.

Streamlit's AppTest runs each page script in this process (no browser); ``test_browser.py`` drives a real one.
"""

from __future__ import annotations

import json
import time

import pytest

from cxrlt_core import jobs
from cxrlt_core.paths import REPO_ROOT
from cxrlt_core.runs import read_status
from cxrlt_dashboard.common import PAGES

pytestmark = pytest.mark.slow
st_testing = pytest.importorskip("streamlit.testing.v1")


@pytest.fixture(autouse=True)
def served_like_the_server(monkeypatch):
    """Make AppTest run ``app.py`` on every rerun, as the server does once ``st.navigation`` has been called.

    AppTest re-detects the ``pages/`` folder before each run and then runs the page script alone (Streamlit's
    first multipage mode); the server switches that mode off for good at the first ``st.navigation`` call.
    """
    from streamlit.runtime.pages_manager import PagesManager

    class NavigationPages(PagesManager):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    monkeypatch.setattr(st_testing.app_test, "PagesManager", NavigationPages)


@pytest.fixture(scope="module")
def workspace(tiny_workspace):
    return tiny_workspace


@pytest.fixture
def page(workspace, monkeypatch):
    monkeypatch.setenv("CXRLT_WORKSPACE", str(workspace.root))
    monkeypatch.chdir(REPO_ROOT)

    def run(script: str):
        app = st_testing.AppTest.from_file(str(REPO_ROOT / script), default_timeout=120)
        app.run()
        assert not app.exception, [e.message for e in app.exception]
        assert not app.error, [e.value for e in app.error]
        return app

    return run


def test_overview_lists_the_workspace(page):
    app = page("app.py")
    assert app.title[0].value.startswith("cxrlt")
    text = " ".join(str(df.value) for df in app.dataframe)
    assert "demo_csra" in text and "demo_mlp" in text
    assert app.sidebar.text_input[0].value.endswith("demo")
    assert any("synthetic phantoms" in i.value for i in app.info)  # says what the demo workspace is
    assert {m.label for m in app.metric} >= {"Data sets", "Runs", "Predictions"}
    assert next(m for m in app.metric if m.label == "Runs").value == "2"


def test_workspace_holds_across_page_changes(page, workspace, tmp_path):
    """Chosen once in app.py and held in the session: no page change resets it (twice round every page)."""
    other = tmp_path / "other_ws"
    app = page("app.py")
    app.sidebar.text_input[0].set_value(str(other)).run()
    app.sidebar.button[0].click().run()  # create the new workspace
    assert app.sidebar.text_input[0].value == str(other)
    app.sidebar.text_input[0].set_value(str(workspace.root)).run()
    for _ in range(2):
        for info in PAGES:
            app.switch_page(info.path).run()
            assert not app.exception, (info.path, [e.message for e in app.exception])
            assert app.title, f"{info.path} shows a blank page"
            assert app.sidebar.text_input[0].value == str(workspace.root), info.path
            assert not any("Enter a workspace" in e.value for e in app.sidebar.error)
    assert app.session_state["cxrlt_workspace"] == str(workspace.root)


def test_workspace_field_never_creates_folders_unasked(page, tmp_path):
    app = page("app.py")
    missing = tmp_path / "typo" / "ws"
    app.sidebar.text_input[0].set_value(str(missing)).run()
    assert not app.exception
    assert any("does not exist" in w.value for w in app.sidebar.warning)
    assert not missing.exists() and not app.title  # the page stops until the user asks for the folder
    app.sidebar.button[0].click().run()
    assert (missing / "runs").is_dir() and app.title
    app.sidebar.text_input[0].set_value("  ").run()
    assert any("Enter a workspace folder" in e.value for e in app.sidebar.error)
    assert not (REPO_ROOT / "runs").exists()


def test_results_page_shows_macro_figures_and_compares_runs(page):
    app = page("pages/2_Results.py")
    labels = [m.label for m in app.metric]
    assert {"mAP", "mAUC", "mECE"} <= set(labels)
    assert any(
        m.label.startswith("head") or m.label.startswith("tail") or m.label.startswith("medium") for m in app.metric
    )
    assert any("95 % intervals" in c.value for c in app.caption)
    second = next(s for s in app.selectbox if s.label.startswith("Second predictions"))
    second.select_index(1).run()
    assert not app.exception
    assert any(m.label == "mAP of B" and "B − A" in str(m.delta) for m in app.metric)
    assert {"head mAP of B", "medium mAP of B"} <= {m.label for m in app.metric}  # paired bucket deltas
    assert any("**A** = `" in md.value and "**B** = `" in md.value for md in app.markdown)
    assert any("differ beyond bootstrap noise" in c.value for c in app.caption)
    assert any(h.value == "Subgroups" for h in app.subheader)


def test_gating_slider_updates_metrics(page):
    app = page("pages/4_Gating.py")
    before = {m.label: m.value for m in app.metric}
    app.slider[0].set_value(0.0).run()
    assert not app.exception
    after = {m.label: m.value for m in app.metric}
    assert set(before) == set(after) and "mAP" in after
    assert all("+0.0000" in str(m.delta) for m in app.metric if m.label in ("mAP", "mAUC"))


def _class_table(app):
    return next(d.value for d in app.dataframe if "ΔAP" in d.value.columns)


def test_prompts_edit_changes_a_class_ap(page):
    """An edit of the prompt set that changes the ranking (the scoring rule; α alone cannot change AP) shows ΔAP."""
    app = page("pages/3_Prompts.py")
    assert any(m.label == "Unseen mAP" for m in app.metric)
    table = _class_table(app)
    assert (table["ΔAP"].abs() < 1e-12).all()  # nothing edited yet: AP equals the saved version's
    rule = next(s for s in app.selectbox if s.label == "Scoring rule")
    other = next(r for r in rule.options if r != rule.value and r in ("mean_cosine", "max_cosine"))
    rule.set_value(other).run()
    assert not app.exception
    table = _class_table(app)
    changed = table[(table["AP"] - table["AP saved"]).abs() > 1e-9]
    assert len(changed) > 0, table
    assert ((changed["ΔAP"] - (changed["AP"] - changed["AP saved"])).abs() < 1e-12).all()
    assert any("~ scoring" in c.value for c in app.code)  # listed among the unsaved changes
    dist = next(s for s in app.selectbox if s.label == "Score distribution of")
    last = dist.options[-1]
    dist.set_value(last).run()
    title = json.loads(app.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert title.startswith(f"{last}: AP")  # the histogram follows the chosen class


def test_inspect_shows_probabilities_and_overlays(page):
    app = page("pages/5_Inspect.py")
    assert len(app.get("imgs")) >= 1 or app.get("image")
    app.slider[0].set_value(0.8).run()
    assert not app.exception


def test_export_page_renders(page):
    app = page("pages/6_Export.py")
    assert any(b.label.startswith("Build") for b in app.button)


def test_export_page_builds_task1_from_an_ensemble_spec(page, workspace):
    """Choosing a spec file of W/ensembles shows its members with normalised weights and exports with it."""
    workspace.ensembles_dir.mkdir(exist_ok=True)
    spec = workspace.ensembles_dir / "pair.yaml"
    spec.write_text(
        "members:\n  - checkpoint: ${workspace}/runs/demo_csra/checkpoints/best.safetensors\n    weight: 3\n"
        "  - checkpoint: ${workspace}/runs/demo_mlp/checkpoints/best.safetensors\n    weight: 1\n",
        encoding="utf-8",
    )
    try:
        app = page("pages/6_Export.py")
        app.radio(key="x_source").set_value("an ensemble spec file").run()
        members = app.dataframe[0].value
        assert list(members["member"]) == ["demo_csra", "demo_mlp"] and list(members["weight"]) == [0.75, 0.25]
        next(t for t in app.text_input if t.key == "x_name1").set_value("t1_spec_ui")
        next(b for b in app.button if b.label == "Build Task 1 submission").click().run()
        assert not app.exception and not app.error, [e.value for e in app.error]
        assert any("Valid submission" in s.value for s in app.success)
        assert any(f"--ensemble {spec}" in c.value for c in app.code)
    finally:
        spec.unlink()


def test_train_page_launches_a_one_step_run(page, workspace):
    """The typed name is used, the panel follows the launched run, and the finished run has val / test predictions."""
    app = page("pages/1_Train.py")
    default_name = next(t for t in app.text_input if t.label == "Run name").value
    app.run()
    assert next(t for t in app.text_input if t.label == "Run name").value == default_name  # stable across reruns
    run_name = next(t for t in app.text_input if t.label == "Run name")
    run_name.set_value("ui_smoke")
    more = next(t for t in app.text_input if t.label.startswith("More overrides"))
    more.set_value(
        "optim.max_steps_per_epoch=1 optim.phase1.epochs=0 optim.phase2.epochs=1 data.image_size=64 optim.num_workers=0"
    )
    next(b for b in app.button if b.label == "Launch").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Launched ui_smoke" in s.value for s in app.success)
    assert app.selectbox(key="train_run").value == "ui_smoke"  # the panel follows the new run
    assert (workspace.runs_dir / "ui_smoke").is_dir()
    deadline = time.monotonic() + 300
    run_dir = workspace.run("ui_smoke")
    while jobs.process_alive(read_status(run_dir) or {}) or (read_status(run_dir) or {}).get("state") == "queued":
        assert time.monotonic() < deadline, "the launched run did not finish"
        time.sleep(1)
    assert read_status(run_dir)["state"] == "finished"
    assert (run_dir / "checkpoints" / "best.safetensors").is_file()
    # written at the end of the run, so Results, Gating and Export list it
    assert {p.name for p in (run_dir / "predictions").glob("*.parquet")} == {"val.parquet", "test.parquet"}
    app.run()
    assert any("ui_smoke" in m.value and "finished" in m.value for m in app.markdown)
    resume = next(b for b in app.button if b.label == "Resume run")
    assert resume.disabled  # finished: nothing to resume


def test_a_workspace_named_by_the_user_is_never_built_into(tmp_path, monkeypatch):
    """$CXRLT_WORKSPACE names the user's folder: the Overview opens it as it is, starts no demo build there and does
    not call it the demo workspace (only the dashboard's own workspace/demo builds itself)."""
    mine = tmp_path / "my_ws"
    monkeypatch.setenv("CXRLT_WORKSPACE", str(mine))
    monkeypatch.chdir(REPO_ROOT)
    app = st_testing.AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    assert mine.is_dir() and not (mine / ".build").exists()
    assert not any("This is the demo workspace" in i.value for i in app.info)
    assert not any(b.label == "Build the demo workspace" for b in app.button)
