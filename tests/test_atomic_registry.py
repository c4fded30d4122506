"""Atomic writes leave the old file on failure; registries give clear errors."""

from __future__ import annotations

import json

import pytest

from cxrlt_core.atomic import atomic_open, write_json, write_text
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.registry import Registry


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "status.json"
    write_json(target, {"a": 1, "b": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1, "b": None}
    write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["status.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "pred.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half a fi")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]


def test_registry_register_get_and_errors():
    heads: Registry[type] = Registry("head")

    @heads.register("mlp")
    class Mlp:
        pass

    assert heads.get("mlp") is Mlp and heads.names() == ["mlp"] and "mlp" in heads and len(heads) == 1
    with pytest.raises(InputError, match="unknown head 'csra'; choose one of: mlp"):
        heads.get("csra")
    with pytest.raises(KeyError, match="twice"):
        heads.add("mlp", Mlp)


def test_validation_error_lists_problems():
    err = ValidationError("labels.csv has 7 problems", [f"row {i}" for i in range(7)])
    assert err.problems[0] == "row 0"
    assert "(+2 more)" in str(err)


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    target = tmp_path / "sub.csv"
    write_text(target, "ImageID\n")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
