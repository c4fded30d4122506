"""The CLI contract: ``cxrlt evaluate``, ``cxrlt data check``, ``cxrlt submission validate|write``, end to end.

Every bad input ends with exit status 1 and one readable ``error:`` line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from cxrlt_core.cli import main
from cxrlt_core.labels import get_label_space
from cxrlt_core.predictions import write_predictions

SPACE = get_label_space("cxrlt2026")
CLASSES = ["Normal", "cardiomegaly", "Nodule", "Mass", "pneumoperitoneo"]
N = 40


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Labels, training labels, predictions (shuffled rows), images and test ids for a small cxrlt2026 set."""
    rng = np.random.default_rng(0)
    ids = [f"img{k:03d}.png" for k in range(N)]
    labels = (rng.random((N, len(CLASSES))) < [0.5, 0.2, 0.1, 0.1, 0.0]).astype(int)
    labels[:3, 2] = 1
    frame = pd.DataFrame(labels, columns=CLASSES)
    frame.insert(0, "PatientID", [f"{k // 2}.0" for k in range(N)])
    frame.insert(0, "ImageID", ids)
    frame.to_csv(tmp_path / "labels.csv", index=False)

    train = (rng.random((500, len(CLASSES))) < [0.4, 0.05, 0.05, 0.005, 0.02]).astype(int)
    train_frame = pd.DataFrame(train, columns=CLASSES)
    train_frame.insert(0, "ImageID", [f"t{k}" for k in range(500)])
    train_frame.to_csv(tmp_path / "train.csv", index=False)

    scores = np.clip(labels * 0.4 + rng.random(labels.shape) * 0.6, 0, 1)
    order = rng.permutation(N)
    write_predictions(tmp_path / "pred.parquet", [ids[k] for k in order], scores[order], CLASSES, {"models": ["test"]})
    full = rng.random((N, SPACE.num_classes))
    write_predictions(tmp_path / "full.csv", ids, full, SPACE.classes)

    images = tmp_path / "images"
    images.mkdir()
    for image_id in ids:
        (images / image_id).write_bytes(b"\x89PNG")
    pd.DataFrame({"ImageID": ids}).to_csv(tmp_path / "test.csv", index=False)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "scores.npy", scores)
    return {
        "dir": tmp_path,
        "labels": tmp_path / "labels.csv",
        "train": tmp_path / "train.csv",
        "pred": tmp_path / "pred.parquet",
        "full": tmp_path / "full.csv",
        "images": images,
        "test": tmp_path / "test.csv",
    }


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_evaluate_prints_table_and_writes_json(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out_json = data["dir"] / "report" / "eval.json"
    code, out, err = run(
        capsys,
        "evaluate", "--pred", data["pred"], "--labels", data["labels"], "--train-labels", data["train"],
        "--label-space", "cxrlt2026", "--json", out_json,
    )  # fmt: skip
    assert code == 0, err
    for name in CLASSES:
        assert name in out
    assert "mAP" in out and "mAUC" in out and "pneumoperitoneo" in out
    report = json.loads(out_json.read_text())
    assert {"mAP", "mAUC", "mF1", "mECE", "per_class", "skipped", "buckets"} <= set(report)
    assert set(report["per_class"]["Mass"]) >= {"ap", "auc", "f1", "ece", "n_pos"}
    assert report["skipped"] == ["pneumoperitoneo"]
    assert set(report["buckets"]) == {"head", "medium", "tail"}
    assert "Normal" in report["buckets"]["head"]["classes"]
    assert sum(len(b["classes"]) for b in report["buckets"].values()) == len(CLASSES)
    # Rows were shuffled in the predictions file: matching by id must give sklearn's AP on the aligned rows.
    labels, scores = np.load(data["dir"] / "labels.npy"), np.load(data["dir"] / "scores.npy")
    expected = np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in range(4)])
    assert report["mAP"] == pytest.approx(expected, abs=1e-9)


