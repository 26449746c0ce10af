"""What every task model shares: the injected optimizer and schedule, and the metric a run is judged by."""

from collections.abc import Iterable
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MeanMetric

from lit_mlcourse.callbacks.submission import SubmissionWriter
from lit_mlcourse.schedules import WarmupDecay


class TaskModule(L.LightningModule):
    """Base of the task models.

    Subclasses set ``monitor`` (the logged metric that picks the best checkpoint) and
    ``monitor_mode`` (``min`` or ``max``); the CLI reads them to configure checkpointing. They keep one
    torchmetrics collection per stage (``train_metrics``, ``val_metrics``, ``test_metrics``), update it
    in each step and leave the logging to the epoch-end hooks here.
    """

    monitor: ClassVar[str]
    monitor_mode: ClassVar[str]
    # Why callbacks.HessianEigenvalues cannot judge this task, when it cannot.
    hessian_not_applicable: ClassVar[str | None] = None

    def __init__(self, optimizer: OptimizerCallable, lr_scheduler: LRSchedulerCallable | None) -> None:
        super().__init__()
        self.make_optimizer = optimizer
        self.make_lr_scheduler = lr_scheduler
        self.loss_means: nn.ModuleDict | None = None  # set by track_losses()

    def track_losses(self) -> None:
        """Keep one mean per stage for :meth:`log_loss` (call in ``__init__``)."""
        self.loss_means = nn.ModuleDict({f"{stage}_loss": MeanMetric() for stage in ("train", "val", "test")})

    def log_loss(self, stage: str, loss: torch.Tensor, batch_size: int) -> None:
        """Log ``{stage}/loss``: the epoch's mean over every sample of every process.

        A torchmetrics mean, whose states (weighted sum, total weight) are summed over processes. Lightning's own
        ``self.log(loss, sync_dist=True)`` averages its integer count of samples over processes, which floors when they
        saw different numbers (evaluation splits are not padded under DDP, see data.in_memory.evaluation_sampler):
        val/loss of 159 digits on 2 processes came out 0.6% high (Lightning issue #21859)."""
        mean = self.loss_means[f"{stage}_loss"]
        mean.update(loss.detach(), weight=batch_size)
        self.log(f"{stage}/loss", mean, on_step=False, on_epoch=True)

    def default_callbacks(self, subcommand: str | None) -> list[Callback]:
        """Callbacks ``lit`` adds for this task unless the config has one of the same kind."""
        return [SubmissionWriter("predictions.csv")] if subcommand == "predict" else []

    def adapt_trainer_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trainer's settings (``trainer:`` of the config), changed where this task handles one itself."""
        return config

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        """Loss of ``batch``; updates the stage's metrics and logs ``{stage}/loss``."""
        raise NotImplementedError

    def training_loss(self, batch: Any) -> torch.Tensor:
        """The training objective of ``batch`` and nothing else: no metric updated, nothing logged. The Hessian
        callback differentiates it twice, as a function of the weights."""
        raise NotImplementedError(f"{type(self).__name__} does not define training_loss")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_start(self) -> None:
        # A run resumed with another max_epochs / max_steps restores the schedule's old horizon: a cosine
        # decay would end early (lr 0 for the extra epochs) or never finish. Recompute it for the new one.
        total = self.trainer.estimated_stepping_batches
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, WarmupDecay) and scheduler.total_steps != int(total):
                rank_zero_warn(
                    f"The training length changed from {scheduler.total_steps} to {int(total)} optimizer steps "
                    "since the checkpoint: the learning-rate schedule continues over the new length."
                )
                scheduler.bind_total_steps(total)

    def on_fit_start(self) -> None:
        # A validate or test run before fit leaves metric states created under inference mode, which
        # fit's loops cannot update in place: start from fresh states.
        for metrics in (self.train_metrics, self.val_metrics, self.test_metrics, *(self.loss_means or {}).values()):
            metrics.reset()

    # The collections are logged as objects once per epoch (Lightning computes, syncs across processes
    # and resets them): logging them at every step costs more than the step itself for small models.
    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics)

    def parameter_groups(self) -> Iterable[Any]:
        """What the optimizer trains: parameters, or groups of them; a group's ``lr_factor`` scales the
        configured learning rate for that group (a fine-tuned backbone's smaller rate, say)."""
        return self.parameters()

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimizer over :meth:`parameter_groups`."""
        optimizer = self.make_optimizer(self.parameter_groups())
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_factor", 1.0)
        return optimizer

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        if self.make_lr_scheduler is None:
            return optimizer
        scheduler = self.make_lr_scheduler(optimizer)
        # Warmup schedules count optimizer steps; torch's own schedulers (StepLR, CosineAnnealingLR, ...)
        # keep their documented meaning of one step per epoch.
        interval = "epoch"
        if isinstance(scheduler, WarmupDecay):
            if scheduler.total_steps is None:
                scheduler.bind_total_steps(self.trainer.estimated_stepping_batches)
            interval = "step"
        config: dict[str, Any] = {"scheduler": scheduler, "interval": interval}
        if isinstance(scheduler, ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
