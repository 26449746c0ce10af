"""Training batches that a resumed run draws exactly as the uninterrupted run would have.

Three things make a training epoch's data: the order of the samples, how far into the epoch a run is, and the
random augmentation of each sample. Lightning's default loaders keep none of them across a restart: a run resumed
at an epoch boundary replays epoch 0's order (its iterator is made before the sampler hears the epoch), a run resumed
mid-epoch starts the epoch over, and augmentation draws from worker processes whose random streams die with them.
Here:

- the order is a function of (seed, epoch), sharded per process as DistributedSampler does (it is one);
- the loader is stateful for Lightning: a checkpoint records the epoch and the batches already trained, and the
  resumed loader starts at the next one;
- each sample's augmentation draws from the global RNG reseeded with a function of (seed, epoch, index), in whatever
  worker loads it, so neither ``num_workers`` nor a restart changes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s augmentation in ``epoch`` (a fixed integer hash, the same in every process)."""
    value = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & _MASK
    value ^= value >> 31
    return (value * 0xD6E8FEB86659FD93) & _MASK


def run_seed() -> int:
    """The run's seed (``seed_everything``, which ``lit`` always calls), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", "0"))


class SeededSamples(Dataset):
    """``dataset`` read by keys ``(index, seed)``: the item is built with the global torch RNG seeded by ``seed`` (and
    the RNG restored afterwards), so random transforms depend on the key alone."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        if not isinstance(key, tuple):  # a plain index: another sampler (Lightning's, for overfit_batches)
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed also queues a CUDA seeding with its stack trace while CUDA
            # is not initialised, 0.3 ms and a growing queue per sample.
            torch.default_generator.manual_seed(seed)
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """DistributedSampler's shuffled, padded shards (one shard when not distributed), that can start an epoch part-way
    (``skip`` samples of this process's shard) and, when ``seeded``, yields ``(index, sample_seed)`` keys for
    :class:`SeededSamples`."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, seeded: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.seeded = seeded
        self.skip = 0

    def epoch_indices(self) -> list[int]:
        """This process's dataset indices for the current epoch, in order (a function of seed and epoch)."""
        return list(super().__iter__())

    def __iter__(self) -> Iterator[Any]:
        indices = self.epoch_indices()[self.skip :]
        self.skip = 0  # only the epoch resumed in starts part-way
        if not self.seeded:
            return iter(indices)
        return iter([(index, sample_seed(self.seed, self.epoch, index)) for index in indices])


class ResumableLoader(DataLoader):
    """A training DataLoader over a :class:`ResumableSampler` whose state (epoch, batches trained) Lightning saves
    in checkpoints and restores before it makes the resumed epoch's iterator. ``trainer`` tells how far the epoch
    got when a checkpoint is taken."""

    def __init__(self, dataset: Dataset, batch_size: int = 1, sampler: Any = None, trainer: Any = None, **kwargs):
        # Keywords as DataLoader's: Lightning makes the loader again with another sampler (overfit_batches).
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.trainer = trainer

    def state_dict(self) -> dict[str, int | bool]:
        if not isinstance(self.sampler, ResumableSampler):
            return {}
        trainer, batches, done = self.trainer, 0, False
        if trainer is not None:
            batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            done = batches >= trainer.num_training_batches
        return {"epoch": self.sampler.epoch, "batches": batches, "epoch_done": done}

    def load_state_dict(self, state: dict[str, int | bool]) -> None:
        if not state or not isinstance(self.sampler, ResumableSampler):
            return
        if state["epoch_done"]:
            self.sampler.set_epoch(int(state["epoch"]) + 1)
        else:
            self.sampler.set_epoch(int(state["epoch"]))
            self.sampler.skip = int(state["batches"]) * self.batch_size

    def __iter__(self):
        if self.generator is not None and isinstance(self.sampler, ResumableSampler):
            # worker seeds: a function of (seed, epoch), not of how many epochs ran in this process
            self.generator.manual_seed(sample_seed(self.sampler.seed, self.sampler.epoch, -1))
        return super().__iter__()


def training_loader(
    dataset: Dataset, batch_size: int, num_workers: int, trainer: Any, seeded: bool = True, **kwargs: Any
) -> ResumableLoader:
    """The shuffled training loader of every DataModule here (see the module's text). ``seeded``: each sample's
    augmentation seeded by (seed, epoch, index); off for index datasets whose augmentation runs batch-wise on the
    device (it draws from the global RNG, which the checkpoint restores)."""
    distributed = getattr(trainer, "distributed_sampler_kwargs", None) or {}
    sampler = ResumableSampler(
        dataset,
        num_replicas=distributed.get("num_replicas", 1),
        rank=distributed.get("rank", 0),
        seed=run_seed(),
        seeded=seeded,
    )
    return ResumableLoader(
        SeededSamples(dataset) if seeded else dataset,
        batch_size=batch_size,
        sampler=sampler,
        trainer=trainer,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator(),
        **kwargs,
    )
