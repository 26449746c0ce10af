"""A regression model's predictions against the true values, as a picture in the run folder and the loggers."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.callbacks.figures import publish_figure
from lit_mlcourse.callbacks.submission import in_run_folder


class PredictionVsTruthPlot(Callback):
    """Plots ``pl_module.outcomes[stage]`` (``(N, 2)``: prediction, true value, in the target's units) once per
    run and stage: the last validation at the end of ``fit`` or ``validate``, and the test. Files:
    ``prediction_vs_truth_val.png``, ``prediction_vs_truth_test.png``; logger keys
    ``{stage}/prediction_vs_truth``.

    Args:
        target: the target's name and units, for the axes.
    """

    def __init__(self, target: str = "PM2.5") -> None:
        self.target = target

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._render(trainer, pl_module, "val")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._render(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._render(trainer, pl_module, "test")

    def _render(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        outcomes = getattr(pl_module, "outcomes", {}).get(stage)
        if outcomes is None or len(outcomes) == 0:
            return
        path = in_run_folder(trainer, f"prediction_vs_truth_{stage}.png")  # a collective call under DDP
        if not trainer.is_global_zero:
            return
        import matplotlib.pyplot as plt  # only when drawing: the import costs ~0.5 s

        predicted, true = outcomes[:, 0].float(), outcomes[:, 1].float()
        rmse = torch.sqrt(torch.mean((predicted - true) ** 2)).item()
        low, high = min(predicted.min(), true.min()).item(), max(predicted.max(), true.max()).item()
        figure, axes = plt.subplots(figsize=(5, 5))
        axes.scatter(true.numpy(), predicted.numpy(), s=6, alpha=0.5)
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="prediction = truth")
        axes.set_xlabel(f"true {self.target}")
        axes.set_ylabel(f"predicted {self.target}")
        axes.set_title(f"{stage}: {len(true)} samples, RMSE {rmse:.3f}")
        axes.legend(loc="upper left")
        figure.tight_layout()
        publish_figure(trainer, figure, path, f"{stage}/prediction_vs_truth")
