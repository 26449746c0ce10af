"""Batches of indices into tensors that stay on the accelerator: the DataLoader only shuffles and shards
integers, and the images are gathered where the model runs (no per-image Python work, no host copies)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class IndexDataset(Dataset):
    """The integers ``0 .. size-1``, fetched a batch at a time, tagged with the split they index.

    A DataLoader over it yields ``{"split": name, "index": LongTensor (B,)}``. Lightning gives it a
    DistributedSampler under DDP like any other dataset, so each process gathers its own shard.
    """

    def __init__(self, split: str, size: int) -> None:
        self.split = split
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: list[int]) -> dict:
        return {"split": self.split, "index": torch.tensor(indices)}


def keep_batch(batch: dict) -> dict:
    """Collate function for :class:`IndexDataset`: ``__getitems__`` already made the batch."""
    return batch


class ResidentTensors:
    """Tensors of each split, copied once to each device that asks for them."""

    def __init__(self) -> None:
        self.host: dict[str, tuple[torch.Tensor, ...]] = {}
        self._copies: dict[tuple[str, torch.device], tuple[torch.Tensor, ...]] = {}

    def __setitem__(self, split: str, tensors: tuple[torch.Tensor, ...]) -> None:
        self.host[split] = tensors
        self._copies = {key: value for key, value in self._copies.items() if key[0] != split}

    def __contains__(self, split: str) -> bool:
        return split in self.host

    def on(self, split: str, device: torch.device) -> tuple[torch.Tensor, ...]:
        key = (split, torch.device(device))
        if key not in self._copies:
            self._copies[key] = tuple(tensor.to(device, non_blocking=False) for tensor in self.host[split])
        return self._copies[key]
