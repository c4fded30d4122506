"""Scoring rules against numpy on hand-made unit vectors."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlt_core.errors import InputError
from cxrlt_core.zeroshot.scoring import (
    SCORING_RULES,
    ClassEmbeddings,
    get_scoring_rule,
    mean_cosine,
    mean_embedding,
    pos_neg_softmax,
    sigmoid,
    unit_rows,
)

E = np.eye(3, dtype=np.float32)  # e0, e1, e2


def _images() -> np.ndarray:
    v = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [3.0, 4.0, 0.0]], dtype=np.float32)
    return v  # the last row is not unit length: rules normalise it to the second row


def _classes() -> list[ClassEmbeddings]:
    # Class A: two orthogonal prompts e0, e1 (mean norm 1/sqrt2); class B: e2 twice-ish (mean norm 1).
    return [
        ClassEmbeddings(positives=np.stack([E[0], E[1]]), negatives=E[2:3]),
        ClassEmbeddings(positives=np.stack([E[2], E[2]]), negatives=np.stack([E[0]])),
    ]


def test_sigmoid_matches_formula_and_saturates():
    x = np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0])
    np.testing.assert_allclose(sigmoid(x[1:4]), 1 / (1 + np.exp(-x[1:4])), rtol=1e-12)
    assert sigmoid(x)[0] == 0.0 and sigmoid(x)[-1] == 1.0


def test_mean_cosine_is_sigmoid_of_mean_cosine():
    v, classes = _images(), _classes()
    got = mean_cosine(v, classes, alpha=5.0)
    vhat = v / np.linalg.norm(v, axis=1, keepdims=True)
    expected = np.empty((4, 2))
    for c, cls in enumerate(classes):
        cos = vhat @ cls.positives.T  # (N, K)
        expected[:, c] = 1 / (1 + np.exp(-5.0 * cos.mean(axis=1)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Hand values: image e0 vs class A: mean cos = (1 + 0) / 2 = 0.5.
    assert got[0, 0] == pytest.approx(1 / (1 + np.exp(-2.5)))


def test_mean_embedding_differs_by_norm_of_the_mean():
    v, classes = _images(), _classes()
    alpha = 5.0
    a = mean_cosine(v, classes, alpha=alpha)
    b = mean_embedding(v, classes, alpha=alpha)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    norms = np.array([np.linalg.norm(c.positives.mean(axis=0)) for c in classes])
    np.testing.assert_allclose(norms, [1 / np.sqrt(2), 1.0])
    # σ⁻¹(mean_embedding) = σ⁻¹(mean_cosine) / ||m_c||
    np.testing.assert_allclose(logit(b), logit(a) / norms, rtol=1e-5, atol=1e-9)
    # Class B's prompts agree, so both rules give the same value there.
    np.testing.assert_allclose(a[:, 1], b[:, 1], rtol=1e-6)
    # Image e0 vs class A under mean_embedding: cos with (e0+e1)/sqrt2 = 1/sqrt2.
    assert b[0, 0] == pytest.approx(1 / (1 + np.exp(-alpha / np.sqrt(2))), rel=1e-6)


def test_pos_neg_softmax_is_two_way_softmax():
    v, classes = _images(), _classes()
    tau = 10.0
    got = pos_neg_softmax(v, classes, alpha=5.0, logit_scale=tau)
    vhat = v / np.linalg.norm(v, axis=1, keepdims=True)
    for c, cls in enumerate(classes):
        p = cls.positives.mean(axis=0)
        p /= np.linalg.norm(p)
        n = cls.negatives.mean(axis=0)
        n /= np.linalg.norm(n)
        logits = np.stack([tau * vhat @ p, tau * vhat @ n], axis=1)
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(got[:, c], soft[:, 0], rtol=1e-6)
    # Without a logit scale, alpha is the temperature.
    np.testing.assert_allclose(
        pos_neg_softmax(v, classes, alpha=7.0, logit_scale=None), pos_neg_softmax(v, classes, logit_scale=7.0)
    )


def test_pos_neg_softmax_needs_negatives():
    classes = [ClassEmbeddings(positives=E[:1])]
    with pytest.raises(InputError, match="negative prompts"):
        pos_neg_softmax(E, classes)


@pytest.mark.parametrize("name", SCORING_RULES.names())
def test_every_rule_is_probability_and_ranks_matching_image_first(name):
    rng = np.random.default_rng(0)
    prompts = unit_rows(rng.normal(size=(3, 5, 16)).reshape(15, 16)).reshape(3, 5, 16)
    # Negatives point away from the class's prompts, as "no <finding>" should.
    classes = [ClassEmbeddings(prompts[c], -prompts[c]) for c in range(3)]
    images = unit_rows(prompts.mean(axis=1))  # image c is the mean of class c's prompts
    scores = get_scoring_rule(name)(images, classes, 5.0, 10.0)
    assert scores.shape == (3, 3)
    assert np.all((scores > 0) & (scores < 1))
    assert np.array_equal(scores.argmax(axis=0), np.arange(3))


def test_width_mismatch_and_unknown_rule_are_clear():
    with pytest.raises(InputError, match="width"):
        mean_cosine(np.ones((2, 4)), [ClassEmbeddings(np.ones((1, 3)))])
    with pytest.raises(InputError, match="unknown scoring rule 'nope'; choose one of: mean_cosine"):
        get_scoring_rule("nope")


def test_zero_shot_vectorised_speed_shape():
    # 10k images x 6 classes: one matrix product; also checks float output dtype and no NaN.
    rng = np.random.default_rng(1)
    images = rng.normal(size=(10_000, 64)).astype(np.float32)
    classes = [ClassEmbeddings(rng.normal(size=(10, 64)), rng.normal(size=(2, 64))) for _ in range(6)]
    for name in SCORING_RULES.names():
        out = get_scoring_rule(name)(images, classes, 5.0, 100.0)
        assert out.shape == (10_000, 6) and np.isfinite(out).all()
