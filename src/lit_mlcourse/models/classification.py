"""Image classification task: any injected network that maps images to class logits."""

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lit_mlcourse.callbacks.class_predictions import ClassPredictionWriter
from lit_mlcourse.callbacks.confusion import ConfusionMatrixPlot
from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.models.base import TaskModule

# Builds the network for (num_classes, in_channels); in a config, the class_path of a network whose
# first two arguments are those, e.g. lit_mlcourse.nets.SmallCNN, with its other arguments.
NetFactory = Callable[[int, int], nn.Module]


class ImageClassifier(TaskModule):
    """Cross-entropy classifier with top-1 (and top-5 beyond 5 classes) accuracy, macro F1 and a confusion
    matrix per stage.

    Args:
        net: the network, built for ``num_classes`` and the image channels.
        num_classes: number of classes (linked from the DataModule).
        image_shape: ``(channels, height, width)`` of the images (linked from the DataModule).
        class_names: name of each class (linked from the DataModule); kept in the checkpoint, so that
            predictions and confusion matrices name the classes.
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        channels_last: keep weights and inputs in channels-last memory order (faster convolutions on GPUs
            with tensor cores).
        compile: compile the network with ``torch.compile`` (the first steps are slower while it compiles).
        optimizer: optimizer factory (any ``torch.optim`` class from the config).
        lr_scheduler: optional schedule; :class:`~lit_mlcourse.schedules.WarmupDecay` steps per update.
    """

    monitor = "val/acc"
    monitor_mode = "max"
    needs_features = False  # a subclass that loads or freezes net.features sets it

    def __init__(
        self,
        net: NetFactory,
        num_classes: int = 10,
        image_shape: Sequence[int] = (3, 32, 32),
        class_names: list[str] | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigValueError(f"model.label_smoothing={label_smoothing} must be in [0, 1).")
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigValueError(f"model.class_names has {len(class_names)} names for {num_classes} classes.")
        # `net` stays: under the CLI it is saved as its config, so load_from_checkpoint rebuilds it.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.class_names = list(class_names) if class_names else [str(index) for index in range(num_classes)]
        self.net = net(num_classes, image_shape[0])
        if self.needs_features:
            check_features(self.net, "model.net")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # validate_args off: checking the targets' range costs a GPU-to-CPU sync per metric and step. The
        # loss (cross-entropy) already refuses out-of-range targets.
        options = {"task": "multiclass", "num_classes": num_classes, "validate_args": False}
        metrics = {"acc": torchmetrics.Accuracy(**options), "f1": torchmetrics.F1Score(**options, average="macro")}
        if num_classes > 5:
            metrics["acc_top5"] = torchmetrics.Accuracy(**options, top_k=5)
        # No compute groups: torchmetrics groups metrics whose states are equal after the first batch, and top-5
        # accuracy's stat scores can equal macro F1's there (all true classes in the top 5): F1 then read top-5
        # counts for the rest of the epoch and came out as 1.0 for a 99.4% accurate classifier.
        metrics = torchmetrics.MetricCollection(metrics, compute_groups=False)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.track_losses()
        # Rows: true class, columns: predicted class; rendered by ConfusionMatrixPlot.
        self.val_confusion = torchmetrics.ConfusionMatrix(**options)
        self.test_confusion = self.val_confusion.clone()
        self.confusion: dict[str, torch.Tensor] = {}

    def setup(self, stage: str) -> None:
        views = getattr(getattr(self.trainer, "datamodule", None), "hparams", {}).get("views")
        if views is not None:
            raise ConfigValueError(
                "data.views makes SimCLR's pairs of views, which a classifier cannot train on: remove data.views "
                "(a classifier's augmentation is set by the data's own options)."
            )

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            self.net.compile()  # in place: the state-dict keys stay those of the plain network

    def default_callbacks(self, subcommand: str | None) -> list[Callback]:
        return [ConfusionMatrixPlot(), *([ClassPredictionWriter()] if subcommand == "predict" else [])]

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.val_confusion.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes) logits
        return self.net(x.contiguous(memory_format=self.memory_format))

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, stage: str) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing if stage == "train" else 0.0)

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return self._loss(self(x), y, "train")

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self._loss(logits, y, stage)
        getattr(self, f"{stage}_metrics").update(logits.detach(), y)  # logged once per epoch
        if stage != "train":
            getattr(self, f"{stage}_confusion").update(logits, y)
        self.log_loss(stage, loss, len(y))
        return loss

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._keep_confusion("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._keep_confusion("test")

    def _keep_confusion(self, stage: str) -> None:
        metric = getattr(self, f"{stage}_confusion")
        if not self.trainer.sanity_checking:  # two batches before training say nothing about the model
            self.confusion[stage] = metric.compute().cpu()  # summed over processes under DDP
        metric.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=1)  # (B, num_classes) class probabilities


def check_features(net: nn.Module, key: str) -> None:
    """``net`` must split into ``features`` (with ``out_features``) and a head, as every image network of
    ``lit_mlcourse.nets`` does."""
    if not isinstance(getattr(net, "features", None), nn.Module) or not hasattr(net, "out_features"):
        raise ConfigValueError(
            f"{key}: {type(net).__name__} has no `features` module and `out_features`: use an image network "
            "of lit_mlcourse.nets (SmallCNN, CourseCNN, ResNet18, FastNet, TorchvisionNet)."
        )
