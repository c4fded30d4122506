"""Normal gating formulas on hand-made probabilities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.inference.gating import GATING_FORMS, GatingWarning, find_normal, normal_gating

CLASSES = ("Normal", "cardiomegaly", "Nodule")
PROBS = np.array([[0.8, 0.5, 0.2], [0.0, 0.9, 1.0], [1.0, 0.3, 0.7]])


def test_power_form_by_hand() -> None:
    out = normal_gating(PROBS, CLASSES, alpha=0.5, form="power")
    expected = np.array(
        [
            [0.8, 0.5 * np.sqrt(0.2), 0.2 * np.sqrt(0.2)],
            [0.0, 0.9, 1.0 - 1e-6],  # p_N = 0 leaves them, then the clip
            [1.0, 1e-6, 1e-6],  # p_N = 1 zeroes them, then the clip
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)


def test_linear_form_by_hand() -> None:
    out = normal_gating(PROBS, CLASSES, alpha=0.5, form="linear")
    expected = np.array([[0.8, 0.5 * 0.6, 0.2 * 0.6], [0.0, 0.9, 1.0 - 1e-6], [1.0, 0.15, 0.35]])
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("form", GATING_FORMS.names())
def test_alpha_zero_is_exactly_no_gating(form: str) -> None:
    out = normal_gating(PROBS, CLASSES, alpha=0.0, form=form)
    assert np.array_equal(out, PROBS)  # bit for bit, unclipped (0 and 1 survive)
    assert out is not PROBS


def test_input_is_not_modified_and_normal_column_is_kept() -> None:
    before = PROBS.copy()
    out = normal_gating(PROBS, CLASSES, alpha=1.0)
    assert np.array_equal(PROBS, before)
    assert np.array_equal(out[:, 0], PROBS[:, 0])


def test_gating_never_raises_a_probability() -> None:
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 0.99, size=(50, 3))
    for form in GATING_FORMS.names():
        assert np.all(normal_gating(probs, CLASSES, alpha=0.7, form=form)[:, 1:] <= probs[:, 1:])


def test_no_normal_class_warns_and_changes_nothing() -> None:
    classes = ("cardiomegaly", "Nodule", "Mass")
    with pytest.warns(GatingWarning, match="no Normal / No Finding class"):
        out = normal_gating(PROBS, classes, alpha=0.5)
    assert np.array_equal(out, PROBS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        normal_gating(PROBS, classes, alpha=0.0)  # α = 0 asks for nothing: no warning


def test_normal_column_is_found_by_name() -> None:
    assert find_normal(("Atelectasis", "No Finding")) == 1
    assert find_normal(("a", "NORMAL", "b")) == 1
    assert find_normal(("healthy", "b"), normal="healthy") == 0
    assert find_normal(("a", "b")) is None
    gated = normal_gating(PROBS, ("x", "y", "No Finding"), alpha=1.0, form="linear")
    np.testing.assert_allclose(gated[0], [0.8 * 0.8, 0.5 * 0.8, 0.2])


def test_bad_alpha_and_form_are_input_errors() -> None:
    with pytest.raises(InputError, match="alpha >= 0"):
        normal_gating(PROBS, CLASSES, alpha=-0.1)
    with pytest.raises(InputError, match="0 <= alpha <= 1"):
        normal_gating(PROBS, CLASSES, alpha=1.5, form="linear")
    with pytest.raises(InputError, match="unknown gating form"):
        normal_gating(PROBS, CLASSES, form="sqrt")
    with pytest.raises(InputError, match="shape"):
        normal_gating(PROBS[:, :2], CLASSES)
