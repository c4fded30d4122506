"""The input-shift check: Mahalanobis distances, the cross-fitted threshold, the sidecar file and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlt_core.cli import main
from cxrlt_core.errors import InputError
from cxrlt_core.shift import (
    ShiftModel,
    cross_fitted_distances,
    fit_shift,
    load_for_checkpoint,
    mahalanobis,
    pick_rows,
    shift_path,
)


def test_mahalanobis_matches_the_formula_by_hand() -> None:
    mean = np.array([1.0, -1.0])
    precision = np.array([[4.0, 0.0], [0.0, 0.25]])  # variances 1/4 and 4
    # (3 - 1)^2 * 4 + (1 + 1)^2 * 0.25 = 16 + 1 = 17
    assert mahalanobis(np.array([[3.0, 1.0]]), mean, precision)[0] == pytest.approx(np.sqrt(17.0))
    full = np.array([[2.0, 1.0], [1.0, 2.0]])
    d = np.array([1.0, 2.0])  # d^T P d = 2 + 2*2 + 8 = 14
    assert mahalanobis(mean + d, mean, full)[0] == pytest.approx(np.sqrt(14.0))


def test_threshold_separates_far_points_and_keeps_in_distribution_ones() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(600, 8)) * np.arange(1, 9)  # anisotropic: Euclidean distance would mislead
    fitted = fit_shift(train)
    # in 8 dimensions d^2 ~ chi^2(8): its 0.999 quantile is 26.1, so d ~ 5.1; times the margin 1.5: ~7.7
    assert 6.0 < fitted.threshold < 10.0
    same = rng.normal(size=(2000, 8)) * np.arange(1, 9)
    assert np.mean([r.shifted for r in fitted.check(same)]) < 0.005
    # a shift of 3 standard deviations along the first (narrow) axis is far; the same step along the widest is not
    narrow, wide = np.zeros((1, 8)), np.zeros((1, 8))
    narrow[0, 0], wide[0, 7] = 10.0, 10.0
    assert fitted.check(narrow)[0].shifted and not fitted.check(wide)[0].shifted
    assert fitted.info["n_images"] == 600 and fitted.info["dim"] == 8


def test_cross_fitted_distances_exceed_in_sample_ones() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 20))
    held_out = cross_fitted_distances(train)
    fitted = fit_shift(train)
    assert np.median(held_out) > np.median(fitted.distance(train))  # in-sample fits are optimistic
    with pytest.raises(InputError, match="at least 10"):
        cross_fitted_distances(train[:5])
    with pytest.raises(InputError, match="quantile"):
        fit_shift(train, quantile=1.0)


def test_file_round_trips_and_is_tied_to_its_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    fitted = fit_shift(rng.normal(size=(100, 4)), checkpoint_id="abc")
    checkpoint = tmp_path / "best.safetensors"
    assert shift_path(checkpoint) == tmp_path / "best.shift.safetensors"
    assert shift_path(tmp_path / "best.json") == tmp_path / "best.shift.safetensors"
    fitted.save(shift_path(checkpoint))
    again = load_for_checkpoint(checkpoint, {"checkpoint_id": "abc"})
    assert again is not None and again.threshold == fitted.threshold
    np.testing.assert_array_equal(again.precision, fitted.precision)
    assert load_for_checkpoint(checkpoint, {"checkpoint_id": "other"}) is None  # fitted for other weights
    assert load_for_checkpoint(tmp_path / "none.safetensors") is None
    shift_path(checkpoint).write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot read the shift file"):
        ShiftModel.load(shift_path(checkpoint))


def test_pick_rows_is_a_seeded_sorted_sample() -> None:
    assert list(pick_rows(5, 10)) == [0, 1, 2, 3, 4]
    rows = pick_rows(100, 10)
    assert len(rows) == 10 == len(set(rows)) and list(rows) == sorted(rows)
    np.testing.assert_array_equal(rows, pick_rows(100, 10))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A randomly initialised tiny model saved as a checkpoint, and a small demo data set."""
    import torch

    from cxrlt_core.data.demo import generate_demo_dataset
    from cxrlt_core.labels import get_label_space
    from cxrlt_core.models.checkpoint import save_checkpoint
    from cxrlt_core.models.classifier import ModelConfig, build_model

    root = tmp_path_factory.mktemp("shift")
    data = generate_demo_dataset(
        root / "data", n_train=40, n_val=0, n_test=10, image_size=64, workers=1, progress=lambda d, t: None
    )
    space = get_label_space("cxrlt2026")
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(backbone="convnextv2_atto", head="csra", class_names=list(space.in_distribution), input_size=32)
    )
    path = root / "run" / "checkpoints" / "best.safetensors"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, model, {})
    return {"checkpoint": path, "data": data}


@pytest.mark.slow
def test_cli_fits_the_check_and_flags_an_inverted_image(tiny_checkpoint: dict[str, Path], capsys, tmp_path) -> None:
    import cv2

    ckpt, data = tiny_checkpoint["checkpoint"], tiny_checkpoint["data"]
    args = ["shift", "fit", "--checkpoint", str(ckpt), "--csv", str(data / "train.csv"), "--images"]
    assert main([*args, str(data / "images"), "--no-progress"]) == 0
    assert "threshold" in capsys.readouterr().out and shift_path(ckpt).is_file()
    test_ids = pd.read_csv(data / "test.csv")["ImageID"]
    own = data / "images" / test_ids[0]
    # a film that is not a radiograph at all: a checkerboard
    board = (np.indices((64, 64)).sum(axis=0) // 8 % 2 * 4095).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "board.png"), board)
    assert main(["shift", "check", "--checkpoint", str(ckpt), str(own), str(tmp_path / "board.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "image,distance,threshold,verdict"
    assert lines[2].endswith("unlike the training data")
    assert main([*args, str(data / "images"), "--limit", "3"]) == 1
    assert "--limit must be at least 10" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_check_without_a_fitted_check_says_what_to_do(tiny_checkpoint: dict[str, Path], capsys) -> None:
    import shutil

    ckpt = tiny_checkpoint["checkpoint"]
    other = ckpt.with_name("last.safetensors")
    shutil.copy(ckpt, other)
    shutil.copy(ckpt.with_suffix(".json"), other.with_suffix(".json"))
    image = next((tiny_checkpoint["data"] / "images").glob("*.png"))
    assert main(["shift", "check", "--checkpoint", str(other), str(image)]) == 1
    assert "cxrlt shift fit" in capsys.readouterr().err
