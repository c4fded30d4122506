"""Bad input across every CLI command: each case ends with one ``error:`` line naming the file, row or column, exit
status 1, no traceback, and no file changed (inputs and outputs are compared before and after)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile_world import cxrlt, snapshot, world  # noqa: F401

Case = Callable[[dict[str, Path], Path], tuple[list[object], str]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert name not in CASES
        CASES[name] = fn
        return fn

    return register


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def png_bomb(side: int = 32000) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    idat = zlib.compress(bytes(1 + side // 8), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def labels_text(w: dict[str, Path], rows: int = 3) -> str:
    return "\n".join((w["data"] / "val.csv").read_text().splitlines()[: rows + 1]) + "\n"


def first_image(w: dict[str, Path]) -> str:
    return (w["data"] / "test.csv").read_text().splitlines()[1].split(",")[0]


# ------------------------------------------------------------------------------------------------------ data check
@case("data-check: missing labels file")
def _(w, t):
    return ["data", "check", "--labels", t / "nope.csv"], "nope.csv: labels file not found"


@case("data-check: empty labels file")
def _(w, t):
    return ["data", "check", "--labels", write(t / "e.csv", "")], "e.csv: empty file"


@case("data-check: header only")
def _(w, t):
    return ["data", "check", "--labels", write(t / "h.csv", "ImageID,Atelectasis\n")], "h.csv: no data rows"


@case("data-check: no id column")
def _(w, t):
    return ["data", "check", "--labels", write(t / "n.csv", "name,Atelectasis\na,1\n")], "n.csv: no id column"


@case("data-check: semicolon-separated")
def _(w, t):
    return ["data", "check", "--labels", write(t / "s.csv", "ImageID;Atelectasis\na;1\n")], "semicolon"


@case("data-check: bad label cell")
def _(w, t):
    path = write(t / "b.csv", "ImageID,Atelectasis\na.png,2\n")
    return ["data", "check", "--labels", path], "b.csv: 1 problem"


@case("data-check: duplicate column")
def _(w, t):
    path = write(t / "d.csv", "ImageID,Atelectasis,Atelectasis\na,1,0\n")
    return ["data", "check", "--labels", path], "column 'Atelectasis' appears twice"


@case("data-check: truncated row")
def _(w, t):
    path = write(t / "r.csv", 'ImageID,Atelectasis,Cardiomegaly\na,1,0\nb,"1\n')
    return ["data", "check", "--labels", path], "r.csv"


@case("data-check: not UTF-8")
def _(w, t):
    path = write(t / "u.csv", b"ImageID,Atelectasis\n\xff\xfe\x00bad,1\n")
    return ["data", "check", "--labels", path], "u.csv"


@case("data-check: absolute id")
def _(w, t):
    path = write(t / "a.csv", "ImageID,Atelectasis\n/etc/passwd,1\n")
    return ["data", "check", "--labels", path, "--images", w["images"]], "a.csv: 1 problem"


@case("data-check: image folder missing")
def _(w, t):
    path = write(t / "f.csv", labels_text(w))
    return ["data", "check", "--labels", path, "--images", t / "no_images"], "f.csv: 1 problem"


@case("data-check: labels is a folder")
def _(w, t):
    (t / "folder.csv").mkdir()
    return ["data", "check", "--labels", t / "folder.csv"], "folder.csv: labels file is not a file"


@case("data-split: missing labels")
def _(w, t):
    return ["data", "split", "--labels", t / "x.csv", "--out", t / "out"], "x.csv: labels file not found"


# -------------------------------------------------------------------------------------------------------- evaluate
@case("evaluate: missing predictions")
def _(w, t):
    return ["evaluate", "--pred", t / "p.csv", "--labels", w["data"] / "val.csv"], "p.csv"


@case("evaluate: predictions are not a table")
def _(w, t):
    return ["evaluate", "--pred", write(t / "p.csv", "hello\x00\x01"), "--labels", w["data"] / "val.csv"], "p.csv"


def _test_pred_with(w: dict[str, Path], t: Path, row: int, column: int, value: str) -> list:
    """``evaluate`` on the test predictions with one cell (data row ``row``, column ``column``) set to ``value``."""
    lines = w["test_pred"].read_text().splitlines()
    cells = lines[row].split(",")
    cells[column] = value
    lines[row] = ",".join(cells)
    pred = write(t / "p.csv", "\n".join(lines) + "\n")
    return ["evaluate", "--pred", pred, "--labels", w["data"] / "test_labels.csv"]


@case("evaluate: NaN score")
def _(w, t):
    return _test_pred_with(w, t, 1, 1, "nan"), "p.csv"


@case("evaluate: score above 1")
def _(w, t):
    return _test_pred_with(w, t, 2, 3, "1.5"), "p.csv"


@case("evaluate: missing labels")
def _(w, t):
    return ["evaluate", "--pred", w["val_pred"], "--labels", t / "l.csv"], "l.csv: labels file not found"


def foreign_labels(w: dict[str, Path], t: Path) -> Path:
    """val.csv's header and first row, under an id no prediction has."""
    header, row = (w["data"] / "val.csv").read_text().splitlines()[:2]
    return write(t / "l.csv", f"{header}\nother.png,{row.split(',', 1)[1]}\n")


