"""Image classification task: any injected network that maps images to class logits."""

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.models.base import TaskModule

# Builds the network for (num_classes, in_channels); in a config, the class_path of a network whose
# first two arguments are those, e.g. lit_mlcourse.nets.SmallCNN, with its other arguments.
NetFactory = Callable[[int, int], nn.Module]


class ImageClassifier(TaskModule):
    """Cross-entropy classifier with accuracy and macro F1 per stage.

    Args:
        net: the network, built for ``num_classes`` and the image channels.
        num_classes: number of classes (linked from the DataModule).
        image_shape: ``(channels, height, width)`` of the images (linked from the DataModule).
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        optimizer: optimizer factory (any ``torch.optim`` class from the config).
        lr_scheduler: optional schedule; :class:`~lit_mlcourse.schedules.WarmupDecay` steps per update.
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        net: NetFactory,
        num_classes: int = 10,
        image_shape: Sequence[int] = (3, 32, 32),
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigValueError(f"model.label_smoothing={label_smoothing} must be in [0, 1).")
        # `net` stays: under the CLI it is saved as its config, so load_from_checkpoint rebuilds it.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.net = net(num_classes, image_shape[0])
        metrics = torchmetrics.MetricCollection(
            {
                "acc": torchmetrics.Accuracy(task="multiclass", num_classes=num_classes),
                "f1": torchmetrics.F1Score(task="multiclass", num_classes=num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes) logits
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), y)  # the epoch value is logged, no per-batch value needed
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(dim=1)
