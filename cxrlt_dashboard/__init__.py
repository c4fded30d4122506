"""Streamlit helpers shared by app.py and pages/: a thin skin over ``cxrlt_core`` (no logic of its own)."""