@case("evaluate: no common ids")
def _(w, t):
    labels = foreign_labels(w, t)
    return ["evaluate", "--pred", w["val_pred"], "--labels", labels], "l.csv"


@case("evaluate: --json names a folder")
def _(w, t):
    (t / "j").mkdir()
    return ["evaluate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--json", t / "j"], "is a folder"


@case("evaluate: missing train labels")
def _(w, t):
    args = ["evaluate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--train-labels", t / "tr.csv"]
    return args, "tr.csv: labels file not found"


@case("evaluate: negative bootstrap")
def _(w, t):
    return ["evaluate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--bootstrap", "-5"], "bootstrap"


@case("evaluate: threshold outside 0..1")
def _(w, t):
    return ["evaluate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--threshold", "7"], "threshold"


@case("evaluate: unknown label space")
def _(w, t):
    args = ["evaluate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--label-space", "nosuch"]
    return args, "nosuch"


# --------------------------------------------------------------------------------------------- compare / audit
@case("compare: missing A")
def _(w, t):
    return ["compare", "--labels", w["data"] / "val.csv", t / "a.csv", w["val_pred"]], "a.csv"


@case("compare: B not a predictions file")
def _(w, t):
    b = write(t / "b.csv", "x,y\n1,2\n")
    return ["compare", "--labels", w["data"] / "val.csv", w["val_pred"], b], "b.csv"


@case("audit: missing predictions")
def _(w, t):
    return ["audit", "--pred", t / "p.parquet", "--labels", w["data"] / "val.csv"], "p.parquet"


@case("audit: garbage predictions")
def _(w, t):
    return ["audit", "--pred", write(t / "p.parquet", b"PAR1garbage"), "--labels", w["data"] / "val.csv"], "p.parquet"


# ----------------------------------------------------------------------------------------------------- submission
@case("submission-write: missing predictions")
def _(w, t):
    args = ["submission", "write", "--pred", t / "p.csv", "--task", "1", "--ids", w["data"] / "test.csv"]
    return [*args, "--out", t / "sub.csv"], "p.csv"


@case("submission-write: missing ids file")
def _(w, t):
    args = ["submission", "write", "--pred", w["test_pred"], "--task", "1", "--ids", t / "ids.csv"]
    return [*args, "--out", t / "sub.csv"], "ids.csv"


@case("submission-write: not a .csv output")
def _(w, t):
    args = ["submission", "write", "--pred", w["test_pred"], "--task", "1", "--ids", w["data"] / "test.csv"]
    return [*args, "--out", t / "sub.txt"], "sub.txt"


