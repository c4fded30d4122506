"""Repeat-factor sampling: factors computed by hand on a tiny label matrix, epoch lengths, rounding, rank sharding."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from cxrlt_core.data.sampler import RepeatFactorSampler, build_train_sampler, class_frequencies, repeat_factors
from cxrlt_core.errors import InputError

NAN = float("nan")
# 8 images x 3 classes: class 0 has 4 positives, classes 1 and 2 one each; 6 positive labels in all.
LABELS = np.array(
    [
        [1, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [1, 0, NAN],  # an unknown cell is not a positive
        [0, 0, 1],
        [0, 0, 0],
        [0, NAN, 0],
        [0, 0, 0],
    ],
    dtype=np.float32,
)


def test_class_frequencies_both_definitions():
    np.testing.assert_allclose(class_frequencies(LABELS, "share_of_positives"), [4 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(class_frequencies(LABELS, "image_prevalence"), [4 / 8, 1 / 8, 1 / 8])


def test_repeat_factors_share_of_positives_by_hand():
    # r(c) = max(1, sqrt(0.5 / f_c)) = [1, sqrt(3), sqrt(3)]; image 2 has classes 0 and 1 -> max = sqrt(3)
    r = repeat_factors(LABELS, T=0.5, r_max=10, frequency="share_of_positives")
    s3 = math.sqrt(3)
    np.testing.assert_allclose(r, [1, 1, s3, 1, s3, 1, 1, 1])


def test_repeat_factors_image_prevalence_by_hand():
    # r(c) = max(1, sqrt(0.5 / [0.5, 0.125, 0.125])) = [1, 2, 2]
    r = repeat_factors(LABELS, T=0.5, r_max=10, frequency="image_prevalence")
    np.testing.assert_allclose(r, [1, 1, 2, 1, 2, 1, 1, 1])


def test_repeat_factors_cap_and_threshold():
    np.testing.assert_allclose(repeat_factors(LABELS, T=0.5, r_max=1.5, frequency="image_prevalence").max(), 1.5)
    # a threshold below every frequency repeats nothing
    np.testing.assert_allclose(repeat_factors(LABELS, T=0.01), np.ones(8))


def test_repeat_factors_class_without_positives_and_errors():
    labels = np.array([[1, 0], [0, 0]], dtype=np.float32)  # class 1 never positive
    # f = [1/2, 0]: r(0) = sqrt(0.9 / 0.5); class 1 (f = 0) never decides a factor
    np.testing.assert_allclose(repeat_factors(labels, T=0.9, frequency="image_prevalence"), [math.sqrt(1.8), 1.0])
    with pytest.raises(InputError):
        repeat_factors(LABELS, T=0)
    with pytest.raises(InputError):
        repeat_factors(LABELS, r_max=0.5)
    with pytest.raises(InputError):
        repeat_factors(LABELS, frequency="per_class")


def test_deterministic_epoch_repeats_round_half_up():
    sampler = RepeatFactorSampler(np.array([1.0, 1.49, 1.5, 2.6, 10.0]), num_replicas=1, rank=0)
    np.testing.assert_array_equal(sampler.repeats(), [1, 1, 2, 3, 10])
    assert len(sampler) == 17
    assert Counter(sampler) == Counter({0: 1, 1: 1, 2: 2, 3: 3, 4: 10})


def test_shuffle_depends_on_epoch_and_seed_only():
    factors = np.full(50, 2.0)
    a = RepeatFactorSampler(factors, seed=3, num_replicas=1, rank=0)
    b = RepeatFactorSampler(factors, seed=3, num_replicas=1, rank=0)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    assert Counter(a) == Counter(b)  # same multiset, other order


def test_stochastic_rounding_expected_count():
    sampler = RepeatFactorSampler(np.array([1.0, 1.25, 2.5]), rounding="stochastic", seed=0, num_replicas=1, rank=0)
    counts = np.array([sampler.repeats(epoch) for epoch in range(4000)])
    np.testing.assert_allclose(counts.mean(axis=0), [1.0, 1.25, 2.5], atol=0.03)
    assert set(np.unique(counts[:, 2])) == {2, 3}
    sampler.set_epoch(7)
    assert len(sampler) == len(list(sampler)) == sampler.repeats(7).sum()


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("rounding", ["deterministic", "stochastic"])
def test_rank_sharding_covers_the_epoch_once(world, rounding):
    factors = repeat_factors(LABELS, T=0.5, frequency="image_prevalence")
    factors = np.concatenate([factors, np.full(5, 3.3)])
    shards = []
    for rank in range(world):
        sampler = RepeatFactorSampler(factors, rounding=rounding, seed=11, num_replicas=world, rank=rank)
        sampler.set_epoch(5)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    assert len({len(s) for s in shards}) == 1, "every rank must take the same number of steps"
    epoch = RepeatFactorSampler(factors, rounding=rounding, seed=11, num_replicas=1, rank=0).epoch_indices(5)
    union = Counter(i for shard in shards for i in shard)
    padding = union - Counter(epoch.tolist())
    assert Counter(epoch.tolist()) - union == Counter(), "an index of the epoch was not served"
    assert sum(padding.values()) == len(shards[0]) * world - len(epoch) < world
    # the padding repeats the head of the epoch list, as DistributedSampler does
    assert padding == Counter(epoch[: sum(padding.values())].tolist())


@pytest.mark.parametrize(("world", "batch"), [(1, 4), (2, 3), (3, 5)])
def test_padding_to_whole_batches(world, batch):
    factors = np.full(23, 1.0)
    shards = [list(RepeatFactorSampler(factors, num_replicas=world, rank=r, batch_size=batch)) for r in range(world)]
    assert all(len(s) % batch == 0 and len(s) == len(shards[0]) for s in shards)
    flat = [i for s in shards for i in s]
    assert set(flat) == set(range(23)) and len(flat) - 23 < world * batch


def test_max_samples_caps_each_rank():
    shards = []
    for rank in range(2):
        sampler = RepeatFactorSampler(np.full(40, 1.0), num_replicas=2, rank=rank, batch_size=4)
        sampler.max_samples = 8
        shards.append(list(sampler))
        assert len(sampler) == 8
    assert all(len(s) == 8 for s in shards) and not set(shards[0]) & set(shards[1])


def test_drop_last_has_no_duplicates():
    factors = np.full(7, 1.0)
    shards = [list(RepeatFactorSampler(factors, num_replicas=3, rank=r, drop_last=True)) for r in range(3)]
    flat = [i for s in shards for i in s]
    assert len(flat) == 6 and len(set(flat)) == 6


def test_sampler_validation():
    with pytest.raises(InputError):
        RepeatFactorSampler(np.array([0.5, 1.0]))
    with pytest.raises(InputError):
        RepeatFactorSampler(np.array([1.0]), rank=2, num_replicas=2)
    with pytest.raises(InputError):
        RepeatFactorSampler(np.array([1.0]), rounding="up")


def test_build_train_sampler_disabled_is_a_plain_epoch():
    sampler = build_train_sampler(LABELS, enabled=False, num_replicas=1, rank=0)
    assert sorted(sampler) == list(range(len(LABELS)))
    enabled = build_train_sampler(LABELS, T=0.5, frequency="image_prevalence", num_replicas=1, rank=0)
    assert len(enabled) == 8 + 2  # images 2 and 4 appear twice
