"""``lit predict`` output of a classifier: one row per image with the predicted class's name."""

from __future__ import annotations

import csv
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from lit_mlcourse.callbacks.submission import in_run_folder, require_one_process


class ClassPredictionWriter(BasePredictionWriter):
    """Writes ``path,class,probability`` per image: the file (from the DataModule's ``predict_paths``, else
    the image's index under an ``index`` column), the most probable class's name and its probability.

    Args:
        path: output file; a relative path is taken inside the run folder.
    """

    def __init__(self, path: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        require_one_process(trainer, type(self).__name__)
        probabilities, classes = torch.cat(predictions).float().max(dim=1)  # (N, num_classes) -> (N,), (N,)
        paths = getattr(trainer.datamodule, "predict_paths", None)
        keys = paths or range(len(classes))
        if len(keys) != len(classes):
            raise RuntimeError(f"{len(classes)} predictions for {len(keys)} images: the predict set is inconsistent.")
        names = pl_module.class_names
        path = in_run_folder(trainer, self.path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("path" if paths else "index", "class", "probability"))
            rows = zip(keys, classes.tolist(), probabilities.tolist(), strict=True)
            writer.writerows((key, names[index], f"{probability:.4f}") for key, index, probability in rows)
        print(f"wrote {len(classes)} predictions to {path}", flush=True)
