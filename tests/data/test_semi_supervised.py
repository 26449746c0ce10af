"""label_fraction (a stratified share of the training labels) and SimCLR's views on every image DataModule."""

from collections import Counter

import numpy as np
import pytest
import torch
from cifar_fixtures import write_cifar_folder
from image_fixtures import make_splits

from lit_mlcourse.data import CIFAR10DataModule, DigitsDataModule, ImageFolderDataModule
from lit_mlcourse.data.folds import labelled_subset
from lit_mlcourse.errors import ConfigValueError

DIGIT_VIEWS = {"min_scale": 0.5, "flip": False}


def test_labelled_subset_keeps_each_class_share_and_is_fixed_by_the_seed():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    kept = labelled_subset(labels, 0.1, seed=0)
    assert Counter(labels[kept].tolist()) == {0: 10, 1: 5, 2: 3, 3: 2} and len(set(kept.tolist())) == 20
    np.testing.assert_array_equal(kept, labelled_subset(labels, 0.1, seed=0))
    assert not np.array_equal(kept, labelled_subset(labels, 0.1, seed=1))
    np.testing.assert_array_equal(labelled_subset(labels, 1.0, seed=0), np.arange(len(labels)))


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_label_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(ConfigValueError, match=rf"data.label_fraction={fraction} must be in \(0, 1\]"):
        DigitsDataModule(label_fraction=fraction)


def test_digits_label_fraction_shrinks_only_the_training_split():
    full, tenth = DigitsDataModule(), DigitsDataModule(label_fraction=0.1)
    full.setup("fit"), tenth.setup("fit")
    full.setup("test"), tenth.setup("test")
    assert len(tenth.datasets["train"]) == 122 and len(full.datasets["train"]) == 1221
    full_counts = Counter(full.datasets["train"].tensors[1].tolist())
    for digit, count in Counter(tenth.datasets["train"].tensors[1].tolist()).items():
        assert abs(count - 0.1 * full_counts[digit]) < 1  # stratified: each digit keeps its share
    for split in ("val", "test"):  # evaluation keeps every image
        torch.testing.assert_close(tenth.datasets[split].tensors[0], full.datasets[split].tensors[0])


def test_digits_views_serve_two_views_and_evaluate_against_the_bank():
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=32, views=DIGIT_VIEWS)
    dm.setup("fit")
    (view1, view2), labels = next(iter(dm.train_dataloader()))
    assert view1.shape == view2.shape == (32, 1, 8, 8) and labels.shape == (32,)
    assert not torch.equal(view1, view2)
    bank, val = dm.val_dataloader()
    assert len(bank.dataset) == 1221 and len(val.dataset) == 216
    images, _ = next(iter(bank))
    torch.testing.assert_close(images, dm.datasets["bank"].tensors[0][:32])  # unaugmented, in order
    assert len(dm.test_dataloader()) == 2


def test_views_options_are_checked():
    with pytest.raises(ConfigValueError, match=r"data.views.min_scale=0 must be in \(0, 1\]"):
        DigitsDataModule(views={"min_scale": 0})
    with pytest.raises(ConfigValueError, match=r"data.views.jitter_probability=2 is a probability"):
        DigitsDataModule(views={"jitter_probability": 2})


def test_image_folder_views_and_label_fraction(tmp_path):
    root = make_splits(tmp_path / "images", {"ants": 20, "bees": 10})
    tenth = ImageFolderDataModule(str(root), image_size=8, num_workers=0, label_fraction=0.5)
    tenth.setup("fit")
    assert Counter(tenth.datasets["train"].labels) == {0: 10, 1: 5} and len(tenth.datasets["val"]) == 30
    dm = ImageFolderDataModule(str(root), image_size=8, batch_size=4, num_workers=0, views={})
    dm.setup("fit")
    (view1, view2), _ = next(iter(dm.train_dataloader()))
    assert view1.shape == view2.shape == (4, 3, 8, 8) and not torch.equal(view1, view2)
    bank, val = dm.val_dataloader()
    assert len(bank.dataset) == 30 and len(val.dataset) == 30
    validate_only = ImageFolderDataModule(str(root), image_size=8, num_workers=0, views={})
    validate_only.setup("validate")  # `lit validate` of a SimCLR checkpoint also needs the bank
    assert len(validate_only.val_dataloader()) == 2


@pytest.mark.parametrize("data_path", ["device", "classic"])
def test_cifar_views_on_both_paths_and_label_fraction(tmp_path, data_path):
    checksums = write_cifar_folder(tmp_path, per_batch=40)
    dm = CIFAR10DataModule(
        str(tmp_path), data_path=data_path, val_size=40, batch_size=16, checksums=checksums,
        views={},
    )  # fmt: skip
    dm.setup("fit")
    train_labels = dm.splits.host["train"][1]
    half = CIFAR10DataModule(str(tmp_path), val_size=40, checksums=checksums, label_fraction=0.5)
    half.setup("fit")
    assert len(half.splits.host["train"][1]) == 80 and len(train_labels) == 160  # half of the training images
    (view1, view2), labels = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert view1.shape == view2.shape == (16, 3, 32, 32) and view1.dtype == torch.float32
    assert not torch.equal(view1, view2) and labels.shape == (16,)
    bank, val = dm.val_dataloader()
    images, bank_labels = dm.on_after_batch_transfer(next(iter(bank)), 0)
    again, _ = dm.on_after_batch_transfer(next(iter(bank)), 0)
    torch.testing.assert_close(images, again)  # unaugmented: the same images every time
    assert images.shape == (16, 3, 32, 32) and torch.equal(bank_labels, train_labels[:16])
    assert len(val.dataset) == 40


def test_cifar_device_views_have_no_blur(tmp_path):
    checksums = write_cifar_folder(tmp_path, per_batch=40)
    with pytest.raises(ConfigValueError, match=r"data\.views\.blur_probability: the device path"):
        CIFAR10DataModule(str(tmp_path), checksums=checksums, views={"blur_probability": 0.5})
    # What the message suggests works: blur_probability 0 on the device path.
    assert CIFAR10DataModule(str(tmp_path), checksums=checksums, views={"blur_probability": 0.0}).views is not None


def test_label_fraction_with_views_is_refused():
    with pytest.raises(ConfigValueError, match=r"data.label_fraction=0.1 with data.views: SimCLR pretrains on every"):
        DigitsDataModule(views={}, label_fraction=0.1)
