"""Workspace folders, listings and path-traversal checks."""

from __future__ import annotations

import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.workspace import Workspace, check_name


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "a" * 200, "x\\..\\y", "run name"])
def test_unsafe_names_are_rejected(name):
    with pytest.raises(InputError, match="invalid"):
        check_name(name)


@pytest.mark.parametrize("name", ["demo_csra", "run-2026.11.22", "A1"])
def test_safe_names_pass(name):
    assert check_name(name) == name


def test_workspace_layout_and_listings(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    for sub in ("datasets", "runs", "models", "prompts", "postprocess", "cache", "exports"):
        assert (ws.root / sub).is_dir()
    (ws.dataset("demo")).mkdir()
    (ws.dataset("demo") / "train.csv").write_text("ImageID\n")
    (ws.dataset("empty")).mkdir()
    run = ws.run("r1")
    (run / "predictions").mkdir(parents=True)
    (run / "status.json").write_text("{}")
    (run / "predictions" / "test.parquet").write_bytes(b"")
    (run / "predictions" / ".test.parquet.tmp").write_bytes(b"")
    assert ws.list_datasets() == ["demo"]
    assert ws.list_runs() == ["r1"]
    assert [p.name for p in ws.list_predictions()] == ["test.parquet"]
    with pytest.raises(InputError, match="run name"):
        ws.run("../../etc")


def test_workspace_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        Workspace.open(tmp_path / "f")
