"""What every task model shares: the injected optimizer and schedule, and the metric a run is judged by."""

from typing import Any, ClassVar

import lightning as L
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lit_mlcourse.schedules import WarmupDecay


class TaskModule(L.LightningModule):
    """Base of the task models.

    Subclasses set ``monitor`` (the logged metric that picks the best checkpoint) and
    ``monitor_mode`` (``min`` or ``max``); the CLI reads them to configure checkpointing.
    """

    monitor: ClassVar[str]
    monitor_mode: ClassVar[str]

    def __init__(self, optimizer: OptimizerCallable, lr_scheduler: LRSchedulerCallable | None) -> None:
        super().__init__()
        self.make_optimizer = optimizer
        self.make_lr_scheduler = lr_scheduler

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.parameters())
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
