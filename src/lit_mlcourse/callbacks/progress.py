"""A progress bar for logs: one plain line per epoch instead of carriage-return animations."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar


class LineProgressBar(ProgressBar):
    """Prints ``epoch 3/20  train/loss 0.412  val/acc 0.953  (1.2 s)`` after each epoch and one line per
    validate / test / predict run. Used when the output is not a terminal (CI logs, SLURM files)."""

    def __init__(self, stream=None) -> None:
        super().__init__()
        self._enabled = True
        self._stream = stream
        self._started = 0.0
        self._finished: tuple[int, float] | None = None  # (epoch, seconds) not printed yet

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=self._stream or sys.stdout, flush=True)

    @staticmethod
    def _metrics(trainer: L.Trainer, prefixes: tuple[str, ...]) -> str:
        metrics = trainer.callback_metrics
        return "  ".join(f"{key} {float(metrics[key]):.4g}" for key in sorted(metrics) if key.startswith(prefixes))

    # The epoch's line is printed once the epoch is over for every hook: models log their epoch
    # metrics in their own on_train_epoch_end, which Lightning calls after the callbacks'.
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()  # a run resumed mid-epoch gets no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_finished_epoch(trainer)
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finished = (trainer.current_epoch, time.perf_counter() - self._started)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_finished_epoch(trainer)

    def _print_finished_epoch(self, trainer: L.Trainer) -> None:
        if self._finished is None:
            return
        epoch, seconds = self._finished
        self._finished = None
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        metrics = self._metrics(trainer, ("train/", "val/"))
        self._print(trainer, f"epoch {epoch + 1}/{total}  {metrics}  ({seconds:.1f} s)")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print(trainer, f"validate  {self._metrics(trainer, ('val/',))}")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer, f"test  {self._metrics(trainer, ('test/',))}")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(trainer, f"predict  {sum(trainer.num_predict_batches)} batches")
