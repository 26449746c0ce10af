"""Regression task: one value per sample, reported in the target's own units."""

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torchmetrics
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lit_mlcourse.callbacks.prediction_plot import PredictionVsTruthPlot
from lit_mlcourse.models.base import TaskModule
from lit_mlcourse.nets.activations import ActivationName
from lit_mlcourse.nets.mlp import MLP

_LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss}


class Regressor(TaskModule):
    """An MLP over a ``(window, features)`` input that predicts one value.

    The model owns its standardization (``standardization``: per-feature ``mean``/``std`` and the
    target's ``target_mean``/``target_std``, fitted by the DataModule on the training part only and
    linked here by the CLI), so a checkpoint maps raw readings to predictions in the target's units
    with no DataModule at hand. The loss is computed on the standardized target; RMSE, MAE and R2 are
    reported in the target's units.

    Args:
        input_shape: ``(window, features)`` of one sample (linked from the DataModule).
        input_hours: per feature, how many of the latest hours are inputs (linked from the DataModule;
            ``None``: all of them).
        hidden: hidden layer sizes; ``[]`` is linear regression.
        activation: hidden activation by name.
        dropout: dropout after each hidden activation.
        batch_norm: batch normalization in the hidden layers.
        linear_skip: a linear path from input to output beside the hidden layers.
        loss: ``mse``, ``l1`` or ``huber`` (on the standardized target).
        huber_delta: transition point of the Huber loss, in target standard deviations.
        standardization: statistics from the DataModule (see above); identity when ``None``.
        optimizer: optimizer factory (any ``torch.optim`` class from the config).
        lr_scheduler: optional schedule; :class:`~lit_mlcourse.schedules.WarmupDecay` steps per update.
    """

    monitor = "val/rmse"
    monitor_mode = "min"

    def __init__(
        self,
        input_shape: Sequence[int] = (9, 18),
        input_hours: Sequence[int] | None = None,
        hidden: Sequence[int] = (),
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        linear_skip: bool = False,
        loss: Literal["mse", "l1", "huber"] = "mse",
        huber_delta: float = 1.0,
        standardization: dict[str, Any] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        window, features = input_shape
        hours = torch.tensor(list(input_hours or [window] * features))
        # (window, features): True where hour h of feature f is an input (the latest `hours[f]` hours)
        self.register_buffer("input_mask", torch.arange(window)[:, None] >= window - hours[None, :], persistent=False)
        self.net = MLP(int(self.input_mask.sum()), 1, hidden, activation, dropout, batch_norm, linear_skip)
        self.loss_fn = _LOSSES[loss](delta=huber_delta) if loss == "huber" else _LOSSES[loss]()
        stats = standardization or {}
        self.register_buffer("input_mean", torch.tensor(stats.get("mean", [0.0] * features)))
        self.register_buffer("input_std", torch.tensor(stats.get("std", [1.0] * features)))
        self.register_buffer("target_mean", torch.tensor(float(stats.get("target_mean", 0.0))))
        self.register_buffer("target_std", torch.tensor(float(stats.get("target_std", 1.0))))
        metrics = torchmetrics.MetricCollection(
            {
                "rmse": torchmetrics.MeanSquaredError(squared=False),
                "mae": torchmetrics.MeanAbsoluteError(),
                "r2": torchmetrics.R2Score(),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # (prediction, truth) pairs of the evaluation stages, in target units, for PredictionVsTruthPlot
        self.val_outcomes = torchmetrics.CatMetric()
        self.test_outcomes = torchmetrics.CatMetric()
        self.outcomes: dict[str, torch.Tensor] = {}
        self.track_losses()

    def default_callbacks(self, subcommand: str | None) -> list[Callback]:
        return [PredictionVsTruthPlot(), *super().default_callbacks(subcommand)]

    def standardized(self, x: torch.Tensor) -> torch.Tensor:
        """Prediction on the standardized target scale; ``x`` is ``(B, window, features)`` in raw units."""
        x = (x - self.input_mean) / self.input_std
        return self.net(x[:, self.input_mask]).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, window, features) -> (B,) in target units
        return self.standardized(x) * self.target_std + self.target_mean

    def _loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(z, (y - self.target_mean) / self.target_std)  # on the standardized scale

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return self._loss(self.standardized(x), y)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        z = self.standardized(x)
        loss = self._loss(z, y)
        metrics = getattr(self, f"{stage}_metrics")
        # update() rather than forward(): no per-batch value is needed, only the epoch value
        predicted = z.detach() * self.target_std + self.target_mean
        metrics.update(predicted, y)
        if stage != "train":
            getattr(self, f"{stage}_outcomes").update(torch.stack([predicted, y.to(predicted.dtype)], dim=1))
        # Epoch means for every stage (over every process's samples), so that train and val curves are comparable
        # point by point.
        self.log_loss(stage, loss, len(y))
        return loss

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._keep_outcomes("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._keep_outcomes("test")

    def _keep_outcomes(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_outcomes")
        if not self.trainer.sanity_checking:  # two batches before training say nothing about the model
            self.outcomes[stage] = metric.compute().reshape(-1, 2).cpu()  # every process's samples under DDP
        metric.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)
