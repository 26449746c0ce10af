"""The confusion matrix of a classifier, with class names, as a PNG in the run folder and an image in
every logger that takes images (TensorBoard, wandb)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.callbacks.figures import publish_figure
from lit_mlcourse.callbacks.submission import in_run_folder


class ConfusionMatrixPlot(Callback):
    """Renders the model's last confusion matrix (``pl_module.confusion[stage]``: true class by row,
    predicted class by column) once per run and stage: the last validation at the end of ``fit`` or
    ``validate``, and the test.  Files: ``confusion_matrix_val.png``, ``confusion_matrix_test.png``.
    """

    def __init__(self) -> None:
        self.written: dict[str, Path] = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._render(trainer, pl_module, "val")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._render(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._render(trainer, pl_module, "test")

    def _render(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        matrix = getattr(pl_module, "confusion", {}).get(stage)
        if matrix is None:
            return
        # Every process asks for the path: trainer.log_dir is a collective call under DDP.
        path = in_run_folder(trainer, f"confusion_matrix_{stage}.png")
        if not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt  # only when a matrix is drawn: the import costs ~0.5 s

        names = list(pl_module.class_names)
        # Readable up to ~50 classes; beyond, a heat map without counts or names (and a bounded image size).
        side = min(20.0, max(4.0, 0.55 * len(names) + 2.0))
        figure, axes = plt.subplots(figsize=(side, side))
        many = len(names) > 50
        pl_module.val_confusion.plot(val=matrix, ax=axes, labels=None if many else names, add_text=len(names) <= 30)
        axes.set_title(f"{stage} confusion matrix (rows: true class)")
        figure.tight_layout()
        publish_figure(trainer, figure, path, f"{stage}/confusion_matrix")
        self.written[stage] = path
