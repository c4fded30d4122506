"""Label spaces: counts, order, names, column matching and head/medium/tail buckets."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.labels import (
    LabelSpace,
    assign_buckets,
    get_label_space,
    label_space_from_columns,
    label_space_from_csv,
    list_label_spaces,
    prevalence,
)


def test_registered_spaces():
    assert {"cxrlt2026", "cxrlt2024", "nih14"} <= set(list_label_spaces())
    with pytest.raises(InputError, match="cxrlt2026"):
        get_label_space("mimic99")


def test_cxrlt2026_counts_order_and_names():
    space = get_label_space("cxrlt2026")
    assert space.num_classes == 36
    assert len(space.in_distribution) == 30
    assert space.unseen == ("Scoliosis", "Osteopenia", "Bulla", "Infarction", "Adenopathy", "Goiter")
    ids = space.in_distribution
    assert (ids[0], ids[8], ids[19], ids[29]) == ("Normal", "Support Devices", "pneumoperitoneo", "calcified densities")
    assert space.normal == "Normal" and space.normal_index == 0
    assert space.classes[:30] == ids


def test_cxrlt2024_and_nih14():
    space = get_label_space("cxrlt2024")
    assert len(space.in_distribution) == 40 and len(space.unseen) == 5
    assert set(space.unseen) == {"Bulla", "Cardiomyopathy", "Hilum", "Osteopenia", "Scoliosis"}
    assert space.resolve("Rounded Atelectasis") == "Round(ed) Atelectasis"
    nih = get_label_space("nih14")
    assert nih.num_classes == 15 and nih.normal == "No Finding" and nih.unseen == ()
    assert nih.resolve("pleural thickening") == "Pleural_Thickening"


def test_resolve_is_case_insensitive_and_accepts_goiter_spellings():
    space = get_label_space("cxrlt2026")
    assert space.resolve("goiter") == "Goiter"
    assert space.resolve("GOITER") == "Goiter"
    assert space.resolve("Pleural Effusion") == "pleural effusion"
    assert space.resolve("pleural_effusion") == "pleural effusion"
    assert space.resolve("Lung Opacity") is None


def test_output_spelling_is_a_setting():
    space = get_label_space("cxrlt2026").with_output_names({"Goiter": "goiter"})
    assert space.output_name("Goiter") == "goiter"
    assert space.output_name("Bulla") == "Bulla"
    assert space.resolve("goiter") == "Goiter"
    assert LabelSpace.from_dict(space.to_dict()) == space


def test_match_columns_reports_double_naming():
    space = get_label_space("cxrlt2026")
    assert space.match_columns(["ImageID", "Goiter", "Bulla"]) == {"Goiter": "Goiter", "Bulla": "Bulla"}
    with pytest.raises(InputError, match="both name class 'Goiter'"):
        space.match_columns(["Goiter", "goiter"])


def test_invalid_label_space_definitions():
    with pytest.raises(InputError, match="repeats"):
        LabelSpace("x", ("A", "a"))
    with pytest.raises(InputError, match="unknown classes"):
        LabelSpace("x", ("A", "B"), unseen=("C",))
    with pytest.raises(InputError, match="Normal class"):
        LabelSpace("x", ("A", "B"), normal="Normal")


def test_label_space_from_header(tmp_path):
    space = label_space_from_columns(["ImageID", "StudyDate_DICOM", "PatientID", "No Finding", "Mass", "Nodule"])
    assert space.classes == ("No Finding", "Mass", "Nodule") and space.normal == "No Finding"
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("image,Effusion,Hernia\na.png,1,0\n")
    assert label_space_from_csv(csv_path).classes == ("Effusion", "Hernia")
    with pytest.raises(InputError, match="not found"):
        label_space_from_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        label_space_from_csv(tmp_path / "empty.csv")


def test_prevalence_ignores_unknown_labels():
    labels = np.array([[1, 0], [0, np.nan], [1, 1], [np.nan, 0]], dtype=float)
    np.testing.assert_allclose(prevalence(labels), [2 / 3, 1 / 3])


def test_buckets_follow_cxrlt_thresholds():
    n = 1000
    labels = np.zeros((n, 4))
    labels[:150, 0] = 1  # 15 %  -> head
    labels[:100, 1] = 1  # 10 %  -> medium (head is strictly above 10 %)
    labels[:10, 2] = 1  # 1 %   -> medium (tail is strictly below 1 %)
    labels[:9, 3] = 1  # 0.9 % -> tail
    buckets = assign_buckets(labels, ["a", "b", "c", "d"])
    assert buckets == {"a": "head", "b": "medium", "c": "medium", "d": "tail"}
    with pytest.raises(InputError, match="shape"):
        assign_buckets(labels, ["a", "b"])
