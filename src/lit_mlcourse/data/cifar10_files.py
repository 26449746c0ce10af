"""The standard ``cifar-10-batches-py`` folder: integrity-checked, safely unpickled into uint8 tensors."""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lit_mlcourse.downloads import require_online
from lit_mlcourse.errors import DataFileNotFoundError, DataFormatError

FOLDER = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
# md5 of each file of the official archive (the table torchvision checks too).
STANDARD_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _ArraysOnly(pickle.Unpickler):
    """The batches are pickles: only what numpy needs to rebuild an array may be loaded, so a file that
    passed its checksum by accident can still not run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def ensure_present(data_dir: Path, download: bool, checksums: Mapping[str, str]) -> Path:
    """The batches folder under ``data_dir``, downloaded (md5-checked) when missing, allowed and online."""
    folder = data_dir / FOLDER
    missing = [name for name in checksums if not (folder / name).is_file()]
    if not missing:
        return folder
    where = f"CIFAR-10 is not in {folder} (missing {', '.join(missing)})"
    instead = (
        f"download {URL} on a machine with network and extract it into {data_dir}, or set --data.data_dir to the "
        f"folder that holds {FOLDER}/"
    )
    if not download:
        raise DataFileNotFoundError(f"{where}: {instead} (or allow --data.download true).")
    require_online(URL, where, instead)
    from torchvision.datasets.utils import calculate_md5, download_and_extract_archive

    try:
        # torchvision extracts only after the archive matched ARCHIVE_MD5: whatever else a server sends, members
        # such as ../x included, is never unpacked.
        download_and_extract_archive(URL, str(data_dir), md5=ARCHIVE_MD5)
    except RuntimeError:
        archive = data_dir / URL.rsplit("/", 1)[1]
        actual = calculate_md5(str(archive)) if archive.is_file() else None
        if actual in (None, ARCHIVE_MD5):
            raise  # not an archive of other content: torchvision's own error
        raise DataFormatError(
            f"{archive}, downloaded from {URL}, failed its integrity check (md5 {actual}, expected {ARCHIVE_MD5}) "
            f"and was not extracted. Delete it and try again, or {instead}."
        ) from None
    return folder


def load_batch(path: Path, expected_md5: str) -> dict:
    """One pickled batch, after its md5 matched ``expected_md5``."""
    content = path.read_bytes()
    actual = hashlib.md5(content).hexdigest()
    if actual != expected_md5:
        raise DataFormatError(
            f"{path} failed its integrity check (md5 {actual}, expected {expected_md5}): the file is corrupt or "
            "not the official one; delete it and extract cifar-10-python.tar.gz again."
        )
    try:
        return _ArraysOnly(io.BytesIO(content), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DataFormatError(f"{path} is not a CIFAR-10 batch: {error}.") from error


def read_split(folder: Path, names: tuple[str, ...], checksums: Mapping[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of the batches ``names``."""
    images, labels = [], []
    for name in names:
        path = folder / name
        batch = load_batch(path, checksums[name])
        try:
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            targets = np.asarray(batch["labels"], dtype=np.int64)
        except (KeyError, ValueError) as error:
            raise DataFormatError(
                f"{path} lacks the CIFAR-10 layout (data: N x 3072 bytes, labels): {error}."
            ) from error
        if len(targets) != len(data) or targets.min(initial=0) < 0 or targets.max(initial=0) >= len(CLASS_NAMES):
            raise DataFormatError(f"{path}: {len(data)} images with {len(targets)} labels in 0..9 expected.")
        images.append(torch.from_numpy(data.copy()))
        labels.append(torch.from_numpy(targets))
    return torch.cat(images), torch.cat(labels)
