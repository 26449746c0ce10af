"""A short name for the data a model is trained on, stored in every checkpoint lit writes (callbacks.run_record) and
compared when a checkpoint is loaded (checkpoint_identity): a model of one dataset is not resumed or evaluated on
another of the same shape, where every key and tensor shape would match.

Each DataModule of this package has ``data_fingerprint`` (a string) and ``data_fingerprint_of`` (what it covers, for
messages). They are cheap (a few milliseconds beside the read of the data) and name content, never absolute paths, so
that a data folder moved or copied elsewhere keeps its fingerprint:

- PM25DataModule: sha256 of the training CSV's bytes (``train_file``; not the test CSV, which only predictions read).
- ImageFolderDataModule: sha256 of the class list and of the sorted paths (relative to ``root``) and byte sizes of
  the training and validation images. Sizes, not contents: hashing every image would cost as much as decoding them.
- CIFAR10DataModule: sha256 of the md5 table every file is checked against when it is read (``checksums``): exact
  for the content, at no cost.
- DigitsDataModule: a constant: scikit-learn ships one digits dataset.

How the data is split, folded, subsampled or augmented is not part of it: those are the DataModule's
hyperparameters, which the checkpoint keeps beside it (``datamodule_hyper_parameters``). A DataModule from elsewhere
without ``data_fingerprint`` records none, and its checkpoints are compared by class only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

PREFIX = "sha256:"
DIGITS = 16  # 64 bits: enough to tell datasets apart (this is a check against mistakes, not against forgery)


def digest_bytes(data: bytes) -> str:
    return PREFIX + hashlib.sha256(data).hexdigest()[:DIGITS]


def digest_value(value: Any) -> str:
    """The digest of a JSON-able value (lists, dicts, strings, numbers), independent of dict order."""
    return digest_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def digest_file(path: str | Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return PREFIX + sha.hexdigest()[:DIGITS]


def data_fingerprint(datamodule: Any) -> tuple[str | None, str | None]:
    """``(fingerprint, what it covers)`` of ``datamodule``; ``(None, None)`` for one that defines none."""
    fingerprint = getattr(datamodule, "data_fingerprint", None) if datamodule is not None else None
    if not isinstance(fingerprint, str):
        return None, None
    return fingerprint, str(getattr(datamodule, "data_fingerprint_of", "") or "") or None
