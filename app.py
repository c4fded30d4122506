"""cxrlt dashboard: ``streamlit run app.py``.

The entry point chooses the workspace (the sidebar field, held for the browser session so that moving between pages
never loses it), declares the pages (so that the sidebar names them, Overview first) and runs the chosen one; each
page lives in ``pages/`` and is a thin skin over ``cxrlt_core``.
"""

from __future__ import annotations

import streamlit as st

from cxrlt_dashboard.common import PAGES, choose_workspace, run_page

st.set_page_config(page_title="cxrlt", page_icon="🫁", layout="wide")
choose_workspace()  # before the navigation: a page that stops here must still show the field and its message
# an input or OS error that escapes a page (a full disk, a file removed meanwhile) ends as one line, not a traceback
run_page(st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)]))
