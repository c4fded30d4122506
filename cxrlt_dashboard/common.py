"""Page set-up, the workspace picker, cached loaders and small display helpers for every page."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from cxrlt_core.errors import CxrltError
from cxrlt_core.oserrors import describe_os_error
from cxrlt_core.workspace import Workspace

DEFAULT_WORKSPACE = "workspace/demo"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class PageInfo:
    """One dashboard page: its script, sidebar title, Material icon (rendered from Streamlit's own font) and purpose."""

    path: str
    title: str
    icon: str
    purpose: str


PAGES = (
    PageInfo(
        "pages/0_Overview.py",
        "Overview",
        ":material/dashboard:",
        "the workspace at a glance; the demo workspace is built here",
    ),
    PageInfo(
        "pages/1_Train.py",
        "Train",
        ":material/model_training:",
        "launch recipes, watch loss and val mAP, stop and resume runs",
    ),
    PageInfo(
        "pages/2_Results.py",
        "Results",
        ":material/bar_chart:",
        "mAP, mAUC, mF1, mECE per class and per bucket; compare runs",
    ),
    PageInfo(
        "pages/3_Prompts.py",
        "Prompts",
        ":material/edit_note:",
        "edit zero-shot prompts for unseen findings; AP updates live",
    ),
    PageInfo("pages/4_Gating.py", "Gating", ":material/tune:", "normal gating α, calibration and per-class thresholds"),
    PageInfo(
        "pages/5_Inspect.py",
        "Inspect",
        ":material/search:",
        "one radiograph: probabilities, CSRA attention and Grad-CAM",
    ),
    PageInfo(
        "pages/6_Export.py", "Export", ":material/download:", "write and validate Task 1 / Task 2 submission CSVs"
    ),
    PageInfo(
        "pages/7_Runs.py", "Runs", ":material/compare_arrows:", "runs side by side: curves, recipe diff, test figures"
    ),
)


WORKSPACE_KEY = "cxrlt_workspace"  # the chosen workspace folder, held for the whole browser session
FIELD_KEY = "cxrlt_workspace_field"  # the sidebar field that edits it
OPENED_KEY = "cxrlt_workspace_opened"  # the workspace opened by app.py in the current script run


def page_setup(title: str, icon: str = "🫁") -> Workspace:
    """The preamble of every page: configure it, take the session's workspace, draw the title; return the workspace.

    ``app.py`` chooses the workspace before the page runs (:func:`choose_workspace`) and hands it over for this
    script run only; a page script run without it (``streamlit run pages/x.py``, AppTest) draws the same chooser.
    """
    st.set_page_config(page_title=f"{title} · cxrlt", page_icon=icon, layout="wide")
    workspace = st.session_state.pop(OPENED_KEY, None)
    if not isinstance(workspace, Workspace):
        workspace = choose_workspace()
    st.title(title)
    return workspace


def app_default_workspace() -> Path:
    """The folder the dashboard opens first: ``$CXRLT_WORKSPACE`` or ``workspace/demo``."""
    return Path(os.environ.get("CXRLT_WORKSPACE", DEFAULT_WORKSPACE)).expanduser().resolve()


def builtin_demo_workspace() -> Path:
    """The dashboard's own demo folder, ``workspace/demo``: the only one it builds without being asked (a folder
    named with ``$CXRLT_WORKSPACE`` or in the sidebar is the user's)."""
    return Path(DEFAULT_WORKSPACE).resolve()


def choose_workspace() -> Workspace:
    """Draw the workspace field in the sidebar and open the folder it names; stops the page when there is none.

    The choice lives in ``st.session_state`` under a key no widget owns, so it survives page changes (Streamlit
    drops the state of a widget that a run does not draw); the field is refilled from it on every run.
    """
    st.session_state.setdefault(WORKSPACE_KEY, str(app_default_workspace()))
    if FIELD_KEY not in st.session_state:
        st.session_state[FIELD_KEY] = st.session_state[WORKSPACE_KEY]
    path = st.sidebar.text_input("Workspace folder", key=FIELD_KEY, help="Holds datasets/, runs/, prompts/ …")
    if not path.strip():
        st.sidebar.error("Enter a workspace folder.")
        st.stop()
    # Only the default workspace is created without asking: a half-typed path must not scatter folders around.
    create = Path(path).expanduser().resolve() == app_default_workspace()
    if not create and not Path(path).expanduser().is_dir():
        st.sidebar.warning(f"`{path}` does not exist.")
        if not st.sidebar.button("Create this workspace"):
            st.stop()
        create = True
    try:
        workspace = Workspace.open(path, create=create)
    except CxrltError as exc:
        st.sidebar.error(str(exc))
        st.stop()
    st.session_state[WORKSPACE_KEY] = path
    st.session_state[OPENED_KEY] = workspace
    st.sidebar.caption(f"`{workspace.root}`")
    return workspace


def kept_value(key: str, default: Any) -> str:
    """The widget key ``key`` whose value survives page changes: refilled from a key no widget owns.

    Streamlit forgets a widget's value when a run does not draw it (another page); call this before drawing the
    widget with ``key=key`` and :func:`keep` after it.
    """
    store = f"{key}::kept"
    st.session_state.setdefault(store, default)
    if key not in st.session_state:
        st.session_state[key] = st.session_state[store]
    return key


def keep(key: str) -> None:
    """Remember the current value of the widget ``key`` (see :func:`kept_value`)."""
    if key in st.session_state:
        st.session_state[f"{key}::kept"] = st.session_state[key]


def cli_hint(command: str) -> None:
    """Show the terminal command that does the same thing as the page's action."""
    st.caption("The same from a terminal:")
    st.code(command, language="bash")


def error_line(exc: BaseException) -> str:
    """One readable line: a known input error as it is, an OS error as ``PATH: what happened``, else type and text."""
    if isinstance(exc, CxrltError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {exc}"


def error_box(exc: BaseException) -> None:
    """Show :func:`error_line` of ``exc`` as the page's error."""
    st.error(error_line(exc))


def run_page(page: Any) -> None:
    """Run the chosen page; an input or OS error that escapes it becomes one error line, not a traceback."""
    try:
        page.run()
    except (CxrltError, OSError) as exc:
        error_box(exc)


def mtime(path: str | os.PathLike[str]) -> float:
    """A file's modification time, used to key caches so that a rewritten file is reloaded."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def dataset_csvs(workspace: Workspace) -> dict[str, Path]:
    """Every CSV of every data set in the workspace, labelled ``dataset/file.csv``."""
    found: dict[str, Path] = {}
    for name in workspace.list_datasets():
        for csv in sorted(workspace.dataset(name).glob("*.csv")):
            found[f"{name}/{csv.name}"] = csv
    return found


def preferred_index(names: Sequence[str], prefer: Sequence[str] = ()) -> int:
    """Index of the first name ending in one of ``prefer`` (tried in order), else 0."""
    for suffix in prefer:
        for i, name in enumerate(names):
            if name.endswith(suffix):
                return i
    return 0


def pick(label: str, options: Mapping[str, T], key: str, prefer: Sequence[str] = (), **kwargs: Any) -> T:
    """A select box over ``options`` (label → value) that starts on the first label ending in one of ``prefer``."""
    names = list(options)
    choice = st.selectbox(label, names, index=preferred_index(names, prefer), key=key, **kwargs)
    return options[choice]


def prediction_files(workspace: Workspace) -> dict[str, Path]:
    """Every predictions file of the workspace's runs, labelled ``runs/<run>/predictions/<file>``."""
    return {str(p.relative_to(workspace.root)): p for p in workspace.list_predictions()}


def pick_labels_csv(workspace: Workspace, label: str, key: str, prefer: tuple[str, ...] = ()) -> Path | None:
    """A select box over the workspace's data-set CSVs (``prefer``: file names to select first)."""
    options = dataset_csvs(workspace)
    if not options:
        st.info("This workspace has no data sets yet.")
        return None
    return pick(label, options, key, prefer=tuple("/" + p for p in prefer))


def image_folder(labels_csv: str | os.PathLike[str]) -> Path:
    """Where a data set's images are: ``images/`` beside its CSV (the CXR-LT layout), else the CSV's folder."""
    folder = Path(labels_csv).parent
    return folder / "images" if (folder / "images").is_dir() else folder


# How the run tables of the Train and Overview pages draw their columns.
RUN_COLUMNS = {
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "where": st.column_config.TextColumn("where", width="large"),
    "val mAP": st.column_config.NumberColumn("val mAP", format="%.4f"),
    "best val mAP": st.column_config.NumberColumn("best val mAP", format="%.4f"),
}


def percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def frame_height(frame: pd.DataFrame, max_rows: int = 20) -> int:
    """A table height that shows up to ``max_rows`` rows without an inner scroll bar."""
    return 38 + 35 * min(len(frame), max_rows)
