"""Class-balanced P x K batches for metric learning.

Every batch holds exactly P distinct classes with K samples each, so every sample has K - 1
positives and (P - 1) K negatives in its batch: what pair-based losses and intra-batch message
passing need. Classes are visited in a shuffled cycle (every class about equally often); within a
class, samples are drawn without replacement from a shuffled pool that refills when empty (a class
smaller than K repeats samples inside one batch).

The batch order depends only on (seed, epoch): every process draws the same global sequence and
keeps every `world_size`-th batch starting at its `rank`, so processes see disjoint batches.
"""
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np


class ClassBalancedBatchSampler:
    """Yields lists of P * K dataset indices; `set_epoch(e)` reshuffles as DistributedSampler does."""

    def __init__(self, labels: Sequence[int], classes_per_batch: int, samples_per_class: int,
                 num_batches: Optional[int] = None, seed: int = 0, rank: int = 0, world_size: int = 1):
        labels = np.asarray(labels)
        self.by_class: Dict[int, np.ndarray] = {
            int(c): np.nonzero(labels == c)[0] for c in np.unique(labels)}
        if classes_per_batch < 1 or samples_per_class < 1:
            raise ValueError("classes_per_batch and samples_per_class must be >= 1")
        if classes_per_batch > len(self.by_class):
            raise ValueError(f"{classes_per_batch} classes per batch but the data has only "
                             f"{len(self.by_class)} classes")
        self.p, self.k = classes_per_batch, samples_per_class
        total = num_batches if num_batches is not None else max(1, len(labels) // (self.p * self.k))
        # every rank iterates the same number of batches (DDP needs equal step counts)
        self.num_batches = max(1, total // world_size)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _global_batches(self) -> List[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = np.array(sorted(self.by_class))
        pools = {c: [] for c in classes.tolist()}
        order: List[int] = []
        batches = []
        for _ in range(self.num_batches * self.world_size):
            if len(order) < self.p:
                # refill the class cycle; a fresh permutation never repeats a class within a batch
                # because leftovers are only kept when disjoint from the next draws
                fresh = rng.permutation(classes).tolist()
                fresh = [c for c in fresh if c not in order] + [c for c in fresh if c in order]
                order = order + fresh
            chosen, order = order[:self.p], order[self.p:]
            batch = []
            for c in chosen:
                while len(pools[c]) < self.k:
                    # leftovers of the last pass go first; the refill puts them last, so a class
                    # with at least K samples never repeats one inside a batch
                    left = set(pools[c])
                    perm = rng.permutation(self.by_class[c]).tolist()
                    pools[c].extend([i for i in perm if i not in left] + [i for i in perm if i in left])
                batch.extend(pools[c][:self.k])
                pools[c] = pools[c][self.k:]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._global_batches()[self.rank::self.world_size])

    def __len__(self) -> int:
        return self.num_batches


class ShuffledBatchSampler:
    """Shuffled batches, sharded by rank: exactly DistributedSampler (a `torch.randperm` seeded with
    seed + epoch, padded so every rank gets as many samples, every `world_size`-th sample to a rank)
    cut into batches. The training loop's default sampler (`drop_last=False`)."""

    def __init__(self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True):
        import torch

        self.indices = torch.utils.data.DistributedSampler(range(size), num_replicas=world_size, rank=rank,
                                                           shuffle=True, seed=seed)
        self.batches = torch.utils.data.BatchSampler(self.indices, batch_size, drop_last=drop_last)

    def set_epoch(self, epoch: int):
        self.indices.set_epoch(epoch)

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
