"""What each training epoch cost and reached: its training wall time, its optimizer steps and its epoch metrics."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class EpochRecord(Callback):
    """Records one row per training epoch of ``fit`` in :attr:`epochs` and writes them to ``epochs.csv`` in the run
    folder at the end: ``epoch``, ``seconds`` (wall time of the training batches, validation excluded), ``steps``
    (optimizer updates in the epoch) and the epoch's logged values (``train/loss``, ``val/loss``, ...).

    Validation runs inside Lightning's training epoch (at its end, or every ``val_check_interval``): its time is
    subtracted, so that the figure compares how fast different settings train, not how big the validation set is.
    The row's metrics are read once the epoch has ended in full (at the next epoch's start, or when training ends):
    the model logs its train metrics in its own ``on_train_epoch_end``, after a callback's.
    """

    def __init__(self, filename: str = "epochs.csv") -> None:
        self.filename = filename
        self.epochs: list[dict[str, Any]] = []
        self._started = 0.0
        self._validation_seconds = 0.0
        self._validation_started: float | None = None
        self._first_step = 0
        self._validated = False
        self._ended: dict[str, Any] | None = None  # the epoch just ended, whose metrics are not all logged yet

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs, self._ended = [], None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record_ended_epoch(trainer)
        self._validation_seconds, self._validated = 0.0, False
        self._first_step = trainer.global_step
        self._started = _now(pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validation_started = _now(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validation_started is not None:
            self._validation_seconds += _now(pl_module) - self._validation_started
            self._validation_started, self._validated = None, True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = _now(pl_module) - self._started - self._validation_seconds
        steps = trainer.global_step - self._first_step
        self._ended = {"epoch": trainer.current_epoch, "seconds": seconds, "steps": steps}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record_ended_epoch(trainer)

    def _record_ended_epoch(self, trainer: L.Trainer) -> None:
        if self._ended is None:
            return
        row, self._ended = self._ended, None
        for key, value in sorted(trainer.callback_metrics.items()):
            # Values of an earlier validation (check_val_every_n_epoch > 1) are not this epoch's.
            if key.startswith("val/") and not self._validated:
                continue
            row[key] = float(value.item() if hasattr(value, "item") else value)
        self.epochs.append(row)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.epochs:
            return
        columns = list(dict.fromkeys(key for row in self.epochs for key in row))
        path = Path(trainer.default_root_dir) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.epochs)


def _now(pl_module: L.LightningModule) -> float:
    # GPU kernels run asynchronously: wait for the queued ones, or the clock stops before the work is done.
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)
    return time.perf_counter()
