"""The P x K guarantee of the class-balanced batch sampler, its determinism and its sharding."""
from collections import Counter

import numpy as np
import pytest

from trackformer.data.samplers import ClassBalancedBatchSampler, ShuffledBatchSampler


def labels_with_sizes(sizes, seed=0):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("p,k", [(6, 9), (4, 2), (10, 1)])
def test_every_batch_is_p_classes_times_k(p, k):
    sizes = np.random.default_rng(1).integers(3, 40, size=23)  # some classes smaller than K
    labels = labels_with_sizes(sizes)
    sampler = ClassBalancedBatchSampler(labels, p, k, seed=3)
    assert len(sampler) == len(labels) // (p * k)
    for epoch in range(3):
        seen = Counter()
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            assert len(batch) == p * k
            per_class = Counter(labels[batch].tolist())
            assert len(per_class) == p and set(per_class.values()) == {k}
            for c in per_class:
                members = [i for i in batch if labels[i] == c]
                # distinct samples unless the class is smaller than K
                assert len(set(members)) == min(k, sizes[c])
            seen.update(per_class.keys())
        # the class cycle visits every class about equally often within an epoch
        counts = np.array([seen[c] for c in range(len(sizes))])
        assert counts.max() - counts.min() <= 1


def test_deterministic_per_epoch_and_reshuffled_across_epochs():
    labels = labels_with_sizes([12] * 20)
    a = ClassBalancedBatchSampler(labels, 4, 3, seed=7)
    b = ClassBalancedBatchSampler(labels, 4, 3, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    c = ClassBalancedBatchSampler(labels, 4, 3, seed=8)
    c.set_epoch(2)
    assert list(a) != list(c)


def test_ranks_get_disjoint_batches_of_one_global_sequence():
    labels = labels_with_sizes([10] * 30)
    world = 3
    glob = ClassBalancedBatchSampler(labels, 5, 2, num_batches=30, seed=1)
    shards = [ClassBalancedBatchSampler(labels, 5, 2, num_batches=30, seed=1, rank=r, world_size=world)
              for r in range(world)]
    for s in [glob, *shards]:
        s.set_epoch(4)
    assert {len(s) for s in shards} == {10}
    merged = [b for step in zip(*(list(s) for s in shards)) for b in step]
    assert merged == list(glob)


def test_rejects_more_classes_than_exist():
    with pytest.raises(ValueError, match="classes"):
        ClassBalancedBatchSampler(labels_with_sizes([5, 5]), 3, 2)


def test_shuffled_sampler_covers_without_repeats():
    s = ShuffledBatchSampler(103, 10, seed=0)
    s.set_epoch(1)
    flat = [i for b in s for i in b]
    assert len(flat) == 100 and len(set(flat)) == 100
