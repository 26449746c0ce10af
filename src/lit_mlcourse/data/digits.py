"""scikit-learn's bundled 8x8 handwritten digits: 1,797 real images, no download needed."""

from __future__ import annotations

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveInt
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.data.folds import check_fold, kfold_split
from lit_mlcourse.data.in_memory import InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    """Digits 0-9 as ``(1, 8, 8)`` float images in ``[0, 1]``.

    A stratified test split is held out first (fixed by ``seed``); the rest is split into train and
    validation, either stratified by ``val_fraction`` or as fold ``fold`` of ``num_folds`` (what
    ``lit cv`` sets).

    Args:
        batch_size: samples per batch.
        val_fraction: share of the non-test images used for validation.
        test_fraction: share of all images held out for testing.
        seed: seed of the splits.
        num_folds: cross-validation folds over the non-test images (``None``: use ``val_fraction``).
        fold: which fold is the validation set.
        num_workers: DataLoader workers (the data is tiny and in memory: 0 is fastest).
    """

    num_classes = 10
    image_shape = (1, 8, 8)
    class_names = [str(digit) for digit in range(10)]

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        val_fraction: OpenUnitInterval = 0.15,
        test_fraction: OpenUnitInterval = 0.2,
        seed: int = 0,
        num_folds: int | None = None,
        fold: NonNegativeInt = 0,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        check_fold(num_folds, fold)
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        if self.datasets:
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
        labels = torch.tensor(digits.target, dtype=torch.long)
        hp = self.hparams
        everything = np.arange(len(labels))
        rest, test = train_test_split(
            everything, test_size=hp.test_fraction, stratify=digits.target, random_state=hp.seed
        )
        if hp.num_folds is None:
            train, val = train_test_split(
                rest, test_size=hp.val_fraction, stratify=digits.target[rest], random_state=hp.seed
            )
        else:
            fold_train, fold_val = kfold_split(len(rest), hp.num_folds, hp.fold, hp.seed, digits.target[rest])
            train, val = rest[fold_train], rest[fold_val]
        for name, index in (("train", train), ("val", val), ("test", test)):
            self.datasets[name] = TensorDataset(images[index], labels[index])

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
