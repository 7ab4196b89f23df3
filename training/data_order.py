"""The training data order: a function of (seed, epoch, position), never of process state.

Each epoch is a seeded permutation split across ranks (like DistributedSampler with
drop_last) and cut into micro-batches; each sample is drawn under its own seed, so its
augmentation does not depend on which worker loads it or when. A resumed run therefore sees
exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["EpochBatches", "SeededItems", "epoch_batches", "micro_batches", "sample_seed"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch (splitmix64-style)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & (2**63 - 1)


class SeededItems(Dataset):
    """Wraps a dataset; item `(index, seed)` is `dataset[index]` drawn under RNG seed `seed`,
    so a sample's augmentation does not depend on which worker loads it or when."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(state)


def epoch_batches(
    n: int, micro_batch: int, seed: int, epoch: int, rank: int, world: int
) -> list[list[tuple[int, int]]]:
    """This rank's micro-batches of `epoch`: a (seed, epoch) permutation, split across ranks
    (like DistributedSampler with drop_last), cut into batches (last partial one dropped)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    per_rank = n // world
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    count = per_rank // micro_batch
    return [
        [(i, sample_seed(seed, epoch, i)) for i in mine[b * micro_batch : (b + 1) * micro_batch]]
        for b in range(count)
    ]


class EpochBatches:
    """Batch sampler of one rank: `epoch_batches` of the epoch set by `set_epoch` (from
    micro-batch `skip` on). One DataLoader, and its persistent workers, serve every epoch."""

    def __init__(self, n: int, micro_batch: int, seed: int, rank: int, world: int) -> None:
        self.n, self.micro_batch, self.seed = n, micro_batch, seed
        self.rank, self.world = rank, world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next pass yields `epoch`'s batches from the `skip`-th on."""
        self.epoch, self.skip = epoch, skip

    def _batches(self) -> list[list[tuple[int, int]]]:
        args = (self.n, self.micro_batch, self.seed, self.epoch, self.rank, self.world)
        return epoch_batches(*args)[self.skip :]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def micro_batches(
    dataset: Dataset,
    micro_batch: int,
    batches_per_epoch: int,
    *,
    seed: int,
    workers: int,
    rank: int,
    world_size: int,
    pin_memory: bool,
    start: int,
) -> Iterator[Any]:
    """This rank's micro-batches of `dataset` from global micro-step `start` on, across
    epochs, forever. One DataLoader serves every epoch, so its workers start once
    (`persistent_workers`)."""
    items = SeededItems(dataset)
    sampler = EpochBatches(len(items), micro_batch, seed, rank, world_size)
    # Own generator: creating a loader must not draw from the global RNG.
    generator = torch.Generator().manual_seed(sample_seed(seed, 0, 1 << 40))
    loader = DataLoader(
        items,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=generator,
    )
    epoch, skip = divmod(start, batches_per_epoch)
    while True:
        sampler.set_epoch(epoch, skip)
        yield from loader
        epoch, skip = epoch + 1, 0