@case("submission-write: a test id without prediction")
def _(w, t):
    test_ids = [line.split(",")[0] for line in (w["data"] / "test.csv").read_text().splitlines()[1:]]
    ids = write(t / "ids.csv", "ImageID\n" + "\n".join([*test_ids, "extra_image.png"]) + "\n")
    args = ["submission", "write", "--pred", w["test_pred"], "--task", "1", "--ids", ids]
    return [*args, "--out", t / "sub.csv"], "extra_image.png"


@case("submission-validate: missing file")
def _(w, t):
    return ["submission", "validate", t / "s.csv", "--task", "1", "--ids", w["data"] / "test.csv"], "s.csv"


@case("submission-validate: wrong header")
def _(w, t):
    sub = write(t / "s.csv", "id,score\na,0.5\n")
    return ["submission", "validate", sub, "--task", "1", "--ids", w["data"] / "test.csv"], "s.csv"


@case("submission-validate: empty file")
def _(w, t):
    sub = write(t / "s.csv", "")
    return ["submission", "validate", sub, "--task", "1", "--ids", w["data"] / "test.csv"], "s.csv"


# -------------------------------------------------------------------------------------------------------- predict
def _predict(w: dict[str, Path], t: Path, *extra: object, labels: Path | None = None, images: Path | None = None):
    return [
        "predict", "--checkpoint", w["ckpt"], "--labels", labels or w["data"] / "test.csv",
        "--images", images or w["images"], "--out", t / "pred.csv", "--tta", "none", "--num-workers", "0",
        "--no-progress", "--device", "cpu", *extra,
    ]  # fmt: skip


def _images_with(w: dict[str, Path], t: Path, name: str, data: bytes) -> tuple[Path, Path]:
    images = t / "images"
    images.mkdir()
    shutil.copy(w["images"] / first_image(w), images / "ok.png")
    write(images / name, data)
    return write(t / "test.csv", f"ImageID\nok.png\n{name}\n"), images


@case("predict: missing checkpoint")
def _(w, t):
    args = _predict(w, t)
    args[2] = t / "none.safetensors"
    return args, "none"


@case("predict: checkpoint is garbage")
def _(w, t):
    bad = write(t / "bad.safetensors", b"\x00" * 64)
    write(t / "bad.json", w["ckpt"].with_suffix(".json").read_text())
    args = _predict(w, t)
    args[2] = bad
    return args, "bad.safetensors"


@case("predict: sidecar with swapped class names")
def _(w, t):
    ck = t / "m.safetensors"
    shutil.copy(w["ckpt"], ck)
    side = json.loads(w["ckpt"].with_suffix(".json").read_text())
    names = side["input"]["class_names"]
    names[0], names[1] = names[1], names[0]
    write(t / "m.json", json.dumps(side))
    args = _predict(w, t)
    args[2] = ck
    return args, "m.json was changed after it was saved"


@case("predict: sidecar is not JSON")
def _(w, t):
    ck = t / "m.safetensors"
    shutil.copy(w["ckpt"], ck)
    write(t / "m.json", "{oops")
    args = _predict(w, t)
    args[2] = ck
    return args, "m.json"


@case("predict: missing labels")
def _(w, t):
    return _predict(w, t, labels=t / "l.csv"), "l.csv: labels file not found"


@case("predict: weights do not match checkpoints")
def _(w, t):
    return _predict(w, t, "--weights", "1", "2"), "--weights has 2 values for 1 checkpoints"


@case("predict: output suffix")
def _(w, t):
    args = _predict(w, t)
    args[args.index("--out") + 1] = t / "pred.txt"
    return args, "pred.txt"


@case("predict: batch size 0")
def _(w, t):
    return _predict(w, t, "--batch-size", "0"), "batch size"


@case("predict: forward batch not a number")
def _(w, t):
    return _predict(w, t, "--forward-batch", "lots"), "--forward-batch must be an integer"


@case("predict: missing calibration")
def _(w, t):
    return _predict(w, t, "--calibration", t / "cal.json"), "cal.json"


