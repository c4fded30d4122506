"""CSV hazards: formula-like ids in exports are warned about (never rewritten); another delimiter is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.csvsafety import FormulaIdWarning, delimiter_problem, formula_like
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError
from cxrlt_core.predictions import write_predictions
from tests.hostile_world import cxrlt, predict_args, world  # noqa: F401


def test_formula_like_ids():
    ids = ["a.png", "=1+1", "+cmd", "-2", "@SUM(A1)", "x=1", "\tx"]
    assert formula_like(ids) == [(1, "=1+1"), (2, "+cmd"), (3, "-2"), (4, "@SUM(A1)"), (6, "\tx")]


def test_exported_csv_warns_and_keeps_the_ids(tmp_path: Path):
    path = tmp_path / "pred.csv"
    ids = ["ok.png", "=HYPERLINK(1).png", "b.png", "@x.png"]
    with pytest.warns(FormulaIdWarning) as caught:
        write_predictions(path, ids, np.full((4, 2), 0.5), ["A", "B"])
    message = str(caught[0].message)
    assert message.startswith(f"{path}: 2 id(s) begin with =, +, - or @ (row 3 '=HYPERLINK(1).png', row 5 '@x.png')")
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == ids  # unchanged


def test_predict_to_csv_warns_on_formula_ids(world: dict[str, Path], tmp_path: Path, capsys):  # noqa: F811
    images = tmp_path / "images"
    images.mkdir()
    first = sorted(world["images"].glob("*.png"))[0]
    for name in ("plain.png", "=cmd.png", "-x.png"):
        shutil.copy(first, images / name)
    csv = tmp_path / "test.csv"
    csv.write_text("ImageID\nplain.png\n=cmd.png\n-x.png\n")
    out = tmp_path / "pred.csv"
    args = predict_args({**world, "images": images}, csv, out)
    assert cxrlt(*args) == 0
    err = capsys.readouterr().err
    assert f"warning: {out}: 2 id(s) begin with =, +, - or @ (row 3 '=cmd.png', row 4 '-x.png')" in err
    assert out.read_text().splitlines()[2].startswith("=cmd.png,")


@pytest.mark.parametrize(
    "text, words",
    [
        ("ImageID;Atelectasis;Cardiomegaly\na.png;1;0\n", "has no comma but 2 semicolon ';' characters"),
        ("ImageID\tAtelectasis\na.png\t1\n", "has no comma but 1 tab characters: the file is tab-separated"),
        ("ImageID|Atelectasis\na.png|1\n", "pipe '|'"),
    ],
)
def test_other_delimiters_are_named(tmp_path: Path, capsys, text: str, words: str):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(InputError, match="cxrlt reads comma-separated files") as caught:
        read_manifest(path)
    assert words in str(caught.value) and len(str(caught.value)) < 400
    assert cxrlt("data", "check", "--labels", path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: the header") and words in err[0]


def test_a_one_column_comma_file_is_fine():
    assert delimiter_problem("ImageID") is None and delimiter_problem("ImageID,Atelectasis") is None
