"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, fed two ways: the classic per-sample
pipeline in DataLoader workers, or the whole split resident on the accelerator and augmented batch-wise."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from lit_mlcourse.data import cifar10_files as files
from lit_mlcourse.data.fingerprint import digest_value
from lit_mlcourse.data.folds import check_label_fraction, labelled_subset
from lit_mlcourse.data.in_memory import evaluation_sampler, make_loader
from lit_mlcourse.data.resident import IndexDataset, ResidentTensors, keep_batch
from lit_mlcourse.data.resumable import training_loader
from lit_mlcourse.data.transforms import CIFAR10_MEAN, CIFAR10_STD, BatchAugmentation, per_sample_pipeline
from lit_mlcourse.data.views import BatchViews, TwoViews, ViewOptions, check_views, simclr_view
from lit_mlcourse.downloads import require_online
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10: 50,000 training images split into train and ``val_size`` validation images (seeded),
    and the 10,000 test images as the test (and predict) set.

    Args:
        data_dir: folder holding ``cifar-10-batches-py/``.
        data_path: ``device`` keeps each split on the accelerator as uint8 and augments whole batches
            there (the fast path); ``classic`` runs torchvision.transforms.v2 per sample in DataLoader workers.
        val_size: training images held out for validation.
        split_seed: seed of the train / validation split.
        batch_size: images per batch (per process under DDP).
        num_workers: DataLoader workers of the classic path (the device path needs none).
        padding: random-crop padding in pixels (0: no crop).
        flip: random horizontal flips.
        color_jitter: brightness / contrast / saturation jitter strength (0: none).
        cutout: side in pixels of the square cut out of each training image (0: none).
        download: download the official archive when the folder is missing and the machine is online.
        checksums: md5 of each file of the folder (default: the official archive's); a file that does not
            match is refused before it is unpickled.
        label_fraction: share of the training labels kept, stratified and drawn by ``split_seed``
            (semi-supervised fine-tuning).
        views: SimCLR's two augmented views per training image (``{}`` for the defaults, see
            :class:`~lit_mlcourse.data.views.ViewOptions`) instead of the crop / flip / jitter / cutout above;
            made batch-wise on the device path (no blur there), per sample on the classic path. Validation and
            test then also serve the unaugmented training images first, for the kNN monitor.
        normalize: standardize with CIFAR-10's channel means and stds; ``false`` serves images in [0, 1]
            (what a GAN generates).
    """

    num_classes = 10
    image_shape = (3, 32, 32)
    class_names: ClassVar[list[str]] = list(files.CLASS_NAMES)
    has_test_set = True

    def __init__(
        self,
        data_dir: str = "data",
        data_path: Literal["device", "classic"] = "device",
        val_size: PositiveInt = 5000,
        split_seed: int = 0,
        batch_size: PositiveInt = 256,
        num_workers: NonNegativeInt = 0,
        padding: NonNegativeInt = 4,
        flip: bool = True,
        color_jitter: NonNegativeFloat = 0.0,
        cutout: NonNegativeInt = 0,
        download: bool = True,
        checksums: dict[str, str] | None = None,
        label_fraction: float = 1.0,
        views: ViewOptions | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        check_label_fraction(label_fraction)
        self.save_hyperparameters()
        self.hparams.views = views = check_views(views, label_fraction)
        if views is not None and data_path == "device" and views.get("blur_probability", 0.0) > 0:
            raise ConfigValueError(
                "data.views.blur_probability: the device path makes views batch-wise without blur; "
                "set data.data_path: classic for blurred views, or blur_probability: 0."
            )
        self.checksums = dict(checksums or files.STANDARD_MD5)
        unknown = set(self.checksums) ^ set(files.STANDARD_MD5)
        if unknown:
            raise ConfigValueError(
                f"data.checksums must give the md5 of exactly {', '.join(files.STANDARD_MD5)}; "
                f"it differs in {', '.join(sorted(unknown))}."
            )
        self.mean, self.std = (CIFAR10_MEAN, CIFAR10_STD) if normalize else ((0.0,) * 3, (1.0,) * 3)
        self.augmentation = BatchAugmentation(self.mean, self.std, padding, flip, color_jitter, cutout)
        batch_views = {key: value for key, value in (views or {}).items() if key != "blur_probability"}
        self.views = None if views is None else BatchViews(self.mean, self.std, **batch_views)
        self.splits = ResidentTensors()
        self._check_reachable()

    @property
    def data_fingerprint(self) -> str:
        """What the model trains on, for checkpoints (see data.fingerprint): every file is read only after its md5
        matched this table, so a digest of the table names the content without reading 170 MB."""
        return digest_value(self.checksums)

    data_fingerprint_of = "sha256 of the md5 table of cifar-10-batches-py (data.checksums)"

    def _check_reachable(self) -> None:
        # Fail at instantiation, before any run folder exists, when the data can neither be read nor fetched.
        folder = Path(self.hparams.data_dir) / files.FOLDER
        if all((folder / name).is_file() for name in self.checksums):
            return
        where = f"CIFAR-10 is not in {folder}"
        instead = (
            f"extract {files.URL} into {self.hparams.data_dir}, "
            f"or set --data.data_dir to the folder holding {files.FOLDER}/"
        )
        if not self.hparams.download:
            raise DataFileNotFoundError(f"{where}: {instead}.")
        require_online(files.URL, where, instead)

    def prepare_data(self) -> None:
        files.ensure_present(Path(self.hparams.data_dir), self.hparams.download, self.checksums)

    def setup(self, stage: str) -> None:
        if "train" in self.splits:
            return
        hp = self.hparams
        folder = files.ensure_present(Path(hp.data_dir), download=False, checksums=self.checksums)
        images, labels = files.read_split(folder, files.TRAIN_BATCHES, self.checksums)
        if hp.val_size >= len(labels):
            raise ConfigValueError(f"data.val_size={hp.val_size} must be below the {len(labels)} training images.")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(hp.split_seed))
        val, train = order[: hp.val_size], order[hp.val_size :]
        train = train[labelled_subset(labels[train].numpy(), hp.label_fraction, hp.split_seed)]
        self.splits["train"] = (images[train], labels[train])
        self.splits["val"] = (images[val], labels[val])
        self.splits["test"] = files.read_split(folder, ("test_batch",), self.checksums)
        self.splits["predict"] = self.splits.host["test"]

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """Loader of ``split``; ``bank`` is the training images without augmentation (SimCLR's kNN monitor)."""
        hp = self.hparams
        source = "train" if split == "bank" else split
        if hp.data_path == "device":
            indices = IndexDataset(split, len(self.splits.host[source][0]))
            if shuffle:  # batch-wise augmentation on the device draws from the global RNG, which checkpoints restore
                return training_loader(indices, hp.batch_size, 0, self.trainer, seeded=False, collate_fn=keep_batch)
            sampler = evaluation_sampler(self.trainer, indices) if split != "train" else None
            # Keywords only: Lightning rebuilds loaders from their arguments (predict), and a positional batch size
            # would then be given twice.
            return DataLoader(
                indices,
                batch_size=hp.batch_size,
                sampler=sampler,
                collate_fn=keep_batch,
                generator=torch.Generator().manual_seed(0),  # not the global RNG: see in_memory.make_loader
            )
        if split == "train" and hp.views is not None:
            transform = TwoViews(simclr_view(32, 3, self.mean, self.std, **hp.views))
        else:
            transform = per_sample_pipeline(
                self.mean, self.std, 32, hp.padding, hp.flip, hp.color_jitter, hp.cutout, train=split == "train"
            )
        images, labels = self.splits.host[source]
        dataset = _TransformedImages(images, labels, transform)
        sampler = evaluation_sampler(self.trainer, dataset) if split != "train" else None
        return make_loader(dataset, hp.batch_size, hp.num_workers, shuffle, sampler, self.trainer)

    def _with_bank(self, split: str) -> DataLoader | list[DataLoader]:
        # With SimCLR views, evaluation first reads the unaugmented training images (the kNN monitor's
        # memory bank), then the split it scores.
        return self._loader(split) if self.hparams.views is None else [self._loader("bank"), self._loader(split)]

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._with_bank("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._with_bank("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not isinstance(batch, dict):
            return batch  # the classic path's batches are ready
        split, index = batch["split"], batch["index"]
        images, labels = self.splits.on("train" if split == "bank" else split, index.device)
        if split == "train" and self.views is not None:
            return self.views(images[index]), labels[index]  # ((B, 3, 32, 32), (B, 3, 32, 32)) float32
        # (B,) indices -> (B, 3, 32, 32) uint8 -> augmented, normalized float32
        inputs = self.augmentation(images[index], train=split == "train")
        return inputs if split == "predict" else (inputs, labels[index])


class _TransformedImages(Dataset):
    """uint8 images (N, C, H, W) and labels, each image through ``transform`` when fetched."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.transform(tv_tensors.Image(self.images[index]))
        if isinstance(image, tuple):  # SimCLR's two views
            return tuple(view.as_subclass(torch.Tensor) for view in image), int(self.labels[index])
        return image.as_subclass(torch.Tensor), int(self.labels[index])