@case("predict: thresholds not JSON")
def _(w, t):
    return _predict(w, t, "--thresholds", write(t / "thr.json", "[1, 2")), "thr.json"


@case("predict: pixel bomb image")
def _(w, t):
    labels, images = _images_with(w, t, "bomb.png", png_bomb())
    return _predict(w, t, labels=labels, images=images), "bomb.png: PNG image declares 32000 x 32000 pixels"


@case("predict: truncated PNG")
def _(w, t):
    data = (w["images"] / first_image(w)).read_bytes()[:200]
    labels, images = _images_with(w, t, "cut.png", data)
    return _predict(w, t, labels=labels, images=images), "cut.png: truncated PNG file"


@case("predict: text file as image")
def _(w, t):
    labels, images = _images_with(w, t, "note.png", b"just some text\n")
    return _predict(w, t, labels=labels, images=images), "note.png: a text file, not an image"


@case("predict: image missing")
def _(w, t):
    labels = write(t / "test.csv", f"ImageID\n{first_image(w)}\nghost.png\n")
    return _predict(w, t, labels=labels), "ghost.png"


@case("predict: id escaping the image folder")
def _(w, t):
    labels = write(t / "test.csv", f"ImageID\n{first_image(w)}\n../../etc/passwd\n")
    return _predict(w, t, labels=labels), "row 3"


@case("predict: output is a folder")
def _(w, t):
    (t / "pred.csv").mkdir()
    return _predict(w, t), "pred.csv: is a folder"


# ------------------------------------------------------------------------------------------ calibrate / thresholds
@case("calibrate: missing predictions")
def _(w, t):
    return [
        "calibrate",
        "--pred",
        t / "v.parquet",
        "--labels",
        w["data"] / "val.csv",
        "--out",
        t / "c.json",
    ], "v.parquet"


@case("calibrate: labels without the predicted ids")
def _(w, t):
    labels = foreign_labels(w, t)
    return ["calibrate", "--pred", w["val_pred"], "--labels", labels, "--out", t / "c.json"], "l.csv"


