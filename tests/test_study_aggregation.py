"""Study-level view aggregation on a hand-made table (CXR-LT 2024 team F), and on a predictions file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.inference.study import aggregate_prediction_file, aggregate_studies, parse_view_weights

# study S1: two PA images and one lateral; S2: one AP image; row 4 has no study
SCORES = np.array([[0.2, 0.9], [0.4, 0.7], [0.9, 0.1], [0.5, 0.5], [0.3, 0.6]])
STUDY = ["S1", "S1", "S1", "S2", None]
VIEW = ["PA", "pa", "LATERAL", "AP", "PA"]


def test_mean_per_view_then_across_views_by_hand():
    out = aggregate_studies(SCORES, STUDY, VIEW)
    # S1: PA mean (0.3, 0.8), lateral (0.9, 0.1) -> (0.6, 0.45) for all three images
    np.testing.assert_allclose(out[:3], [[0.6, 0.45]] * 3)
    assert out[3].tolist() == [0.5, 0.5]  # a one-image study keeps its score
    assert out[4].tolist() == [0.3, 0.6]  # no study: unchanged
    assert SCORES[0].tolist() == [0.2, 0.9], "the input is not modified"


def test_view_weights_favour_the_frontal_view():
    out = aggregate_studies(SCORES, STUDY, VIEW, {"pa": 3.0})
    # (3 * (0.3, 0.8) + 1 * (0.9, 0.1)) / 4 = (0.45, 0.625)
    assert out[0].tolist() == pytest.approx([0.45, 0.625])
    without_view = aggregate_studies(SCORES, STUDY, None)
    assert without_view[0].tolist() == pytest.approx([0.5, 1.7 / 3])  # one view type: the plain study mean


def test_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="weight 0"):
        aggregate_studies(SCORES, STUDY, VIEW, {"PA": 0, "LATERAL": 0, "AP": 1})
    with pytest.raises(InputError, match="study"):
        aggregate_studies(SCORES, STUDY[:3], VIEW)
    assert parse_view_weights(["pa=2", "LATERAL=0.5"]) == {"PA": 2.0, "LATERAL": 0.5}
    for bad in ("PA", "PA=x", "=2", "PA=-1"):
        with pytest.raises(InputError, match="VIEW=WEIGHT"):
            parse_view_weights([bad])


def test_prediction_file_is_rewritten_from_manifest_metadata(tmp_path):
    from cxrlt_core.data.manifest import read_manifest
    from cxrlt_core.predictions import read_predictions, write_predictions

    ids = [f"i{k}.png" for k in range(5)]
    frame = pd.DataFrame({"ImageID": ids, "StudyID": ["S1", "S1", "S1", "S2", ""], "Projection": VIEW})
    frame["Nodule"], frame["Mass"] = 0, 1
    frame.to_csv(tmp_path / "test.csv", index=False)
    manifest = read_manifest(tmp_path / "test.csv", require_labels=False)
    classes = list(manifest.classes)
    assert classes == ["Nodule", "Mass"]
    a, c = 0, 1
    scores = SCORES
    write_predictions(tmp_path / "pred.parquet", ids, scores, classes, {"models": ["m"]})
    summary = aggregate_prediction_file(tmp_path / "pred.parquet", manifest)
    assert summary["studies"] == 2 and summary["images_in_studies"] == 4
    pred = read_predictions(tmp_path / "pred.parquet")
    np.testing.assert_allclose(pred.scores[:, [a, c]][:3], [[0.6, 0.45]] * 3)
    assert pred.metadata["models"] == ["m"] and pred.metadata["study_aggregation"]["studies"] == 2
