"""SimCLR training images per second of this package against lightly's SimCLR: same backbone, projection head
shape, loss, optimizer, batch, augmentation, trainer and device, side by side, with the ratio.

    PYTHONPATH=/work/bench_lightly python bench/simclr.py [--root ../shared/data/hymenoptera_data]
        [--image-size 64] [--batch-size 64] [--num-workers 2] [--epochs 3] [--warmup-epochs 1]
        [--repeats 3] [--accelerator cpu]

lightly is never a dependency of this package: it lives in the benchmark environment only, installed
into a separate target folder (or venv) without its dependencies, so that pip cannot change the torch,
torchvision, lightning or numpy of the project's venv. lightly 1.6 needs nothing else for the models,
losses and transforms used here (its hydra/omegaconf CLI and pytorch_lightning utilities are not imported;
pytorch_lightning is in the venv anyway, the version of lightning)::

    pip install --target /work/bench_lightly --no-deps lightly
    PYTHONPATH=/work/bench_lightly python -c "import lightly"

Both sides train ``SmallCNN(widths=(32, 64, 128)).features`` (128 features) with a projection head
Linear(128, 128)-BN-ReLU-Linear(128, 64), NT-Xent at temperature 0.5 and AdamW (lr 2e-3, weight decay
1e-4, no schedule), driven by the same ``lightning.Trainer`` with validation off, on the train/ images of
the ants/bees folder with the same SimCLR views (random resized crop of scale (0.2, 1) to 64x64,
horizontal flip, colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, Gaussian blur sigma (0.1, 2)
with p 0.5, ImageNet normalization), in DataLoader workers with persistent workers.

- ours: ``lit_mlcourse.models.SimCLR`` on ``ImageFolderDataModule(views=...)``. It decodes the files once
  in setup, shorter side resized to round(64 * 8 / 7) = 73 (``cache=True``, this package's default), and
  cuts both views from the cached uint8 tensors; it also trains its online linear probe (part of the
  product: a linear layer on the detached features of view 1, with its own cross-entropy and accuracy).
  Both views go through the backbone in one pass, in channels-last memory order (``channels_last: true``,
  as in configs/imagefolder_simclr.yaml: faster convolutions on this CPU).
- lightly: the LightningModule of lightly's SimCLR example (backbone, ``SimCLRProjectionHead(128, 128,
  64)``, ``NTXentLoss(temperature=0.5)``, one forward pass per view) on ``torchvision.datasets.ImageFolder``
  with ``SimCLRTransform``, which decodes each JPEG at full resolution in every epoch and crops it (PIL).

That data-path difference (decode once at 73 px vs decode every epoch at full size) is real and part of
what is compared. Smaller ones: lightly's first projection Linear has no bias (BN follows), its blur is
PIL's GaussianBlur with radius sigma, ours torchvision's with a 7-pixel kernel.

The time of an epoch runs from ``on_train_epoch_start`` to ``on_train_epoch_end`` (DataLoader iteration
included); the first ``--warmup-epochs`` are not timed. The two sides alternate ``--repeats`` times
(ours, lightly, ours, ...) so that drift of the machine hits both; each repeat is a fresh model and
Trainer seeded with ``L.seed_everything(0)``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torchvision

from lit_mlcourse.data import ImageFolderDataModule
from lit_mlcourse.data.image_folder import IMAGENET_MEAN, IMAGENET_STD
from lit_mlcourse.models import SimCLR
from lit_mlcourse.nets import SmallCNN

WIDTHS = (32, 64, 128)
PROJECTION_DIM = 64
TEMPERATURE = 0.5
LR, WEIGHT_DECAY = 2e-3, 1e-4
VIEWS = {"min_scale": 0.2, "blur_probability": 0.5}  # jitter 0.4 (hue 0.1), p 0.8, grayscale 0.2: defaults
INSTALL = "pip install --target /work/bench_lightly --no-deps lightly"


def import_lightly():
    try:
        import lightly
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
        from lightly.transforms import SimCLRTransform
    except ImportError as error:
        sys.exit(
            f"bench/simclr.py compares against lightly, which is not importable ({error}). Install it into a "
            f"separate folder, never into the project's venv:\n    {INSTALL}\n"
            "and run: PYTHONPATH=/work/bench_lightly python bench/simclr.py"
        )
    return lightly, NTXentLoss, SimCLRProjectionHead, SimCLRTransform


def backbone(num_classes: int, in_channels: int) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, widths=WIDTHS)


def adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)


class EpochTimer(L.Callback):
    """Seconds and images of each training epoch."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.images: list[int] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.images.append(0)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images[-1] += len(batch[1])  # both sides' batches are ((view 1, view 2), labels)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.seconds.append(time.perf_counter() - self._start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer(args: argparse.Namespace, timer: EpochTimer) -> L.Trainer:
    return L.Trainer(
        accelerator=args.accelerator, devices=1, max_epochs=args.warmup_epochs + args.epochs, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip


def images_per_second(timer: EpochTimer, warmup: int) -> tuple[float, int]:
    """Images per second over the timed epochs, and the images of one epoch."""
    return sum(timer.images[warmup:]) / sum(timer.seconds[warmup:]), timer.images[-1]


def run_ours(args: argparse.Namespace) -> tuple[float, int]:
    L.seed_everything(0, verbose=False)
    dm = ImageFolderDataModule(
        args.root, image_size=args.image_size, batch_size=args.batch_size, num_workers=args.num_workers, views=VIEWS
    )
    model = SimCLR(
        backbone=backbone, num_classes=dm.num_classes, image_shape=dm.image_shape, projection_dim=PROJECTION_DIM,
        temperature=TEMPERATURE, channels_last=True, optimizer=adamw,
    )  # fmt: skip
    timer = EpochTimer()
    trainer(args, timer).fit(model, dm)
    return images_per_second(timer, args.warmup_epochs)


class LightlySimCLR(L.LightningModule):
    """lightly's SimCLR example (docs: examples/pytorch_lightning/simclr.py) on this benchmark's backbone.
    A ``lightning.LightningModule`` rather than ``pytorch_lightning``'s, so that the same Trainer drives it."""

    def __init__(self, NTXentLoss, SimCLRProjectionHead) -> None:
        super().__init__()
        net = backbone(2, 3)
        self.backbone = net.features
        self.projection_head = SimCLRProjectionHead(net.out_features, net.out_features, PROJECTION_DIM)
        self.criterion = NTXentLoss(temperature=TEMPERATURE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        (x0, x1), _ = batch
        loss = self.criterion(self.forward(x0), self.forward(x1))
        self.log("train_loss_ssl", loss, on_step=False, on_epoch=True, batch_size=len(x0))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adamw(self.parameters())


def run_lightly(args: argparse.Namespace, lightly_api) -> tuple[float, int]:
    _, NTXentLoss, SimCLRProjectionHead, SimCLRTransform = lightly_api
    L.seed_everything(0, verbose=False)
    # cj_strength 0.5 scales the defaults (0.8, 0.8, 0.8, 0.2) to ours: brightness, contrast, saturation
    # 0.4 and hue 0.1.
    transform = SimCLRTransform(
        input_size=args.image_size, cj_prob=0.8, cj_strength=0.5, min_scale=VIEWS["min_scale"],
        random_gray_scale=0.2, gaussian_blur=VIEWS["blur_probability"], sigmas=(0.1, 2.0), vf_prob=0.0,
        hf_prob=0.5, rr_prob=0.0, normalize={"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    )  # fmt: skip
    dataset = torchvision.datasets.ImageFolder(str(Path(args.root) / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers, drop_last=False,
        persistent_workers=args.num_workers > 0,
    )  # fmt: skip
    timer = EpochTimer()
    trainer(args, timer).fit(LightlySimCLR(NTXentLoss, SimCLRProjectionHead), loader)
    return images_per_second(timer, args.warmup_epochs)


def summary(rates: list[float]) -> str:
    spread = statistics.stdev(rates) if len(rates) > 1 else 0.0
    return f"{statistics.mean(rates):8.1f} +- {spread:.1f} img/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data/hymenoptera_data", help="folder with train/<class>/")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs before them")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu, gpu, ...")
    args = parser.parse_args()
    if args.epochs < 1 or args.warmup_epochs < 0 or args.repeats < 1:
        parser.error("--epochs and --repeats must be >= 1, --warmup-epochs >= 0.")
    if not (Path(args.root) / "train").is_dir():
        parser.error(f"{Path(args.root) / 'train'} is not a folder: give --root the hymenoptera_data folder.")
    lightly_api = import_lightly()

    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, lightning {L.__version__}, lightly {lightly_api[0].__version__}"
    )
    if args.accelerator != "cpu" and torch.cuda.is_available():
        print("device:", torch.cuda.get_device_name())
    print(
        f"settings: {args.image_size}x{args.image_size}, batch {args.batch_size}, {args.num_workers} workers, "
        f"{args.warmup_epochs} warm-up + {args.epochs} timed epochs, {args.repeats} repeats, {args.accelerator}"
    )
    print("note: lit_mlcourse also trains its online linear probe; lightly trains the SSL objective only.")

    rates: dict[str, list[float]] = {"lit_mlcourse": [], "lightly": []}
    for repeat in range(args.repeats):
        for name in rates:  # alternating: ours, lightly, ours, ...
            rate, images = run_ours(args) if name == "lit_mlcourse" else run_lightly(args, lightly_api)
            rates[name].append(rate)
            print(f"repeat {repeat}: {name:<12} {rate:8.1f} img/s ({images} images per epoch)", flush=True)
    print()
    for name, values in rates.items():
        print(f"{name:<12} {summary(values)}  (runs: {', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.mean(rates["lit_mlcourse"]) / statistics.mean(rates["lightly"])
    print(f"ratio (lit_mlcourse / lightly): {ratio:.2f}x")


if __name__ == "__main__":
    main()
