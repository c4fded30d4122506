"""Page set-up, the workspace picker, cached loaders and small display helpers for every page."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from cxrlt_core.errors import CxrltError
from cxrlt_core.workspace import Workspace

DEFAULT_WORKSPACE = "workspace/demo"


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


def page_setup(title: str, icon: str = "🫁") -> Workspace:
    """Configure the page, draw the workspace picker in the sidebar and the title; return the workspace."""
    st.set_page_config(page_title=f"{title} · cxrlt", page_icon=icon, layout="wide")
    workspace = workspace_picker()
    st.title(title)
    return workspace


def workspace_picker() -> Workspace:
    """The workspace folder: ``$CXRLT_WORKSPACE`` or ``workspace/demo``, changeable in the sidebar."""
    st.session_state.setdefault("workspace_path", os.environ.get("CXRLT_WORKSPACE", DEFAULT_WORKSPACE))
    default = os.environ.get("CXRLT_WORKSPACE", DEFAULT_WORKSPACE)
    path = st.sidebar.text_input("Workspace folder", key="workspace_path", help="Holds datasets/, runs/, prompts/ …")
    if not path.strip():
        st.sidebar.error("Enter a workspace folder.")
        st.stop()
    # Only the default workspace is created without asking: a half-typed path must not scatter folders around.
    create = Path(path).expanduser().resolve() == Path(default).expanduser().resolve()
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
    st.sidebar.caption(f"`{workspace.root}`")
    return workspace


def cli_hint(command: str) -> None:
    """Show the terminal command that does the same thing as the page's action."""
    st.caption("The same from a terminal:")
    st.code(command, language="bash")


def error_box(exc: BaseException) -> None:
    """One readable line for a known input error; the exception text otherwise."""
    st.error(str(exc) if isinstance(exc, CxrltError) else f"{type(exc).__name__}: {exc}")


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


def pick_labels_csv(workspace: Workspace, label: str, key: str, prefer: tuple[str, ...] = ()) -> Path | None:
    """A select box over the workspace's data-set CSVs (``prefer``: file names to select first)."""
    options = dataset_csvs(workspace)
    if not options:
        st.info("This workspace has no data sets yet.")
        return None
    names = list(options)
    index = next((i for i, n in enumerate(names) for p in prefer if n.endswith("/" + p)), 0)
    choice = st.selectbox(label, names, index=index, key=key)
    return options[choice]


def image_folder(labels_csv: str | os.PathLike[str]) -> Path:
    """Where a data set's images are: ``images/`` beside its CSV (the CXR-LT layout), else the CSV's folder."""
    folder = Path(labels_csv).parent
    return folder / "images" if (folder / "images").is_dir() else folder


def percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def frame_height(frame: pd.DataFrame, max_rows: int = 20) -> int:
    """A table height that shows up to ``max_rows`` rows without an inner scroll bar."""
    return 38 + 35 * min(len(frame), max_rows)
