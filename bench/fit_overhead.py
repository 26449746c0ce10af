"""`lit fit` training steps per second against a hand-written PyTorch loop: same net, optimizer, schedule,
batch, data path and precision, so the ratio is the cost of Lightning and this package.

    python bench/fit_overhead.py [--config configs/cifar10_fast.yaml] [--batch_size 256] [--steps 20]
                                 [--device cpu] [--precision 32-true] [--repeats 3]

Both sides build everything from the same config through LitCLI (model, optimizer, LR schedule,
CIFAR10DataModule with its device path on synthetic CIFAR-format data); the hand loop then drives them
itself: gather + augment the batch, forward, cross-entropy (with the config's label smoothing), backward,
optimizer step, schedule step. `lit fit` runs its own trainer as configured (progress line, CSV and
TensorBoard loggers, LR monitor, checkpointing, train metrics), without validation. The first `--warmup`
steps are not timed. Sides alternate `--repeats` times; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cifar_fixtures import write_cifar_folder

from lit_mlcourse.cli import LitCLI
from lit_mlcourse.schedules import WarmupDecay


class StepTimer(L.Callback):
    """Seconds from the end of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Synchronize only at the edges of the timed window: the GPU's queue may hide Python overhead.
        if batch_idx + 1 == self.warmup:
            _synchronize(pl_module.device)
            self.start = time.perf_counter()
        if trainer.global_step == trainer.max_steps:
            _synchronize(pl_module.device)
            self.end, self.steps = time.perf_counter(), trainer.global_step - self.warmup


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(args: argparse.Namespace, data_dir: str, checksums: dict, out: str) -> LitCLI:
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    return LitCLI(
        args=["--config", args.config, "--data.data_dir", data_dir, "--data.checksums", json.dumps(checksums),
              "--data.batch_size", str(args.batch_size), "--data.val_size", "16", "--data.data_path", "device",
              "--trainer.max_steps", str(args.steps), "--trainer.limit_val_batches", "0",
              "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", accelerator, "--trainer.devices", "1",
              "--trainer.precision", args.precision, "--trainer.default_root_dir", out],
        run=False,
    )  # fmt: skip


def lit_fit(args: argparse.Namespace, data_dir: str, checksums: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        cli = build(args, data_dir, checksums, out)
        timer = StepTimer(args.warmup)
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, cli.datamodule)
        return timer.steps / (timer.end - timer.start)


def hand_loop(args: argparse.Namespace, data_dir: str, checksums: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        cli = build(args, data_dir, checksums, out)
    device = torch.device(args.device)
    model, dm = cli.model.to(device), cli.datamodule
    model.configure_model()  # channels_last / compile as the config asks
    model.train()
    optimizer = model.make_optimizer(model.parameters())
    scheduler = model.make_lr_scheduler(optimizer) if model.make_lr_scheduler else None
    if isinstance(scheduler, WarmupDecay):
        scheduler.bind_total_steps(args.steps)
    smoothing = model.hparams.label_smoothing
    bf16 = args.precision.startswith("bf16")
    dm.setup("fit")
    start, step = 0.0, 0
    while step < args.steps:
        for batch in dm.train_dataloader():
            batch = dm.on_after_batch_transfer({**batch, "index": batch["index"].to(device)}, 0)
            x, y = batch
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if step == args.warmup:
                _synchronize(device)
                start = time.perf_counter()
            if step == args.steps:
                break
    _synchronize(device)
    return (args.steps - args.warmup) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/cifar10_fast.yaml")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="training steps per run, warmup included")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", help="32-true or bf16-mixed, the same on both sides")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        checksums = write_cifar_folder(Path(data_dir), per_batch=(args.steps * args.batch_size) // 5 + 16)
        rates: dict[str, list[float]] = {"hand loop": [], "lit fit": []}
        for _ in range(args.repeats):
            rates["hand loop"].append(hand_loop(args, data_dir, checksums))
            rates["lit fit"].append(lit_fit(args, data_dir, checksums))
    print(f"{args.config}, batch {args.batch_size}, {args.device}, {args.precision}, torch threads "
          f"{torch.get_num_threads()}, {args.steps - args.warmup} timed steps x {args.repeats} repeats")  # fmt: skip
    for side, values in rates.items():
        print(f"{side:9s} median {statistics.median(values):8.3f} steps/s  ({', '.join(f'{v:.3f}' for v in values)})")
    ratio = statistics.median(rates["lit fit"]) / statistics.median(rates["hand loop"])
    print(f"ratio lit fit / hand loop: {ratio:.3f}x")


if __name__ == "__main__":
    main()