@case("calibrate: isotonic epsilon negative")
def _(w, t):
    args = ["calibrate", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--out", t / "c.json"]
    return [*args, "--method", "isotonic", "--epsilon", "-1"], "epsilon"


@case("thresholds: default outside 0..1")
def _(w, t):
    args = ["thresholds", "--pred", w["val_pred"], "--labels", w["data"] / "val.csv", "--out", t / "t.json"]
    return [*args, "--default", "1.5"], "1.5"


@case("thresholds: garbage predictions")
def _(w, t):
    pred = write(t / "v.parquet", b"not parquet at all")
    return ["thresholds", "--pred", pred, "--labels", w["data"] / "val.csv", "--out", t / "t.json"], "v.parquet"


# ---------------------------------------------------------------------------------------------------------- train
def _train(t: Path, *extra: object) -> list[object]:
    return ["train", *extra, "--workspace", t / "ws", "--run-name", "r", "--no-progress"]


RECIPE = Path(__file__).resolve().parent.parent / "train_jobs" / "demo_csra.yaml"


@case("train: missing recipe")
def _(w, t):
    return _train(t, "--config", t / "r.yaml"), "r.yaml"


@case("train: recipe is not YAML")
def _(w, t):
    return _train(t, "--config", write(t / "r.yaml", "data: [unclosed\n")), "r.yaml: not valid YAML"


@case("train: recipe with a Python tag")
def _(w, t):
    recipe = write(t / "r.yaml", "data: !!python/object/apply:os.system ['touch pwned']\n")
    return _train(t, "--config", recipe), "r.yaml"


@case("train: NaN learning rate")
def _(w, t):
    return _train(t, "--config", RECIPE, "optim.phase1.lr=nan"), "optim.phase1.lr must be a finite number"


@case("train: infinite head lr")
def _(w, t):
    return _train(t, "--config", RECIPE, "optim.phase2.head_lr=inf"), "optim.phase2.head_lr must be a finite number"


@case("train: mistyped head parameter")
def _(w, t):
    return _train(t, "--config", RECIPE, "model.head_params.lam=abc"), "model.head_params.lam must be a number"


@case("train: unknown recipe key")
def _(w, t):
    return _train(t, "--config", RECIPE, "optim.lrr=1"), "optim.lrr"


@case("train: resume without a run name")
def _(w, t):
    return ["train", "--resume", "--workspace", t / "ws"], "--resume needs --run-name"


@case("train: run name climbing out")
def _(w, t):
    return ["train", "--config", RECIPE, "--workspace", t / "ws", "--run-name", "../../x"], "run name"


@case("train: bad override syntax")
def _(w, t):
    return _train(t, "--config", RECIPE, "optim.phase1.lr"), "optim.phase1.lr"


# ------------------------------------------------------------------------------------------------------- zeroshot
def _zeroshot(w: dict[str, Path], t: Path, *extra: object) -> list[object]:
    args = ["zeroshot", "predict", "--labels", w["data"] / "test.csv", "--images", w["images"], "--out", t / "z.csv"]
    return [*args, *extra]


@case("zeroshot: model folder missing")
def _(w, t):
    return _zeroshot(w, t, "--model", f"local-dir:{t / 'no_model'}"), "no_model"


def tiny_clip(t: Path) -> str:
    """A one-layer open_clip model saved as a local folder (what ``--model local-dir:`` reads)."""
    import open_clip
    import torch

    from cxrlt_core.zeroshot.loading import save_local_dir
    from tests.test_zeroshot_cache import TINY_CFG

    torch.manual_seed(0)
    save_local_dir(open_clip.CLIP(**TINY_CFG).eval(), t / "clip", TINY_CFG, {"size": 32})
    return f"local-dir:{t / 'clip'}"


@case("zeroshot: prompts file missing")
def _(w, t):
    return _zeroshot(w, t, "--model", tiny_clip(t), "--prompts", t / "p.yaml"), "p.yaml"


@case("zeroshot: prompts not YAML")
def _(w, t):
    prompts = write(t / "p.yaml", "classes: [unclosed\n")
    return _zeroshot(w, t, "--model", tiny_clip(t), "--prompts", prompts), "p.yaml"


@case("zeroshot: prompts name no class")
def _(w, t):
    prompts = write(t / "p.yaml", "name: x\nclasses: {}\n")
    return _zeroshot(w, t, "--model", tiny_clip(t), "--prompts", prompts), "p.yaml"


# ------------------------------------------------------------------------------------------------ the other commands
@case("runs-list: missing workspace")
def _(w, t):
    return ["runs", "list", "--workspace", t / "no_ws"], "no_ws"


@case("predict-run: unknown run")
def _(w, t):
    ws = t / "ws"
    (ws / "runs").mkdir(parents=True)
    return ["predict-run", "ghost", "--workspace", ws], "ghost"


@case("shift-check: missing checkpoint")
def _(w, t):
    return ["shift", "check", "--checkpoint", t / "c.safetensors", w["images"] / first_image(w)], "c.safetensors"


@case("capsule-make: missing predictions")
def _(w, t):
    return ["capsule", "make", "--out", t / "cap", "--pred", t / "p.csv", "--labels", w["data"] / "val.csv"], "p.csv"


@case("capsule-check: missing capsule")
def _(w, t):
    return ["capsule", "check", t / "cap.zip"], "cap.zip"


def test_there_are_at_least_sixty_kinds():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_error_line(world: dict[str, Path], tmp_path: Path, capsys, name: str):  # noqa: F811
    args, words = CASES[name](world, tmp_path)
    before_inputs, before_world = snapshot(tmp_path), snapshot(world["root"])
    capsys.readouterr()
    code = cxrlt(*args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert code == 1, (code, err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert words in err[0], err[0]
    assert "Traceback" not in err[0]
    assert snapshot(tmp_path) == before_inputs, "an input or output file changed"
    assert snapshot(world["root"]) == before_world
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
