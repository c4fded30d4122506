"""Image ids confined to their image folder: absolute ids, ``..`` and symbolic links leading out are never opened."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cxrlt_core.cli import main
from cxrlt_core.data.confine import RootGuard, id_escape
from cxrlt_core.data.images import Preprocess
from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import get_label_space
from cxrlt_core.models.checkpoint import save_checkpoint
from cxrlt_core.models.classifier import ModelConfig, build_model


@pytest.mark.parametrize(
    "image_id, words",
    [
        ("/etc/passwd", "absolute path"),
        ("../outside.png", "'..'"),
        ("a/../../b.png", "'..'"),
        ("a\\..\\b.png", "'..'"),
        ("~root/x.png", "'~'"),
        ("a\x00b.png", "NUL"),
    ],
)
def test_id_escape_text_rules(image_id: str, words: str):
    assert words in id_escape(image_id)


@pytest.mark.parametrize("image_id", ["a.png", "sub/dir/a.png", "a..b.png", "1.2.840.113619.2.1", "..a.png"])
def test_ids_that_stay_inside(image_id: str):
    assert id_escape(image_id) is None


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """images/ with a real file, a link to a file inside, a link to a file outside and a linked folder outside."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    ok, png = cv2.imencode(".png", np.full((32, 32), 9, np.uint8))
    for folder in (root, root / "sub", outside):
        (folder / "x.png").write_bytes(png.tobytes())
    os.symlink(root / "sub" / "x.png", root / "inside_link.png")
    os.symlink(outside / "x.png", root / "outside_link.png")
    os.symlink(outside, root / "outdir")
    return {"root": root, "outside": outside}


def test_root_guard_follows_links(tree: dict[str, Path]):
    guard = RootGuard(tree["root"])
    assert guard.escape(tree["root"] / "x.png") is None
    assert guard.escape(tree["root"] / "sub" / "x.png") is None
    assert guard.escape(tree["root"] / "inside_link.png") is None
    assert "symbolic link to" in guard.escape(tree["root"] / "outside_link.png")
    assert str(tree["outside"]) in guard.escape(tree["root"] / "outdir" / "x.png")


def _csv(path: Path, ids: list[str]) -> Path:
    path.write_text("ImageID,Atelectasis\n" + "".join(f"{i},0\n" for i in ids))
    return path


def test_read_manifest_lists_escaping_ids_by_row(tree: dict[str, Path], tmp_path: Path):
    csv = _csv(tmp_path / "l.csv", ["x.png", "/etc/passwd", "../secret/x.png"])
    with pytest.raises(ValidationError) as caught:
        read_manifest(csv, tree["root"], label_space="cxrlt2026")
    assert caught.value.problems == [
        f"{csv}: row 3, column 'ImageID': image id '/etc/passwd' is an absolute path; ids must be relative to the "
        "image folder",
        f"{csv}: row 4, column 'ImageID': image id '../secret/x.png' contains '..'; ids must stay inside the image "
        "folder",
    ]
    # without an image folder an id is only a name: nothing is resolved, nothing refused
    assert len(read_manifest(csv, label_space="cxrlt2026")) == 3


def test_image_path_refuses_a_link_out(tree: dict[str, Path], tmp_path: Path):
    manifest = read_manifest(_csv(tmp_path / "l.csv", ["x.png", "outside_link.png"]), tree["root"], "cxrlt2026")
    assert manifest.image_path(0) == tree["root"] / "x.png"
    with pytest.raises(InputError, match="image id 'outside_link.png' is a symbolic link to .*; not opened"):
        manifest.image_path(1)


def test_data_check_reports_each_escape_by_row(tree: dict[str, Path], tmp_path: Path, capsys):
    ids = ["x.png", "/etc/shadow", "outside_link.png", "outdir/x.png", "inside_link.png"]
    csv = _csv(tmp_path / "l.csv", ids)
    assert main(["data", "check", "--labels", str(csv), "--images", str(tree["root"])]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert any("row 3" in line and "'/etc/shadow' is an absolute path" in line for line in lines)
    assert any("row 4" in line and "outside_link.png is a symbolic link" in line for line in lines)
    assert any("row 5" in line and "outdir/x.png is a symbolic link" in line for line in lines)
    assert not any("row 2" in line or "row 6" in line for line in lines)
    assert "every image file present" not in out
    assert err.strip().splitlines() == [f"error: {csv}: 3 problems"]


def test_predict_never_opens_a_file_outside_the_images(tree: dict[str, Path], tmp_path: Path, capsys):
    space = get_label_space("cxrlt2026")
    cfg = ModelConfig(
        backbone="convnextv2_atto",
        head="mlp",
        class_names=list(space.in_distribution),
        label_space=space.to_dict(),
        input_size=32,
        drop_path_rate=0.0,
        pretrained=None,
    )
    torch.manual_seed(0)
    checkpoint = tmp_path / "m.safetensors"
    save_checkpoint(checkpoint, build_model(cfg), {"preprocess": Preprocess(image_size=32).to_dict()})
    for ids, words in ((["x.png", "/etc/passwd"], "row 3"), (["x.png", "outside_link.png"], "symbolic link")):
        csv = tmp_path / "test.csv"
        csv.write_text("ImageID\n" + "".join(f"{i}\n" for i in ids))
        out = tmp_path / "pred.csv"
        argv = ["predict", "--checkpoint", str(checkpoint), "--labels", str(csv), "--images", str(tree["root"])]
        argv += ["--out", str(out), "--tta", "none", "--num-workers", "0", "--no-progress", "--device", "cpu"]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
        assert not out.exists()
