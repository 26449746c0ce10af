"""DataModules whose splits fit in memory as tensors: the loaders they all share."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset


class InMemoryDataModule(L.LightningDataModule):
    """Serves ``self.datasets[split]`` (built in ``setup``) with ``batch_size`` and ``num_workers``
    from the subclass's hyperparameters; training batches are shuffled. A ``bank`` split (the unaugmented
    training images, set up for SimCLR's views) is served before the validation and test splits."""

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return make_loader(self.datasets[split], self.hparams.batch_size, self.hparams.num_workers, shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._with_bank(self._loader("val"))

    def _with_bank(self, loader: DataLoader) -> DataLoader | list[DataLoader]:
        # With SimCLR views, evaluation first reads the unaugmented training images (the kNN monitor's
        # memory bank), then the split it scores.
        return [self._loader("bank"), loader] if "bank" in self.datasets else loader


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, shuffle: bool = False) -> DataLoader:
    """The DataLoader every DataModule here uses: workers kept alive between epochs when there are any."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, persistent_workers=num_workers > 0
    )