def test_evaluate_scores_only_shared_classes(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "evaluate", "--pred", data["full"], "--labels", data["labels"], "--label-space", "cxrlt2026"
    )
    assert code == 0, err
    assert f"{N} images, {len(CLASSES)} classes" in out and "Goiter" not in out


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        ("missing_labels", ["labels file not found"]),
        ("no_id_column", ["no id column"]),
        ("duplicate_id", ["duplicate id 'img001.png'"]),
        ("cell_2", ["row 2, column 'Mass'", "'2'"]),
        ("cell_yes", ["row 2, column 'Mass'", "'yes'"]),
        ("cell_nan_text", ["row 2, column 'Mass'", "'nan'"]),
        ("pred_nan", ["column 'Mass': NaN"]),
        ("pred_inf", ["column 'Mass': infinite value inf"]),
        ("pred_out_of_range", ["column 'Mass': value outside [0, 1] 1.5"]),
        ("pred_extra_id", ["1 ids in", "are not in the labels ('ghost.png')"]),
        ("labels_extra_id", ["1 ids in labels.csv have no prediction ('ghost.png')"]),
        ("pred_unknown_class", ["'Unicorn'", "not classes of label space 'cxrlt2026'"]),
        ("unknown_label_space", ["unknown label space 'nope'"]),
        ("labels_unknown_class", ["column 'Cardiomegally' is neither a class of label space 'cxrlt2026'"]),
    ],
)
def test_evaluate_bad_input_is_one_error_line(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str], edit: str, fragments: list[str]
) -> None:
    labels = pd.read_csv(data["labels"], dtype=str, keep_default_na=False)
    pred = pd.read_parquet(data["pred"])
    label_space = "cxrlt2026"
    if edit == "missing_labels":
        data["labels"].unlink()
    elif edit == "no_id_column":
        labels.rename(columns={"ImageID": "Name"}).to_csv(data["labels"], index=False)
    elif edit == "duplicate_id":
        labels.loc[2, "ImageID"] = "img001.png"
        labels.to_csv(data["labels"], index=False)
    elif edit.startswith("cell_"):
        labels.loc[0, "Mass"] = {"cell_2": "2", "cell_yes": "yes", "cell_nan_text": "nan"}[edit]
        labels.to_csv(data["labels"], index=False)
    elif edit.startswith("pred_") and edit != "pred_extra_id" and edit != "pred_unknown_class":
        pred.loc[0, "Mass"] = {"pred_nan": np.nan, "pred_inf": np.inf, "pred_out_of_range": 1.5}[edit]
        pred.to_parquet(data["pred"])
    elif edit == "pred_extra_id":
        pd.concat([pred, pred.iloc[[0]].assign(ImageID="ghost.png")]).to_parquet(data["pred"])
    elif edit == "labels_extra_id":
        pd.concat([labels, labels.iloc[[0]].assign(ImageID="ghost.png")]).to_csv(data["labels"], index=False)
    elif edit == "pred_unknown_class":
        pred.rename(columns={"Mass": "Unicorn"}).to_parquet(data["pred"])
    elif edit == "unknown_label_space":
        label_space = "nope"
    elif edit == "labels_unknown_class":
        labels.rename(columns={"cardiomegaly": "Cardiomegally"}).to_csv(data["labels"], index=False)
    code, out, err = run(
        capsys, "evaluate", "--pred", data["pred"], "--labels", data["labels"], "--label-space", label_space
    )
    assert code == 1 and out == ""
    assert_one_error_line(err, *fragments)


