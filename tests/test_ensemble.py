"""Weighted ensembles: weights normalised, columns aligned by class name across shuffled label orders."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.inference.ensemble import align_columns, class_index, ensemble_probabilities, normalise_weights


def test_weights_are_normalised() -> None:
    np.testing.assert_allclose(normalise_weights([1.0, 1.5], 2), [0.4, 0.6])
    np.testing.assert_allclose(normalise_weights(None, 4), [0.25] * 4)
    np.testing.assert_allclose(normalise_weights([0, 2], 2), [0.0, 1.0])


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([1.0], "1 ensemble weights for 2 models"),
        ([1, -1], "non-negative"),
        ([0, 0], "sum to 0"),
        ([1, np.nan], "finite"),
    ],
)
def test_bad_weights_are_input_errors(weights: list[float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        normalise_weights(weights, 2)


def test_shuffled_label_orders_are_aligned_by_name() -> None:
    rng = np.random.default_rng(0)
    classes = ("Normal", "pleural effusion", "Nodule", "Support Devices")
    truth = [rng.uniform(size=(7, 4)) for _ in range(3)]
    orders = [np.arange(4), rng.permutation(4), rng.permutation(4)]
    shuffled = [p[:, order] for p, order in zip(truth, orders)]
    # Other spellings of the same classes (case, underscores) match too.
    names = [
        [classes[i] for i in orders[0]],
        [classes[i].upper() for i in orders[1]],
        [classes[i].replace(" ", "_") for i in orders[2]],
    ]
    out, out_classes = ensemble_probabilities(shuffled, names, weights=[1.0, 1.5, 2.5])
    assert out_classes == classes
    np.testing.assert_allclose(out, 0.2 * truth[0] + 0.3 * truth[1] + 0.5 * truth[2], rtol=1e-15)


def test_output_classes_can_be_chosen_and_extra_model_classes_dropped() -> None:
    a = np.array([[0.1, 0.2, 0.3]])
    b = np.array([[0.9, 0.5]])
    out, classes = ensemble_probabilities([a, b], [["x", "y", "z"], ["z", "x"]], classes=["x", "z"])
    assert classes == ("x", "z")
    np.testing.assert_allclose(out, [[(0.1 + 0.5) / 2, (0.3 + 0.9) / 2]])


def test_a_model_missing_a_class_is_named() -> None:
    with pytest.raises(InputError, match=r"csra\.safetensors does not predict classes \['Mass'\]"):
        class_index(["Normal", "Nodule"], ["Normal", "Mass"], "csra.safetensors")
    with pytest.raises(InputError, match="different numbers of images"):
        ensemble_probabilities([np.zeros((2, 1)), np.zeros((3, 1))], [["a"], ["a"]])
    with pytest.raises(InputError, match="expected"):
        align_columns(np.zeros((2, 3)), ["a", "b"], ["a"])
