"""Images per second of the two CIFAR-10 data paths alone (no model), on synthetic CIFAR-format data.

    python bench/cifar_data.py [--images 20000] [--batch_size 256] [--workers 2] [--device cpu] [--epochs 3]

`classic`: torchvision.transforms.v2 per sample in DataLoader workers, then the copy to the device.
`device`: the split resident on the device, batches gathered by index, crop + flip + normalize batch-wise.
Both get the same DataModule options (batch size, workers, crop padding 4, flips); the device path
needs no workers and ignores the option. The first epoch (worker start-up, first copy to the device) is
not timed; the figure is the median over the other epochs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cifar_fixtures import write_cifar_folder

from lit_mlcourse.data import CIFAR10DataModule


def images_per_second(dm: CIFAR10DataModule, device: torch.device, epochs: int) -> float:
    rates = []
    loader = dm.train_dataloader()  # one loader: persistent workers start once, as in training
    for _ in range(epochs):
        count, start = 0, time.perf_counter()
        for batch in loader:
            if isinstance(batch, dict):
                batch = {**batch, "index": batch["index"].to(device)}
            else:
                batch = [tensor.to(device, non_blocking=True) for tensor in batch]
            images, _ = dm.on_after_batch_transfer(batch, 0)
            count += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000, help="synthetic training images")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per path, the first one untimed")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        checksums = write_cifar_folder(Path(folder), per_batch=args.images // 5)
        rates = {}
        for path in ("classic", "device"):
            dm = CIFAR10DataModule(folder, data_path=path, val_size=10, batch_size=args.batch_size,
                                   num_workers=args.workers, checksums=checksums)  # fmt: skip
            dm.setup("fit")
            rates[path] = images_per_second(dm, device, args.epochs)
    print(f"device {device}, batch {args.batch_size}, workers {args.workers}, torch threads {torch.get_num_threads()}")
    for path, rate in rates.items():
        print(f"{path:8s} {rate:10.0f} img/s")
    print(f"ratio device / classic: {rates['device'] / rates['classic']:.1f}x")


if __name__ == "__main__":
    main()
