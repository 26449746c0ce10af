"""scikit-learn's bundled 8x8 handwritten digits: 1,797 real images, no download needed."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveInt
from torch.utils.data import DataLoader, TensorDataset

from lit_mlcourse.data.folds import check_fold, check_label_fraction, kfold_split, labelled_subset
from lit_mlcourse.data.in_memory import InMemoryDataModule
from lit_mlcourse.data.views import TwoViews, ViewOptions, ViewPairs, check_views, simclr_view


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
        label_fraction: share of the training labels kept, stratified and drawn by ``seed`` (semi-supervised
            fine-tuning: 0.1 keeps 10% of each class).
        views: SimCLR's two augmented views per training image (``{}`` for the defaults; for 8x8 digits
            ``{min_scale: 0.5, flip: false}``); validation and test then also serve the unaugmented
            training images first, for the kNN monitor.
    """

    num_classes = 10
    image_shape = (1, 8, 8)
    class_names: ClassVar[list[str]] = [str(digit) for digit in range(10)]
    # scikit-learn ships one digits dataset (see data.fingerprint)
    data_fingerprint = "sklearn.datasets.load_digits"
    data_fingerprint_of = "scikit-learn's bundled digits"

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        val_fraction: OpenUnitInterval = 0.15,
        test_fraction: OpenUnitInterval = 0.2,
        seed: int = 0,
        num_folds: int | None = None,
        fold: NonNegativeInt = 0,
        num_workers: NonNegativeInt = 0,
        label_fraction: float = 1.0,
        views: ViewOptions | None = None,
    ) -> None:
        super().__init__()
        check_fold(num_folds, fold)
        check_label_fraction(label_fraction)
        self.save_hyperparameters()
        self.hparams.views = check_views(views, label_fraction)

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
        train = train[labelled_subset(digits.target[train], hp.label_fraction, hp.seed)]
        for name, index in (("train", train), ("val", val), ("test", test)):
            self.datasets[name] = TensorDataset(images[index], labels[index])
        if hp.views is not None:
            # Digits are [0, 1] floats, not standardized: the views keep that scale (mean 0, std 1).
            views = TwoViews(simclr_view(8, 1, (0.0,), (1.0,), **hp.views))
            self.datasets["bank"] = self.datasets["train"]
            self.datasets["train"] = ViewPairs(self.datasets["bank"], views)

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._with_bank(self._loader("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
