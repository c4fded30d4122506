"""Predictions files: round trips with metadata, every bad cell, aligning to labels by id and class name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import get_label_space
from cxrlt_core.predictions import Predictions, align_to_labels, read_predictions, sidecar_path, write_predictions

IDS = ["a", "b", "c", "d"]
CLASSES = ["Normal", "Mass", "goiter"]


def _scores(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((len(IDS), len(CLASSES)))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_with_metadata(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pred{suffix}"
    metadata = {
        "models": ["csra", "mlp"],
        "weights": np.array([1.5, 1.0]),
        "tta": "medium",
        "gating": {"alpha": np.float32(0.5)},
        "label_space": get_label_space("cxrlt2026"),
    }
    scores = _scores()
    write_predictions(path, IDS, scores, CLASSES, metadata)
    pred = read_predictions(path)
    assert list(pred.ids) == IDS and pred.classes == tuple(CLASSES)
    np.testing.assert_array_equal(pred.scores, scores)  # exact: repr round-trips float64
    assert pred.metadata["models"] == ["csra", "mlp"] and pred.metadata["weights"] == [1.5, 1.0]
    assert pred.metadata["gating"] == {"alpha": 0.5}
    assert pred.metadata["label_space"]["name"] == "cxrlt2026"
    assert sidecar_path(path).is_file() == (suffix == ".csv")
    assert read_predictions(path, label_space="cxrlt2026").classes == ("Normal", "Mass", "Goiter")
    assert not list(tmp_path.glob(".*.tmp"))


def test_csv_without_sidecar_and_other_id_column(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("image,Mass\nx.png,0.25\ny.png,1\n")
    pred = read_predictions(path)
    assert pred.id_column == "image" and pred.metadata == {} and pred.scores[:, 0].tolist() == [0.25, 1.0]
    assert list(pred.frame().columns) == ["image", "Mass"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("nan", "NaN"),
        ("NaN", "NaN"),
        ("inf", "infinite value inf"),
        ("-inf", "infinite value -inf"),
        ("1.5", "value outside [0, 1] 1.5"),
        ("-0.01", "value outside [0, 1] -0.01"),
        ("", "blank probability"),
        ("high", "non-numeric value 'high'"),
    ],
)
def test_bad_csv_cell_names_row_and_column(tmp_path: Path, cell: str, expected: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"ImageID,Mass,Nodule\na,0.1,0.2\nb,0.3,{cell}\n")
    with pytest.raises(ValidationError) as info:
        read_predictions(path)
    assert info.value.problems == [f"{path}: row 3 (id 'b'), column 'Nodule': {expected}"]


@pytest.mark.parametrize(
    ("value", "expected"), [(np.nan, "NaN"), (np.inf, "infinite"), (2.0, r"value outside \[0, 1\] 2.0")]
)
def test_bad_parquet_value(tmp_path: Path, value: float, expected: str) -> None:
    path = tmp_path / "p.parquet"
    pd.DataFrame({"ImageID": ["a", "b"], "Mass": [0.5, value]}).to_parquet(path)
    with pytest.raises(ValidationError, match=rf"row 2 \(id 'b'\), column 'Mass': {expected}"):
        read_predictions(path)


def test_write_refuses_invalid_scores_and_shapes(tmp_path: Path) -> None:
    scores = _scores()
    scores[1, 2] = np.nan
    with pytest.raises(ValidationError, match="refusing to write"):
        write_predictions(tmp_path / "p.parquet", IDS, scores, CLASSES)
    with pytest.raises(InputError, match="shape"):
        write_predictions(tmp_path / "p.parquet", IDS[:3], _scores(), CLASSES)
    with pytest.raises(ValidationError, match="duplicate id 'a'"):
        write_predictions(tmp_path / "p.parquet", ["a", "a", "c", "d"], _scores(), CLASSES)
    with pytest.raises(InputError, match=".parquet or .csv"):
        write_predictions(tmp_path / "p.txt", IDS, _scores(), CLASSES)
    assert not list(tmp_path.iterdir())


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="predictions file not found"):
        read_predictions(tmp_path / "absent.csv")
    with pytest.raises(InputError, match=".parquet or .csv"):
        read_predictions(tmp_path / "p.json")
    (tmp_path / "dup.csv").write_text("ImageID,Mass\na,0.1\na,0.2\n")
    with pytest.raises(ValidationError, match="rows 2 and 3, column 'ImageID': duplicate id 'a'"):
        read_predictions(tmp_path / "dup.csv")
    (tmp_path / "noid.csv").write_text("Name,Mass\na,0.1\n")
    with pytest.raises(InputError, match="no id column"):
        read_predictions(tmp_path / "noid.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable parquet file"):
        read_predictions(tmp_path / "bad.parquet")
    write_predictions(tmp_path / "odd.csv", IDS, _scores(), ["Normal", "Mass", "Unicorn"])
    with pytest.raises(InputError, match=r"\['Unicorn'\] are not classes of label space 'cxrlt2026'"):
        read_predictions(tmp_path / "odd.csv", label_space="cxrlt2026")


def _labels(tmp_path: Path, ids: list[str]) -> Path:
    rows = "".join(f"{i},{k % 2},{(k + 1) % 2},{k % 2}\n" for k, i in enumerate(ids))
    path = tmp_path / "labels.csv"
    path.write_text("ImageID,normal,Mass,Goiter\n" + rows)
    return path


def test_align_matches_rows_by_id_and_classes_by_name(tmp_path: Path) -> None:
    manifest = read_manifest(_labels(tmp_path, IDS), label_space="cxrlt2026")
    order = [2, 0, 3, 1]
    raw = _scores()
    pred = Predictions(ids=np.array([IDS[k] for k in order], dtype=object), scores=raw[order], classes=tuple(CLASSES))
    scores, labels, classes = align_to_labels(pred, manifest)
    assert classes == ("Normal", "Mass", "Goiter")
    np.testing.assert_array_equal(scores, raw)
    np.testing.assert_array_equal(labels, manifest.labels)


def test_align_uses_shared_classes_in_label_space_order(tmp_path: Path) -> None:
    manifest = read_manifest(_labels(tmp_path, IDS), label_space="cxrlt2026")
    raw = _scores()[:, :2]
    pred = Predictions(ids=np.array(IDS, dtype=object), scores=raw[:, ::-1], classes=("Mass", "Normal"))
    scores, labels, classes = align_to_labels(pred, manifest)
    assert classes == ("Normal", "Mass")
    np.testing.assert_array_equal(scores, raw)
    np.testing.assert_array_equal(labels, manifest.labels[:, :2])


def test_align_id_on_one_side_is_an_error_both_ways(tmp_path: Path) -> None:
    manifest = read_manifest(_labels(tmp_path, IDS), label_space="cxrlt2026")
    extra = Predictions(ids=np.array([*IDS, "z"], dtype=object), scores=np.full((5, 3), 0.5), classes=tuple(CLASSES))
    with pytest.raises(InputError, match=r"^1 ids in predictions are not in the labels \('z'\)$"):
        align_to_labels(extra, manifest)
    short = Predictions(ids=np.array(IDS[:2], dtype=object), scores=np.full((2, 3), 0.5), classes=tuple(CLASSES))
    with pytest.raises(InputError, match=r"2 ids in labels.csv have no prediction \('c', 'd'\)"):
        align_to_labels(short, manifest)


def test_align_rejects_classes_outside_the_label_space(tmp_path: Path) -> None:
    manifest = read_manifest(_labels(tmp_path, IDS), label_space="cxrlt2026")
    pred = Predictions(ids=np.array(IDS, dtype=object), scores=np.full((4, 2), 0.5), classes=("Mass", "Unicorn"))
    with pytest.raises(InputError, match="Unicorn"):
        align_to_labels(pred, manifest)
    unshared = Predictions(ids=np.array(IDS, dtype=object), scores=np.full((4, 1), 0.5), classes=("Bulla",))
    with pytest.raises(InputError, match="share no class"):
        align_to_labels(unshared, manifest)


@pytest.mark.parametrize(
    ("ids", "second_column"), [(["a", "b"], "Nodule"), (["with,comma", 'with "quote"'], "needs,quoting")]
)
def test_csv_writer_round_trips_exactly_with_and_without_quoting(
    tmp_path: Path, ids: list[str], second_column: str
) -> None:
    scores = np.array([[1e-7, 1.0], [0.1, 0.30000000000000004]])
    write_predictions(tmp_path / "p.csv", ids, scores, ["Mass", second_column])
    pred = read_predictions(tmp_path / "p.csv")
    assert list(pred.ids) == ids and pred.classes == ("Mass", second_column)
    np.testing.assert_array_equal(pred.scores, scores)
    single = np.random.default_rng(0).random((2, 2)).astype(np.float32)
    write_predictions(tmp_path / "f.csv", ids, single, ["Mass", "Nodule"])
    np.testing.assert_array_equal(read_predictions(tmp_path / "f.csv").scores.astype(np.float32), single)
