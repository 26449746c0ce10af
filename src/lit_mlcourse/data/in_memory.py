"""DataModules whose splits fit in memory as tensors: the loaders they all share."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset


class InMemoryDataModule(L.LightningDataModule):
    """Serves ``self.datasets[split]`` (built in ``setup``) with ``batch_size`` and ``num_workers``
    from the subclass's hyperparameters; training batches are shuffled."""

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, Dataset] = {}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")
