"""Manifests: every kind of label cell, ids, patients, class matching, image checks, the real NIH CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.data.manifest import parse_label_cells, read_manifest, resolve_image
from cxrlt_core.errors import InputError, ValidationError
from cxrlt_core.labels import get_label_space

NAN = np.nan


def write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("policy", "uncertain_value"), [("ignore", NAN), ("zero", 0.0), ("one", 1.0)])
def test_each_good_cell_kind(tmp_path: Path, policy: str, uncertain_value: float) -> None:
    csv = write(tmp_path, "ImageID,PatientID,Mass,Nodule\na,p1,1,0\nb,p1,1.0,0.0\nc,p2,,-1\nd,p3,-1.0, 1 \n")
    manifest = read_manifest(csv, label_space="cxrlt2026", uncertain=policy)
    assert manifest.classes == ("Nodule", "Mass")  # label-space order, not file order
    expected = np.array([[0, 1], [0, 1], [uncertain_value, NAN], [1, uncertain_value]], dtype=np.float32)
    np.testing.assert_array_equal(manifest.labels, expected)
    assert manifest.labels.dtype == np.float32


@pytest.mark.parametrize("cell", ["2", "yes", "nan", "0.5", "NA", "true"])
def test_bad_cell_names_file_row_and_column(tmp_path: Path, cell: str) -> None:
    csv = write(tmp_path, f"ImageID,Mass,Nodule\na,1,0\nb,0,{cell}\n")
    with pytest.raises(ValidationError) as info:
        read_manifest(csv, label_space="cxrlt2026")
    message = str(info.value)
    assert str(csv) in message and "row 3" in message and "column 'Nodule'" in message and repr(cell) in message
    assert len(info.value.problems) == 1


def test_every_bad_cell_is_collected(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,Mass,Nodule\na,2,yes\nb,0,1\nc,x,0\n")
    with pytest.raises(ValidationError) as info:
        read_manifest(csv, label_space="cxrlt2026")
    problems = info.value.problems
    assert len(problems) == 3
    assert any("row 2, column 'Mass'" in p for p in problems)
    assert any("row 2, column 'Nodule'" in p for p in problems)
    assert any("row 4, column 'Mass'" in p for p in problems)


def test_problem_list_is_capped(tmp_path: Path) -> None:
    rows = "".join(f"i{k},2\n" for k in range(100))
    with pytest.raises(ValidationError) as info:
        read_manifest(write(tmp_path, "ImageID,Mass\n" + rows), label_space="cxrlt2026")
    assert len(info.value.problems) == 21 and info.value.problems[-1] == "... and 80 more bad label cells"
    assert str(info.value).startswith(f"{tmp_path / 'labels.csv'}: 100 problems: ")


def test_parse_label_cells_vector() -> None:
    values, bad = parse_label_cells(["1", "1.0", "0", "0.0", "", "-1", "2", "nan"], uncertain="one")
    np.testing.assert_array_equal(values[:6], [1, 1, 0, 0, NAN, 1])
    assert bad.tolist() == [False] * 6 + [True, True]
    with pytest.raises(InputError, match="uncertain-label policy"):
        parse_label_cells(["1"], uncertain="maybe")


def test_patient_id_is_kept_as_the_given_string(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,PatientID,Mass\na,1234.0,1\nb,1234,0\nc,0012,0\nd,,1\n")
    manifest = read_manifest(csv, label_space="cxrlt2026")
    assert manifest.patient_column == "PatientID"
    assert list(manifest.patients) == ["1234.0", "1234", "0012", None]
    assert manifest.meta["PatientID"].tolist() == ["1234.0", "1234", "0012", ""]


def test_duplicate_ids_name_both_rows(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,Mass\na,1\nb,0\na,0\n")
    with pytest.raises(ValidationError, match=r"rows 2 and 4, column 'ImageID': duplicate id 'a'"):
        read_manifest(csv, label_space="cxrlt2026")


def test_blank_id_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"row 3, column 'ImageID': blank id"):
        read_manifest(write(tmp_path, "ImageID,Mass\na,1\n,0\n"), label_space="cxrlt2026")


def test_missing_id_column(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no id column"):
        read_manifest(write(tmp_path, "Name,Mass\na,1\n"), label_space="cxrlt2026")
    with pytest.raises(InputError, match="id column 'Other' not found"):
        read_manifest(write(tmp_path, "ImageID,Mass\na,1\n"), label_space="cxrlt2026", id_column="Other")


def test_missing_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="labels file not found"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="empty file"):
        read_manifest(write(tmp_path, ""))
    with pytest.raises(InputError, match="no data rows"):
        read_manifest(write(tmp_path, "ImageID,Mass\n"))
    with pytest.raises(InputError, match="not a file"):
        read_manifest(tmp_path)


def test_truncated_row_and_repeated_header(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 3 has 2 fields, the header has 3"):
        read_manifest(write(tmp_path, "ImageID,Mass,Nodule\na,1,0\nb,1\n"), label_space="cxrlt2026")
    with pytest.raises(InputError, match="column 'Mass' appears twice"):
        read_manifest(write(tmp_path, "ImageID,Mass,Mass\na,1,0\n"), label_space="cxrlt2026")


def test_column_outside_the_label_space_is_reported(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,PatientID,Projection,Mass,Pneumonia\na,p,PA,1,0\n")
    manifest = read_manifest(csv, label_space="cxrlt2026")
    assert manifest.classes == ("Mass",)
    assert manifest.extra_columns == ("Pneumonia",)
    assert "Goiter" in manifest.missing_classes and len(manifest.missing_classes) == 35
    with pytest.raises(ValidationError, match="column 'Pneumonia' is neither a class of label space 'cxrlt2026'"):
        read_manifest(csv, label_space="cxrlt2026", strict_columns=True)


def test_columns_match_case_insensitively_and_goiter_both_ways(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,goiter,MASS,normal\na,1,0,0\nb,0,1,0\n")
    manifest = read_manifest(csv, label_space="cxrlt2026")
    assert manifest.classes == ("Normal", "Mass", "Goiter")
    np.testing.assert_array_equal(manifest.labels, [[0, 0, 1], [0, 1, 0]])
    assert list(manifest.label_frame().columns) == ["ImageID", "Normal", "Mass", "Goiter"]
    with pytest.raises(InputError, match="both name class 'Goiter'"):
        read_manifest(write(tmp_path, "ImageID,goiter,Goiter\na,1,0\n"), label_space="cxrlt2026")


def test_label_space_from_header_and_ids_only_csv(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "ImageID,PatientID,Zeta,Alpha,No Finding\na,p,1,0,0\n"))
    assert manifest.classes == ("Zeta", "Alpha", "No Finding")
    assert manifest.label_space.normal == "No Finding"
    test = write(tmp_path, "ImageID\nx\ny\n", "test.csv")
    with pytest.raises(InputError, match="no column names a class"):
        read_manifest(test, label_space="cxrlt2026")
    ids_only = read_manifest(test, label_space="cxrlt2026", require_labels=False)
    assert ids_only.labels.shape == (2, 0) and list(ids_only.ids) == ["x", "y"]
    assert read_manifest(test, require_labels=False).classes == ()


def test_id_column_auto_detection_order(tmp_path: Path) -> None:
    manifest = read_manifest(write(tmp_path, "Path,dicom_id,Mass\nf/a.jpg,d1,1\n"), label_space="cxrlt2026")
    assert manifest.id_column == "Path" and manifest.ids[0] == "f/a.jpg"


def test_check_images_missing_and_empty(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG not really")
    (images / "b.png").write_bytes(b"")
    (images / "d.jpg").write_bytes(b"jpeg")
    csv = write(tmp_path, "ImageID,Mass\na.png,1\nb.png,0\nc.png,0\nd,1\n")
    with pytest.raises(ValidationError) as info:
        read_manifest(csv, images, label_space="cxrlt2026", check_images=True)
    problems = info.value.problems
    assert len(problems) == 2
    assert "row 3, column 'ImageID'" in problems[0] and "b.png is empty" in problems[0]
    assert "row 4, column 'ImageID'" in problems[1] and "c.png not found" in problems[1]
    manifest = read_manifest(csv, images, label_space="cxrlt2026")  # no check: reads fine
    assert manifest.image_path(3) == images / "d.jpg"  # extension found on disk
    assert resolve_image(images, "1.2.840.5") == images / "1.2.840.5"  # dots are not an extension


def test_check_images_wrong_folder_hint(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,Mass\na.png,1\nb.png,0\n")
    with pytest.raises(ValidationError, match="is it the right image folder"):
        read_manifest(csv, tmp_path, label_space="cxrlt2026", check_images=True)


def test_subset_keeps_rows_aligned(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,PatientID,Mass\na,p1,1\nb,p2,0\nc,p3,\n")
    manifest = read_manifest(csv, label_space="cxrlt2026")
    part = manifest.subset([2, 0])
    assert list(part.ids) == ["c", "a"] and list(part.patients) == ["p3", "p1"]
    assert part.meta["ImageID"].tolist() == ["c", "a"]
    np.testing.assert_array_equal(part.labels[:, 0], [NAN, 1])
    assert len(manifest.subset(np.array([True, False, True]))) == 2


def test_meta_csv_join(tmp_path: Path) -> None:
    labels = write(tmp_path, "image,Mass\na,1\nb,0\n")
    meta = write(tmp_path, "image,Patient ID,Patient Age\nb,7,40\na,5,30\n", "meta.csv")
    manifest = read_manifest(labels, label_space="cxrlt2026", meta_csv=meta)
    assert manifest.patient_column == "Patient ID" and list(manifest.patients) == ["5", "7"]
    with pytest.raises(InputError, match="1 ids of the labels file are missing"):
        read_manifest(labels, label_space="cxrlt2026", meta_csv=write(tmp_path, "image,Patient ID\na,5\n", "m2.csv"))


def test_real_nih_labels_and_images(shared_data: Path) -> None:
    folder = shared_data / "nih-cxr14-64px"
    manifest = read_manifest(
        folder / "labels.csv",
        folder / "images",
        label_space="nih14",
        check_images=True,
        meta_csv=folder / "meta.csv",
    )
    assert len(manifest) == 602 and manifest.id_column == "image"
    assert manifest.classes == get_label_space("nih14").classes and manifest.missing_classes == ()
    assert manifest.extra_columns == ()
    positives = manifest.positives()
    assert positives["No Finding"] == 314 and positives["Effusion"] == 106 and positives["Hernia"] == 0
    assert len(set(manifest.patients)) == 160
    assert manifest.image_path(0).is_file()
