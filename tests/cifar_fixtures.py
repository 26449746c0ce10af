"""A tiny CIFAR-10 folder in the exact layout of the official archive (pickled batches of N x 3072 uint8
rows, a ``batches.meta``), with its own md5 table: the integrity check runs for real on it."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3072) uint8 images whose colour depends on the label (learnable), with noise."""
    base = np.stack([(labels * 25) % 256, (labels * 70) % 256, 255 - labels * 25], axis=1)  # (N, 3)
    images = np.repeat(base[:, :, None], 1024, axis=2) + rng.integers(-40, 40, size=(len(labels), 3, 1024))
    return np.clip(images, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_cifar_folder(data_dir: Path, per_batch: int = 40, seed: int = 0) -> dict[str, str]:
    """Write ``data_dir/cifar-10-batches-py`` and return its md5 table (file name -> md5)."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in BATCHES:
        labels = np.arange(per_batch) % 10
        batch = {
            "batch_label": f"synthetic {name}",
            "labels": labels.tolist(),
            "data": class_images(labels, rng),
            "filenames": [f"{name}_{index}.png" for index in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"num_cases_per_batch": per_batch, "label_names": CLASS_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}
