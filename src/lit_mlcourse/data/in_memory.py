"""DataModules whose splits fit in memory as tensors: the loaders they all share."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lit_mlcourse.data.resumable import training_loader


class InMemoryDataModule(L.LightningDataModule):
    """Serves ``self.datasets[split]`` (built in ``setup``) with ``batch_size`` and ``num_workers``
    from the subclass's hyperparameters; training batches are shuffled. A ``bank`` split (the unaugmented
    training images, set up for SimCLR's views) is served before the validation and test splits."""

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        sampler = evaluation_sampler(self.trainer, dataset) if split != "train" else None
        return make_loader(dataset, self.hparams.batch_size, self.hparams.num_workers, shuffle, sampler, self.trainer)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._with_bank(self._loader("val"))

    def _with_bank(self, loader: DataLoader) -> DataLoader | list[DataLoader]:
        # With SimCLR views, evaluation first reads the unaugmented training images (the kNN monitor's
        # memory bank), then the split it scores.
        return [self._loader("bank"), loader] if "bank" in self.datasets else loader


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    trainer: Any = None,
) -> DataLoader:
    """The DataLoader every DataModule here uses: workers kept alive between epochs when there are any. Shuffled
    (training) loaders resume exactly: see data.resumable. The others draw their workers' seeds from a generator of
    their own: from the global one, a loader made at another time after a resume (persistent workers make one iterator
    per run) would shift the random draws of training (dropout)."""
    if shuffle:
        # A TensorDataset's items hold no randomness: seeding the RNG per sample would only cost time (a tenth of
        # the digits GAN's training).
        return training_loader(dataset, batch_size, num_workers, trainer, seeded=not isinstance(dataset, TensorDataset))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def evaluation_sampler(trainer: Any, dataset: Dataset) -> Sampler | None:
    """Under DDP, the sampler of an evaluation split (validation, test, SimCLR's memory bank, prediction) that reads
    each sample exactly once: process r of W gets samples r, r + W, ... (shares differ by at most one). ``None``
    otherwise (Lightning's own sampling).

    Lightning's default for validation and test, a DistributedSampler, pads the shares to equal length with repeated
    samples, which then count twice in the metrics: 159 validation digits on 2 processes were scored as 160. Uneven
    shares are safe in evaluation: DDP syncs buffers at the first batch only (every process gets one), and metrics and
    logged values are synced once, at the epoch's end."""
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None) if trainer is not None else None
    if not kwargs or kwargs.get("num_replicas", 1) <= 1:
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False, **kwargs)
