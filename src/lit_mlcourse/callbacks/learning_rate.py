"""The learning-rate schedule a run followed, as one picture (warmup, decay and any restart at a glance)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.callbacks.figures import publish_figure
from lit_mlcourse.callbacks.submission import in_run_folder


class LearningRatePlot(Callback):
    """Records the learning rate of every parameter group of every optimizer at each optimizer step of ``fit``
    and draws them against the step at the end: ``lr_schedule.png`` in the run folder, ``lr_schedule`` in the
    loggers. Lightning's LearningRateMonitor logs the same values as scalars, one point at a time; a resumed
    run's picture starts at the step it resumed from."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.rates: dict[str, list[float]] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps, self.rates = [], {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        # Before the step: the rate the coming update uses. Gradient accumulation and manual optimization (several
        # optimizers per batch) can leave the step unchanged between batches: one point per step.
        if not trainer.is_global_zero or (self.steps and self.steps[-1] == trainer.global_step):
            return
        self.steps.append(trainer.global_step)
        for name, rate in self._current_rates(trainer).items():
            self.rates.setdefault(name, []).append(rate)

    @staticmethod
    def _current_rates(trainer: L.Trainer) -> dict[str, float]:
        rates = {}
        for index, optimizer in enumerate(trainer.optimizers):
            name = type(optimizer).__name__ + (f" {index}" if len(trainer.optimizers) > 1 else "")
            groups = optimizer.param_groups
            for number, group in enumerate(groups):
                rates[name + (f" group {number}" if len(groups) > 1 else "")] = float(group["lr"])
        return rates

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = in_run_folder(trainer, "lr_schedule.png")  # a collective call under DDP: every process asks
        if not trainer.is_global_zero or not self.steps:
            return
        import matplotlib.pyplot as plt  # only when drawing: the import costs ~0.5 s

        figure, axes = plt.subplots(figsize=(6, 3.5))
        for name, rates in self.rates.items():
            axes.plot(self.steps[-len(rates) :], rates, label=name)
        axes.set_xlabel("optimizer step")
        axes.set_ylabel("learning rate")
        axes.set_title("learning-rate schedule")
        if len(self.rates) > 1:
            axes.legend()
        figure.tight_layout()
        publish_figure(trainer, figure, path, "lr_schedule")
