"""Canonical manifest metadata: PadChest, NIH and demo spellings, a user column map, the real NIH meta.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlt_core.data.manifest import read_manifest
from cxrlt_core.data.metadata import ALL_METADATA_COLUMNS, CANONICAL, parse_column_map
from cxrlt_core.errors import InputError
from cxrlt_core.labels import DEFAULT_META_COLUMNS


def write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_padchest_columns_and_age_from_birth_year(tmp_path: Path) -> None:
    csv = write(
        tmp_path,
        "ImageID,PatientID,StudyID,PatientSex_DICOM,PatientBirth,StudyDate_DICOM,Projection,Mass\n"
        "a,p1,s1,M,1950.0,20150602,PA,1\n"
        "b,p1,s1,M,1950.0,20150602,L,0\n"
        "c,p2,s2,F,1980,20120101,AP_horizontal,0\n"
        "d,p3,s3,O,,20120101,,0\n",
    )
    manifest = read_manifest(csv, label_space="cxrlt2026", strict_columns=True)
    meta = manifest.metadata()
    assert list(meta.columns) == list(CANONICAL)
    assert meta["sex"].tolist() == ["M", "M", "F", None]  # "O" is neither
    np.testing.assert_array_equal(meta["age"].to_numpy(), [65.0, 65.0, 32.0, np.nan])
    assert meta["view"].tolist() == ["PA", "LATERAL", "AP", None]
    assert meta["study"].tolist() == ["s1", "s1", "s2", "s3"]
    assert meta["site"].isna().all()


def test_nih_columns(tmp_path: Path) -> None:
    csv = write(
        tmp_path,
        "Image Index,Patient ID,Patient Age,Patient Gender,View Position,Mass\n"
        "x.png,7,058Y,F,PA,1\ny.png,8,61,M,AP,0\nz.png,9,6M,M,AP,0\n",
    )
    meta = read_manifest(csv, label_space="nih14", strict_columns=True).metadata()
    assert meta["sex"].tolist() == ["F", "M", "M"]
    np.testing.assert_allclose(meta["age"].to_numpy(), [58.0, 61.0, 0.5])
    assert meta["view"].tolist() == ["PA", "AP", "AP"]
    assert meta["study"].isna().all()


def test_demo_columns_are_metadata_not_classes(tmp_path: Path) -> None:
    csv = write(
        tmp_path,
        "ImageID,PatientID,StudyID,PatientSex,PatientAge,Projection,Site,Mass,Nodule\n"
        "a,p1,s1,F,44,PA,site_A,1,0\nb,p2,s2,M,71,AP,site_B,0,1\n",
    )
    manifest = read_manifest(csv)  # label space inferred from the header
    assert manifest.classes == ("Mass", "Nodule")
    meta = manifest.metadata()
    assert meta.to_dict("list") == {
        "sex": ["F", "M"], "age": [44.0, 71.0], "view": ["PA", "AP"], "site": ["site_A", "site_B"],
        "study": ["s1", "s2"],
    }  # fmt: skip


def test_user_column_map(tmp_path: Path) -> None:
    csv = write(tmp_path, "ImageID,PatientID,Geschlecht,Klinik,Mass\na,p1,female,Nord,1\nb,p2,MALE,Sud,0\n")
    manifest = read_manifest(
        csv, metadata_columns={"sex": "Geschlecht", "site": "Klinik"}, strict_columns=True, label_space="cxrlt2026"
    )
    meta = manifest.metadata()
    assert meta["sex"].tolist() == ["F", "M"]
    assert meta["site"].tolist() == ["Nord", "Sud"]
    with pytest.raises(InputError, match="'Alter' is not in the file"):
        manifest.metadata({"age": "Alter"})
    with pytest.raises(InputError, match="unknown field"):
        parse_column_map("weight=Gewicht")
    assert parse_column_map("sex=Geschlecht, site=Klinik") == {"sex": "Geschlecht", "site": "Klinik"}


def test_every_alias_is_known_metadata() -> None:
    folded = {c.lower() for c in DEFAULT_META_COLUMNS}
    assert [c for c in ALL_METADATA_COLUMNS if c.lower() not in folded] == []


def test_real_nih_meta(shared_data: Path) -> None:
    root = shared_data / "nih-cxr14-64px"
    manifest = read_manifest(root / "labels.csv", label_space="nih14", meta_csv=root / "meta.csv")
    meta = manifest.metadata()
    assert set(meta["sex"].dropna()) == {"M", "F"}
    assert set(meta["view"].dropna()) <= {"PA", "AP"}
    assert meta["age"].notna().all() and meta["age"].between(0, 100).all()
