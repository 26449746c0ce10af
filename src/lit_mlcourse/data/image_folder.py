"""Any folder of images sorted into class folders (hymenoptera_data, a course's own photos)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveInt
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from lit_mlcourse.data import image_files as files
from lit_mlcourse.data.fingerprint import digest_value
from lit_mlcourse.data.folds import check_fold, check_label_fraction, kfold_split, labelled_subset
from lit_mlcourse.data.in_memory import InMemoryDataModule
from lit_mlcourse.data.views import TwoViews, ViewOptions, check_views, simclr_view
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError, DataFormatError

# Per-channel mean and standard deviation of the ImageNet training images, in [0, 1] units: what
# pretrained backbones expect, and close enough for photos trained from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
MAX_NAMED_CLASSES = 30  # in the description of the data fingerprint


class ImageDataset(Dataset):
    """One split: cached uint8 (3, H, W) images, or files decoded on each access, through ``transform``.

    Args:
        paths: the image files.
        labels: class index of each file; ``None`` for prediction (samples are images alone).
        transform: uint8 image -> float tensor.
        resize: shorter side the files are decoded to.
        describe: ``describe(index)`` names a sample in an error message (class, split, index).
        images: the decoded files (the cache); ``None``: decode on access.
    """

    def __init__(
        self,
        paths: list[Path],
        labels: list[int] | None,
        transform: Callable,
        resize: int,
        describe: Callable[[int], str],
        images: list[torch.Tensor] | None = None,
    ) -> None:
        self.paths, self.labels, self.transform, self.resize = paths, labels, transform, resize
        self.describe, self.images = describe, images

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        image = self.transform(self._decode(index) if self.images is None else self.images[index])
        return image if self.labels is None else (image, self.labels[index])

    def _decode(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            return files.load_image(path, self.resize)
        except files.BadImageError as error:
            raise DataFormatError(files.bad_file_message(path, self.describe(index), str(error))) from None
        except Image.DecompressionBombError as error:
            raise files.bomb_error(path, self.describe(index), str(error)) from None


class _Describe:
    """Names sample ``index`` of a split for error messages (a class, not a closure: workers may pickle it)."""

    def __init__(self, split: str, labels: list[int] | None, class_names: list[str]) -> None:
        self.split, self.labels, self.class_names = split, labels, class_names

    def __call__(self, index: int) -> str:
        where = f"{self.split} index {index}"  # 0-based, in the sorted file order of the split
        return where if self.labels is None else f"class '{self.class_names[self.labels[index]]}', {where}"


class ImageFolderDataModule(InMemoryDataModule):
    """Images in class folders as normalized float (3, S, S) tensors, S = ``image_size``.

    Layout: ``root/train/<class>/*`` and ``root/val/<class>/*`` (and, when present, ``root/test/<class>/*``,
    the test set), or ``root/<class>/*`` with a stratified validation split drawn by ``split_seed``. Which
    files count as images and how links are treated: see ``lit_mlcourse.data.image_files``.

    Each file is decoded with its shorter side resized to ``resize``; training crops ``image_size`` from it
    at random (``augment``), evaluation and prediction crop the centre.

    Args:
        root: the folder of the data.
        image_size: side of the square images the model sees (pixels).
        resize: shorter side of the decoded images (pixels); default ``round(image_size * 8 / 7)``.
        augment: ``standard``: random resized crop, horizontal flip, mild colour jitter; ``flip``: centre
            crop and horizontal flip; ``none``: centre crop.
        min_scale: smallest share of the image area the ``standard`` crop keeps.
        val_fraction: share of each class drawn for validation (only without ``root/train`` and ``root/val``).
        split_seed: seed of that validation split.
        on_bad_file: ``error``: a file that is not a usable image stops setup, naming it; ``skip``: such
            files are left out and listed once.
        cache: decode every image once in ``setup`` and keep them in memory (uint8), or decode each sample
            on access in every epoch (with ``skip``, files are then checked once in ``setup``).
        batch_size: samples per batch.
        num_workers: DataLoader workers (augmentation, and the decoding in ``setup``).
        predict_dir: folder of images to predict (walked recursively, sorted); default ``root/test`` if it
            exists, else the validation images.
        num_folds: cross-validation folds over all labelled training images (train/ and val/ together, or
            the whole folder), stratified and drawn by ``split_seed`` (``None``: the fixed split). ``lit cv``
            sets it.
        fold: which fold is the validation set.
        label_fraction: share of the training labels kept, stratified and drawn by ``split_seed``
            (semi-supervised fine-tuning).
        views: SimCLR's two augmented views per training image (``{}`` for the defaults, see
            :class:`~lit_mlcourse.data.views.ViewOptions`) instead of ``augment``; validation and test then
            also serve the unaugmented training images first, for the kNN monitor.
    """

    def __init__(
        self,
        root: str = "data/hymenoptera_data",
        image_size: PositiveInt = 64,
        resize: PositiveInt | None = None,
        augment: Literal["none", "flip", "standard"] = "standard",
        min_scale: float = 0.35,
        val_fraction: OpenUnitInterval = 0.2,
        split_seed: int = 0,
        on_bad_file: Literal["error", "skip"] = "error",
        cache: bool = True,
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 2,
        predict_dir: str | None = None,
        num_folds: int | None = None,
        fold: NonNegativeInt = 0,
        label_fraction: float = 1.0,
        views: ViewOptions | None = None,
    ) -> None:
        super().__init__()
        check_fold(num_folds, fold)
        check_label_fraction(label_fraction)
        self.save_hyperparameters()
        self.hparams.views = check_views(views, label_fraction)
        self.resize = round(image_size * 8 / 7) if resize is None else int(resize)
        if self.resize < image_size:
            raise ConfigValueError(
                f"resize={resize} is smaller than image_size={image_size}: the crop needs images at least "
                f"{image_size} pixels on the shorter side. Raise resize or leave it unset."
            )
        if not 0 < min_scale <= 1:
            raise ConfigValueError(f"min_scale={min_scale} must be in (0, 1]: the share of the area a crop keeps.")
        self.root = Path(root)
        # Scanned here, not in setup: the CLI links these into the model right after instantiation.
        self.class_names, self._split_dirs = files.find_layout(self.root)
        self.num_classes = len(self.class_names)
        # Plain ints: the parser passes PositiveInt, which a weights_only checkpoint load refuses.
        self.image_shape = (3, int(image_size), int(image_size))
        self.predict_paths: list[str] = []
        self._pool: tuple[dict[str, list[Path]], dict[str, list[int]]] | None = None

    @property
    def has_test_set(self) -> bool:
        """Whether ``root/test`` holds a labelled test set."""
        return "test" in self._split_dirs

    @cached_property
    def data_fingerprint(self) -> str:
        """What the model trains on, for checkpoints (see data.fingerprint): the classes, and the paths (relative to
        ``root``) and sizes of the training and validation images, sorted."""
        folders = [self._split_dirs[split] for split in ("train", "val")] if self._split_dirs else [self.root]
        entries = []
        for folder in folders:
            paths, _, _ = files.list_classes(folder, self.class_names, self.root)
            entries += [[path.relative_to(self.root).as_posix(), path.stat().st_size] for path in paths]
        return digest_value({"classes": self.class_names, "files": sorted(entries)})

    @property
    def data_fingerprint_of(self) -> str:
        # The classes by name: a checkpoint refused for other data then shows both class lists side by side.
        shown = self.class_names[:MAX_NAMED_CLASSES]
        more = len(self.class_names) - len(shown)
        classes = ", ".join(shown) + (f", ... {more} more" if more else "")
        return f"sha256 of the classes ({classes}) and the relative paths and sizes of the train/val images"

    def setup(self, stage: str) -> None:
        if stage == "test" and not self.has_test_set:
            raise ConfigValueError(self._no_test_set())
        hp = self.hparams
        # SimCLR's kNN monitor scores any split against the training images.
        wanted = STAGE_SPLITS[stage] + (("train",) if hp.views is not None and stage in ("validate", "test") else ())
        todo = [split for split in wanted if split not in self.datasets]
        if not todo:
            return
        listed = {split: self._list(split) for split in todo}
        if "train" in listed and hp.label_fraction < 1:
            paths, labels = listed["train"]
            keep = labelled_subset(np.array(labels), hp.label_fraction, hp.split_seed)
            listed["train"] = ([paths[i] for i in keep], [labels[i] for i in keep])
        decoded = None
        if hp.cache or hp.on_bad_file == "skip":
            # The splits of this stage in one pass of the workers; without the cache only to find bad files,
            # so that the dataset lengths are fixed before training.
            paths = [path for split in todo for path in listed[split][0]]
            decoded = files.decode_all(paths, self.resize, hp.num_workers, keep=hp.cache)
        skipped: list[str] = []
        start = 0
        for split in todo:
            paths, labels = listed[split]
            results = None if decoded is None else decoded[start : start + len(paths)]
            start += len(paths)
            self.datasets[split] = self._dataset(split, paths, labels, results, skipped)
        files.report(skipped, f"Skipped {files.count(len(skipped), 'bad image file')} (on_bad_file=skip):")
        if "train" in todo and hp.views is not None:
            train = self.datasets["train"]
            self.datasets["bank"] = ImageDataset(
                train.paths, train.labels, eval_transform(hp.image_size), self.resize, train.describe, train.images
            )
        if "predict" in todo:
            self.predict_paths = [str(path) for path in self.datasets["predict"].paths]

    def test_dataloader(self) -> DataLoader:
        if not self.has_test_set:
            raise ConfigValueError(self._no_test_set())
        return self._with_bank(self._loader("test"))

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def state_dict(self) -> dict:
        return {"class_names": self.class_names}

    def load_state_dict(self, state_dict: dict) -> None:
        # A checkpoint's output units mean the classes it was trained on: refuse another class set.
        trained = list(state_dict.get("class_names", self.class_names))
        if trained != self.class_names:
            added, removed = sorted(set(self.class_names) - set(trained)), sorted(set(trained) - set(self.class_names))
            raise DataFormatError(
                f"{self.root} has classes {self.class_names}, the checkpoint was trained on {trained}"
                + (f" (added: {', '.join(added)})" if added else "")
                + (f" (removed: {', '.join(removed)})" if removed else "")
                + ". Use the data the checkpoint was trained on, or train a new model."
            )

    def _no_test_set(self) -> str:
        return (
            f"{self.root} has no test/ folder, so there is no labelled test set: use `lit validate` to evaluate "
            "on the validation images, or `lit predict` for predictions."
        )

    def _list(self, split: str) -> tuple[list[Path], list[int] | None]:
        """The files of ``split`` in a fixed order, with their labels (``None`` for prediction)."""
        if split == "predict":
            if self.hparams.predict_dir is not None:
                folder = Path(self.hparams.predict_dir)
                if not folder.is_dir():
                    raise DataFileNotFoundError(f"predict_dir {folder} is not a folder of images.")
                return self._listed(folder, files.list_images(folder, folder)), None
            if not self.has_test_set and (not self._split_dirs or self.hparams.num_folds is not None):
                return self._split_pool()[0]["val"], None
            folder = self._split_dirs["test" if self.has_test_set else "val"]
            return self._listed(folder, files.list_images(folder, self.root)), None
        if not self._split_dirs or (self.hparams.num_folds is not None and split in ("train", "val")):
            paths, labels = self._split_pool()
            return paths[split], labels[split]
        paths, labels, ignored = files.list_classes(self._split_dirs[split], self.class_names, self.root)
        self._note(ignored)
        return paths, labels

    def _listed(self, folder: Path, found: tuple[list[Path], list[str]]) -> list[Path]:
        images, ignored = found
        self._note(ignored)
        if not images:
            raise DataFileNotFoundError(f"{folder} has no image files ({', '.join(files.IMAGE_EXTENSIONS)}).")
        return images

    def _split_pool(self) -> tuple[dict[str, list[Path]], dict[str, list[int]]]:
        """Train and val files drawn by the seed: fold ``fold`` of ``num_folds`` over every labelled training
        image, or, for a folder without split folders, a stratified ``val_fraction`` split."""
        if self._pool is None:
            hp = self.hparams
            folders = [self._split_dirs[name] for name in ("train", "val")] if self._split_dirs else [self.root]
            paths, labels = [], []
            for folder in folders if hp.num_folds is not None else [self.root]:
                found, found_labels, ignored = files.list_classes(folder, self.class_names, self.root)
                self._note(ignored)
                paths, labels = paths + found, labels + found_labels
            if hp.num_folds is not None:
                train, val = kfold_split(len(paths), hp.num_folds, hp.fold, hp.split_seed, np.array(labels))
            else:
                train, val = self._stratified_split(paths, labels)
            order = {"train": sorted(train), "val": sorted(val)}  # file order within each split
            self._pool = (
                {split: [paths[i] for i in index] for split, index in order.items()},
                {split: [labels[i] for i in index] for split, index in order.items()},
            )
        return self._pool

    def _stratified_split(self, paths: list[Path], labels: list[int]) -> tuple[list[int], list[int]]:
        from sklearn.model_selection import train_test_split

        for label, name in enumerate(self.class_names):
            if labels.count(label) < 2:
                raise DataFormatError(
                    f"{self.root / name} has 1 image; a stratified validation split needs at least 2 per class. "
                    "Add images, or give the data train/ and val/ folders."
                )
        try:
            return train_test_split(
                range(len(paths)), test_size=self.hparams.val_fraction, stratify=labels,
                random_state=self.hparams.split_seed,
            )  # fmt: skip
        except ValueError as error:  # too few images for a split with every class on both sides
            raise ConfigValueError(
                f"val_fraction={self.hparams.val_fraction} cannot split the {len(paths)} images of {self.root} "
                f"with every class on both sides ({error}). Change val_fraction or add images."
            ) from None

    def _note(self, ignored: list[str]) -> None:
        shown = ignored[:10] + ([f"... and {len(ignored) - 10} more"] if len(ignored) > 10 else [])
        files.report(shown, f"Note: ignored {files.count(len(ignored), 'entry', 'entries')} that are not image files:")

    def _dataset(
        self,
        split: str,
        paths: list[Path],
        labels: list[int] | None,
        decoded: list | None,
        skipped: list[str],
    ) -> ImageDataset:
        """The dataset of ``split``; ``decoded``: the files decoded (or checked) in setup, whose bad files
        raise or are left out (and added to ``skipped``)."""
        describe = _Describe(split, labels, self.class_names)
        keep = range(len(paths))
        if decoded is not None:
            bad = [index for index, item in enumerate(decoded) if isinstance(item, files.BadImage)]
            for index in bad:
                if decoded[index].bomb:  # never skipped: a decompression bomb is an attack or a mistake
                    raise files.bomb_error(paths[index], describe(index), decoded[index].reason)
            if bad and self.hparams.on_bad_file == "error":
                first = bad[0]
                raise DataFormatError(
                    files.bad_file_message(paths[first], describe(first), decoded[first].reason, len(bad) - 1)
                )
            skipped += [f"{paths[index]} ({describe(index)}): {decoded[index].reason}" for index in bad]
            keep = sorted(set(keep) - set(bad))
            if not keep:
                raise DataFormatError(f"Every image of the {split} split is bad: see the list above.")
        labels = None if labels is None else [labels[i] for i in keep]
        transform = train_transform(self.hparams) if split == "train" else eval_transform(self.hparams.image_size)
        return ImageDataset(
            [paths[i] for i in keep],
            labels,
            transform,
            self.resize,
            _Describe(split, labels, self.class_names),
            [decoded[i] for i in keep] if self.hparams.cache else None,
        )


def _to_float() -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(hp) -> v2.Compose | TwoViews:
    """Augmentation of training images (uint8 in, normalized float out), chosen by ``hp.augment``, or
    SimCLR's two views when ``hp.views`` is set."""
    if hp.views is not None:
        return TwoViews(simclr_view(hp.image_size, 3, IMAGENET_MEAN, IMAGENET_STD, **hp.views))
    if hp.augment == "standard":
        steps = [
            v2.RandomResizedCrop(hp.image_size, scale=(hp.min_scale, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    else:
        steps = [v2.CenterCrop(hp.image_size)] + ([v2.RandomHorizontalFlip()] if hp.augment == "flip" else [])
    return v2.Compose([*steps, *_to_float()])


def eval_transform(image_size: int) -> v2.Compose:
    """Centre crop and normalize (validation, test, prediction): the shorter side is resized at decode."""
    return v2.Compose([v2.CenterCrop(image_size), *_to_float()])