def test_evaluate_allow_extra_columns(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    labels = pd.read_csv(data["labels"], dtype=str, keep_default_na=False)
    labels.assign(Scanner="A").to_csv(data["labels"], index=False)
    code, _, err = run(
        capsys, "evaluate", "--pred", data["pred"], "--labels", data["labels"], "--label-space", "cxrlt2026"
    )
    assert code == 1 and "column 'Scanner' is neither a class" in err
    code, out, err = run(
        capsys, "evaluate", "--pred", data["pred"], "--labels", data["labels"], "--label-space", "cxrlt2026",
        "--allow-extra-columns",
    )  # fmt: skip
    assert code == 0 and "note: label columns ignored (not classes): ['Scanner']" in err and "mAP" in out


def test_data_check_clean_and_dirty(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "data", "check", "--labels", data["labels"], "--images", data["images"], "--label-space", "cxrlt2026"
    )
    assert code == 0, err
    assert f"{N} images, {N // 2} patients, {len(CLASSES)} classes" in out and "every image file present" in out
    assert "pneumoperitoneo" in out

    (data["images"] / "img004.png").unlink()
    (data["images"] / "img005.png").write_bytes(b"")
    labels = pd.read_csv(data["labels"], dtype=str, keep_default_na=False)
    labels.loc[1, "Nodule"] = "yes"
    labels["Pneumonia"] = "0"
    labels.to_csv(data["labels"], index=False)
    code, out, err = run(
        capsys, "data", "check", "--labels", data["labels"], "--images", data["images"], "--label-space", "cxrlt2026"
    )
    assert code == 1
    problems = out.strip().splitlines()
    assert len(problems) == 4
    assert any("column 'Pneumonia' is neither a class" in p for p in problems)
    assert any("row 3, column 'Nodule': label 'yes'" in p for p in problems)
    assert any("row 6, column 'ImageID'" in p and "img004.png not found" in p for p in problems)
    assert any("row 7, column 'ImageID'" in p and "img005.png is empty" in p for p in problems)
    assert_one_error_line(err, "4 problems")


def test_data_check_missing_file_is_one_error_line(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "data", "check", "--labels", data["dir"] / "absent.csv", "--images", data["images"])
    assert code == 1 and out == ""
    assert_one_error_line(err, "absent.csv: labels file not found")


def test_submission_write_then_validate(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    sub = data["dir"] / "sub" / "task2.csv"
    code, out, err = run(
        capsys, "submission", "write", "--pred", data["full"], "--task", 2, "--ids", data["test"], "--out", sub,
        "--goiter-spelling", "goiter", "--label-space", "cxrlt2026",
    )  # fmt: skip
    assert code == 0, err
    assert pd.read_csv(sub).columns[-1] == "goiter"
    code, out, err = run(
        capsys, "submission", "validate", sub, "--task", 2, "--ids", data["test"], "--label-space", "cxrlt2026"
    )
    assert code == 0 and "valid task 2 submission" in out, err

    frame = pd.read_csv(sub)
    pd.concat([frame.iloc[1:], frame.iloc[[2]]]).to_csv(sub, index=False)  # one row missing, one repeated
    code, out, err = run(
        capsys, "submission", "validate", sub, "--task", 2, "--ids", data["test"], "--label-space", "cxrlt2026"
    )
    assert code == 1
    assert len(out.strip().splitlines()) == 2 and "1 test ids have no row ('img000.png')" in out
    assert "duplicate id 'img002.png'" in out
    assert_one_error_line(err, "2 problems")


def test_submission_write_refuses_missing_rows(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    test = pd.read_csv(data["test"])
    pd.concat([test, pd.DataFrame({"ImageID": ["unseen.png"]})]).to_csv(data["test"], index=False)
    out_path = data["dir"] / "task1.csv"
    code, out, err = run(
        capsys, "submission", "write", "--pred", data["full"], "--task", 1, "--ids", data["test"], "--out", out_path,
        "--label-space", "cxrlt2026",
    )  # fmt: skip
    assert code == 1 and not out_path.exists()
    assert_one_error_line(err, "1 of 41 test ids have no prediction ('unseen.png')", "never zero-filled")


def test_submission_validate_missing_ids_file(data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "submission", "validate", data["test"], "--task", 1, "--ids", data["dir"] / "no.csv",
        "--label-space", "cxrlt2026",
    )  # fmt: skip
    assert code == 1
    assert_one_error_line(err, "no.csv: test ids file not found")


def test_building_the_parser_imports_no_torch():
    """``cxrlt --help`` stays fast: every command's ``register`` leaves torch (and open_clip) to the command itself."""
    import subprocess
    import sys

    code = (
        "import sys; from cxrlt_core.cli import build_parser; build_parser(); "
        "print(sorted({'torch', 'open_clip'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
