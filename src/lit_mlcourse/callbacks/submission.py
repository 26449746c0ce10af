"""``lit predict`` output as a Kaggle-style submission file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter


class SubmissionWriter(BasePredictionWriter):
    """Writes one row ``<id>,<prediction>`` per predicted sample under a header ``id,value``.

    The ids come from the DataModule's ``predict_ids`` (for PM2.5: ``id_0`` ... as in test.csv), else
    they count the samples from 0. `lit predict` adds one writing ``predictions.csv`` when the config has
    no prediction writer.

    Args:
        path: output file; a relative path is taken inside the run folder.
        header: the two column names.
    """

    def __init__(self, path: str = "submission.csv", header: tuple[str, str] = ("id", "value")) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.header = header
        self.written: Path | None = None

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        require_one_process(trainer, type(self).__name__)
        # One value per sample: a regression output, or the most probable class of a classifier's (B, C).
        values = torch.cat([_one_value_each(batch) for batch in predictions]).float().cpu().tolist()
        ids = getattr(trainer.datamodule, "predict_ids", None) or list(range(len(values)))
        if len(values) != len(ids):
            raise RuntimeError(f"{len(values)} predictions for {len(ids)} ids: the predict set is inconsistent.")
        path = in_run_folder(trainer, self.path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.header)
            writer.writerows((key, f"{value:.6g}") for key, value in zip(ids, values, strict=True))
        self.written = path
        print(f"wrote {len(values)} predictions to {path}", flush=True)


def _one_value_each(batch: torch.Tensor) -> torch.Tensor:
    return batch.argmax(dim=1) if batch.ndim == 2 and batch.shape[1] > 1 else batch.reshape(-1)


def require_one_process(trainer: L.Trainer, writer: str) -> None:
    if trainer.world_size > 1:
        raise RuntimeError(
            f"{writer} writes the predictions of one process: run `lit predict` with --trainer.devices 1 "
            "(prediction needs no more)."
        )


def in_run_folder(trainer: L.Trainer, path: str) -> Path:
    """``path``, taken inside the run folder when relative; its parent folder exists."""
    resolved = Path(path)
    if not resolved.is_absolute():
        resolved = Path(trainer.log_dir or trainer.default_root_dir) / resolved
    resolved.parent.mkdir(parents=True, exist_ok=True)
    return resolved
