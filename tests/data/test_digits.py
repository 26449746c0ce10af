import numpy as np
import pytest
import torch

from lit_mlcourse.data import DigitsDataModule
from lit_mlcourse.errors import ConfigValueError


def labels(dataset) -> np.ndarray:
    return dataset.tensors[1].numpy()


def test_stratified_splits_cover_all_1797_images_once():
    dm = DigitsDataModule(val_fraction=0.15, test_fraction=0.2, seed=0)
    dm.setup("fit")
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 360  # 20 %
    images = torch.cat([ds.tensors[0] for ds in dm.datasets.values()])
    assert images.shape == (1797, 1, 8, 8) and images.min() >= 0.0 and images.max() <= 1.0
    for dataset in dm.datasets.values():  # every class in every split, in proportion
        counts = np.bincount(labels(dataset), minlength=10) / len(dataset)
        assert counts.min() > 0.07 and counts.max() < 0.13


def test_the_split_is_fixed_by_the_seed():
    first, second, other = DigitsDataModule(seed=0), DigitsDataModule(seed=0), DigitsDataModule(seed=1)
    for dm in (first, second, other):
        dm.setup("fit")
    assert torch.equal(first.datasets["test"].tensors[0], second.datasets["test"].tensors[0])
    assert not torch.equal(first.datasets["test"].tensors[0], other.datasets["test"].tensors[0])


def test_folds_partition_the_non_test_images_and_keep_the_test_set():
    folds = []
    for fold in range(3):
        dm = DigitsDataModule(num_folds=3, fold=fold)
        dm.setup("fit")
        folds.append(dm)
    vals = [set(map(tuple, dm.datasets["val"].tensors[0].flatten(1).numpy().round(4).tolist())) for dm in folds]
    assert sum(len(v) for v in vals) == 1797 - 360
    assert not (vals[0] & vals[1]) and not (vals[1] & vals[2])
    assert all(torch.equal(folds[0].datasets["test"].tensors[0], dm.datasets["test"].tensors[0]) for dm in folds)


@pytest.mark.parametrize(
    ("num_folds", "fold", "message"), [(1, 0, "at least 2 folds"), (3, 3, r"fold=3 is outside 0..2")]
)
def test_bad_fold_settings(num_folds, fold, message):
    with pytest.raises(ConfigValueError, match=message):
        DigitsDataModule(num_folds=num_folds, fold=fold)


def test_facts_for_the_model():
    assert DigitsDataModule.num_classes == 10
    assert DigitsDataModule.image_shape == (1, 8, 8)
