"""Submission files: a valid file passes; each way a file can be rejected produces a problem; writes refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import get_label_space
from cxrlt_core.predictions import Predictions
from cxrlt_core.submission import (
    submission_columns,
    submission_from_predictions,
    task_classes,
    validate_submission,
    write_submission,
)

SPACE = get_label_space("cxrlt2026")
TEST_IDS = [f"img{k}.png" for k in range(8)]


def _ids_csv(tmp_path: Path) -> Path:
    path = tmp_path / "test.csv"
    path.write_text("ImageID,StudyDate_DICOM\n" + "".join(f"{i},2020\n" for i in TEST_IDS))
    return path


def _frame(task: int, spelling: str = "Goiter") -> pd.DataFrame:
    space = SPACE.with_output_names({"Goiter": spelling})
    columns = submission_columns(space, task)
    scores = np.random.default_rng(task).random((len(TEST_IDS), len(columns) - 1))
    frame = pd.DataFrame(scores, columns=columns[1:])
    frame.insert(0, "ImageID", TEST_IDS)
    return frame


def _save(tmp_path: Path, frame: pd.DataFrame, **kwargs: object) -> Path:
    path = tmp_path / "sub.csv"
    frame.to_csv(path, index=kwargs.pop("index", False))
    return path


def test_task_columns() -> None:
    assert len(task_classes(SPACE, 1)) == 30 and task_classes(SPACE, 2)[-1] == "Goiter"
    assert submission_columns(SPACE, 2) == [
        "ImageID",
        "Scoliosis",
        "Osteopenia",
        "Bulla",
        "Infarction",
        "Adenopathy",
        "Goiter",
    ]
    assert submission_columns(SPACE.with_output_names({"Goiter": "goiter"}), 2)[-1] == "goiter"
    with pytest.raises(InputError, match="unknown task"):
        task_classes(SPACE, 3)


@pytest.mark.parametrize("task", [1, 2])
def test_valid_file_passes(tmp_path: Path, task: int) -> None:
    path = _save(tmp_path, _frame(task).sample(frac=1.0, random_state=0))  # row order is free
    assert validate_submission(path, task, _ids_csv(tmp_path), "cxrlt2026") == []
    assert validate_submission(path, task, TEST_IDS, SPACE) == []


def test_goiter_spelling_accepted_both_ways_unless_strict(tmp_path: Path) -> None:
    path = _save(tmp_path, _frame(2, spelling="goiter"))
    assert validate_submission(path, 2, TEST_IDS, SPACE) == []
    strict = validate_submission(path, 2, TEST_IDS, SPACE, strict_spelling=True)
    assert strict == [f"{path}: column 7 'goiter' should be spelled 'Goiter'"]


def test_missing_duplicate_and_extra_rows(tmp_path: Path) -> None:
    frame = _frame(1)
    missing = _save(tmp_path, frame.drop(index=[3]))
    assert validate_submission(missing, 1, TEST_IDS, SPACE) == [f"{missing}: 1 test ids have no row ('img3.png')"]
    duplicate = _save(tmp_path, pd.concat([frame, frame.iloc[[2]]]))
    assert validate_submission(duplicate, 1, TEST_IDS, SPACE) == [
        f"{duplicate}: rows 4 and 10, column 'ImageID': duplicate id 'img2.png'"
    ]
    extra_row = frame.iloc[[0]].assign(ImageID="stranger.png")
    extra = _save(tmp_path, pd.concat([frame, extra_row]))
    assert validate_submission(extra, 1, TEST_IDS, SPACE) == [
        f"{extra}: 1 rows have an id that is not a test id ('stranger.png')"
    ]


def test_other_casing_is_reported(tmp_path: Path) -> None:
    path = _save(tmp_path, _frame(1).rename(columns={"Normal": "normal", "Support Devices": "support devices"}))
    assert validate_submission(path, 1, TEST_IDS, SPACE) == [
        f"{path}: column 2 'normal' should be spelled 'Normal'",
        f"{path}: column 10 'support devices' should be spelled 'Support Devices'",
    ]


def test_misspelt_missing_and_reordered_columns(tmp_path: Path) -> None:
    frame = _frame(1)
    misspelt = _save(tmp_path, frame.rename(columns={"cardiomegaly": "cardiomegally"}))
    problems = validate_submission(misspelt, 1, TEST_IDS, SPACE)
    assert f"{misspelt}: column 4 'cardiomegally' is not a class of task 1 (misspelt or extra column?)" in problems
    assert f"{misspelt}: 1 class columns missing: 'cardiomegaly'" in problems
    columns = list(frame.columns)
    columns[2], columns[3] = columns[3], columns[2]
    swapped = _save(tmp_path, frame[columns])
    assert validate_submission(swapped, 1, TEST_IDS, SPACE) == [
        f"{swapped}: class columns out of label-space order from column 3: expected 'aortic elongation', "
        "found 'cardiomegaly'"
    ]
    other_task = _save(tmp_path, frame.assign(Bulla=0.5))
    assert validate_submission(other_task, 1, TEST_IDS, SPACE) == [
        f"{other_task}: column 32 'Bulla' is a class of the other task, not of task 1"
    ]


def test_index_column_and_id_position(tmp_path: Path) -> None:
    indexed = _save(tmp_path, _frame(2), index=True)
    assert validate_submission(indexed, 2, TEST_IDS, SPACE) == [
        f"{indexed}: column 1 '' looks like an index column (write with index=False)",
        f"{indexed}: 'ImageID' must be column 1, it is column 2",
    ]
    frame = _frame(2)
    moved = _save(tmp_path, frame[[*frame.columns[1:], "ImageID"]])
    assert f"{moved}: 'ImageID' must be column 1, it is column 7" in validate_submission(moved, 2, TEST_IDS, SPACE)
    no_id = _save(tmp_path, frame.drop(columns=["ImageID"]))
    assert f"{no_id}: no 'ImageID' column" in validate_submission(no_id, 2, TEST_IDS, SPACE)


@pytest.mark.parametrize(("value", "expected"), [(np.nan, "NaN"), (np.inf, "infinite value inf"), (1.01, "outside")])
def test_bad_probabilities(tmp_path: Path, value: float, expected: str) -> None:
    frame = _frame(2)
    frame.loc[5, "Bulla"] = value
    path = _save(tmp_path, frame)
    problems = validate_submission(path, 2, TEST_IDS, SPACE)
    assert len(problems) == 1 and "row 7 (id 'img5.png'), column 'Bulla'" in problems[0] and expected in problems[0]


def test_unreadable_submission_is_a_problem_but_bad_ids_raise(tmp_path: Path) -> None:
    assert validate_submission(tmp_path / "absent.csv", 1, TEST_IDS, SPACE) == [
        f"{tmp_path / 'absent.csv'}: submission file not found"
    ]
    with pytest.raises(InputError, match="test ids file not found"):
        validate_submission(tmp_path / "absent.csv", 1, tmp_path / "nope.csv", SPACE)
    with pytest.raises(ValidationError, match="duplicate id"):
        validate_submission(tmp_path / "absent.csv", 1, ["a", "a"], SPACE)


def test_write_round_trip_and_goiter_setting(tmp_path: Path) -> None:
    space = SPACE.with_output_names({"Goiter": "goiter"})
    scores = np.random.default_rng(0).random((len(TEST_IDS), 6)).astype(np.float32)
    path = write_submission(tmp_path / "task2.csv", TEST_IDS, scores, space, task=2, test_ids=_ids_csv(tmp_path))
    frame = pd.read_csv(path)
    assert list(frame.columns) == submission_columns(space, 2) and frame.columns[-1] == "goiter"
    np.testing.assert_allclose(frame.iloc[:, 1:].to_numpy(), scores, rtol=1e-7)
    assert validate_submission(path, 2, TEST_IDS, space, strict_spelling=True) == []


def test_write_refuses_invalid_and_leaves_nothing(tmp_path: Path) -> None:
    scores = np.full((len(TEST_IDS), 6), 0.5)
    scores[0, 0] = 1.5
    target = tmp_path / "sub.csv"
    with pytest.raises(ValidationError, match=r"refusing to write .*row 2 \(id 'img0.png'\), column 'Scoliosis'"):
        write_submission(target, TEST_IDS, scores, SPACE, task=2)
    with pytest.raises(ValidationError, match="1 test ids have no row"):
        write_submission(target, TEST_IDS[:-1], scores[:-1] * 0.5, SPACE, task=2, test_ids=TEST_IDS)
    with pytest.raises(InputError, match="shape"):
        write_submission(target, TEST_IDS, scores[:, :5], SPACE, task=2)
    with pytest.raises(InputError, match="is a .csv file"):
        write_submission(tmp_path / "sub.parquet", TEST_IDS, scores * 0.5, SPACE, task=2)
    assert list(tmp_path.iterdir()) == []


def test_submission_from_predictions(tmp_path: Path) -> None:
    classes = SPACE.classes
    rng = np.random.default_rng(0)
    pred_ids = np.array([*TEST_IDS[::-1], "dev0.png"], dtype=object)
    scores = rng.random((len(pred_ids), len(classes)))
    pred = Predictions(ids=pred_ids, scores=scores, classes=tuple(c.upper() for c in classes))
    rows = submission_from_predictions(pred, _ids_csv(tmp_path), SPACE, task=2)
    assert list(rows.ids) == TEST_IDS and rows.classes == task_classes(SPACE, 2) and rows.n_ignored == 1
    np.testing.assert_array_equal(rows.scores, scores[len(TEST_IDS) - 1 :: -1][:, 30:])
    short = Predictions(ids=pred_ids[:5], scores=scores[:5], classes=classes)
    with pytest.raises(InputError, match="3 of 8 test ids have no prediction .* never zero-filled"):
        submission_from_predictions(short, TEST_IDS, SPACE, task=1)
    task1_only = Predictions(ids=pred_ids, scores=scores[:, :30], classes=classes[:30])
    with pytest.raises(InputError, match="no column for 6 task 2 classes"):
        submission_from_predictions(task1_only, TEST_IDS, SPACE, task=2)
