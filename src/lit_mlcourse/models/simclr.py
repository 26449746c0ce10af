"""SimCLR self-supervised pretraining (Chen et al., 2020): a backbone learns that two augmented views of
an image belong together, with an online linear probe and a kNN monitor that say how good its features are."""

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lit_mlcourse.errors import ConfigValueError
from lit_mlcourse.losses import nt_xent
from lit_mlcourse.models.base import TaskModule
from lit_mlcourse.models.classification import NetFactory, check_features

# What a checkpoint of this task is tagged with: the fine-tune refuses any other.
CHECKPOINT_TAG = "simclr"


class SimCLR(TaskModule):
    """Contrastive pretraining of ``backbone``'s features with NT-Xent on a projection head.

    Training batches are ``((view 1, view 2), labels)`` from a DataModule with ``views`` set. The labels
    train only an online linear probe on the detached features of view 1 (``train/probe_acc``, no extra
    pass); validation and test batches come from two loaders, the unaugmented training images first (the
    memory bank), then the scored split: ``val/knn_acc`` is the majority vote of the ``knn_k`` most
    cosine-similar bank images, ``val/probe_acc`` the probe's accuracy.

    Args:
        backbone: a network from ``lit_mlcourse.nets``; its ``features`` are kept, its head dropped.
        num_classes: classes of the labels (linked from the DataModule), for the probe and the kNN vote.
        image_shape: ``(channels, height, width)`` of the images (linked from the DataModule).
        class_names: name of each class (linked from the DataModule).
        projection_dim: output size of the projection head (Linear-BN-ReLU-Linear).
        projection_hidden: hidden size of the projection head (default: the backbone's ``out_features``).
        temperature: NT-Xent temperature.
        knn_k: neighbours of the kNN monitor.
        channels_last: keep the backbone's weights and inputs in channels-last memory order (faster
            convolutions on GPUs with tensor cores, and on CPUs).
        optimizer: optimizer factory (e.g. ``lit_mlcourse.optim.LARS`` or ``torch.optim.AdamW``).
        lr_scheduler: optional schedule, e.g. :class:`~lit_mlcourse.schedules.WarmupDecay` (warmup + cosine).
    """

    monitor = "val/knn_acc"
    monitor_mode = "max"

    def __init__(
        self,
        backbone: NetFactory,
        num_classes: int = 10,
        image_shape: Sequence[int] = (3, 32, 32),
        class_names: list[str] | None = None,
        projection_dim: int = 128,
        projection_hidden: int | None = None,
        temperature: float = 0.5,
        knn_k: int = 20,
        channels_last: bool = False,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(optimizer, lr_scheduler)
        if temperature <= 0:
            raise ConfigValueError(f"model.temperature={temperature} must be > 0.")
        if knn_k < 1 or projection_dim < 1:
            raise ConfigValueError(f"model.knn_k={knn_k} and model.projection_dim={projection_dim} must be >= 1.")
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        net = backbone(num_classes, image_shape[0])
        check_features(net, "model.backbone")
        # Only the features are kept (state-dict keys backbone.*): the fine-tune loads exactly these.
        self.backbone = net.features
        width = net.out_features
        hidden = projection_hidden or width
        self.projection = nn.Sequential(
            nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, projection_dim)
        )
        self.probe = nn.Linear(width, num_classes)
        accuracy = {"task": "multiclass", "num_classes": num_classes, "validate_args": False}
        self.train_metrics = torchmetrics.MetricCollection(
            {"probe_acc": torchmetrics.Accuracy(**accuracy)}, prefix="train/"
        )
        # Updated one member at a time (kNN and probe predictions differ): no compute groups.
        scores = {"knn_acc": torchmetrics.Accuracy(**accuracy), "probe_acc": torchmetrics.Accuracy(**accuracy)}
        self.val_metrics = torchmetrics.MetricCollection(scores, prefix="val/", compute_groups=False)
        self.test_metrics = self.val_metrics.clone(prefix="test/")
        self._bank: list[tuple[torch.Tensor, torch.Tensor]] | tuple[torch.Tensor, torch.Tensor] = []
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def default_callbacks(self, subcommand: str | None) -> list[Callback]:
        return []

    def parameter_groups(self) -> Iterable[Any]:
        # The probe is a classifier on the side: no weight decay, so it does not fight the features' scale.
        trained = [*self.backbone.parameters(), *self.projection.parameters()]
        return [{"params": trained}, {"params": list(self.probe.parameters()), "weight_decay": 0.0}]

    def setup(self, stage: str) -> None:
        if stage == "predict":
            raise ConfigValueError(
                "A SimCLR checkpoint gives features, not predictions: fine-tune it first (configs/digits_finetune.yaml "
                "with --model.backbone_ckpt <its best.ckpt>), then run `lit predict` with the fine-tuned checkpoint."
            )
        datamodule = getattr(self.trainer, "datamodule", None)
        if getattr(datamodule, "hparams", {}).get("views") is None:
            raise ConfigValueError(
                "SimCLR trains on two augmented views of each image: give it DigitsDataModule, CIFAR10DataModule or "
                "ImageFolderDataModule with `views: {}` (or view options, see configs/digits_simclr.yaml) in the "
                f"data's init_args; {type(datamodule).__name__ if datamodule else 'no DataModule'} has no views set."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, out_features) features
        return self.backbone(x.contiguous(memory_format=self.memory_format))

    def _objective(self, batch: tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor], gather: Any = None):
        """The contrastive loss and the probe's (on detached features: the probe only watches), and its logits."""
        (view1, view2), labels = batch
        n = len(labels)
        features = self(torch.cat([view1, view2]))  # one pass for both views
        projections = self.projection(features)
        rank = self.global_rank if gather is not None else 0  # without a gather, this batch's rows are all there is
        loss = nt_xent(projections[:n], projections[n:], self.hparams.temperature, gather, rank)
        probe_logits = self.probe(features[:n].detach())
        return loss, F.cross_entropy(probe_logits, labels), probe_logits

    def training_loss(self, batch: tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        loss, probe_loss, _ = self._objective(batch)  # this batch's negatives only, in every process
        return loss + probe_loss

    def training_step(self, batch: tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor], batch_idx: int):
        labels = batch[1]
        n = len(labels)
        gather = None
        if self.trainer.world_size > 1:  # negatives from the whole global batch, with their gradients

            def gather(t: torch.Tensor) -> torch.Tensor:
                return self.all_gather(t, sync_grads=True).flatten(0, 1)

        loss, probe_loss, probe_logits = self._objective(batch, gather)
        self.train_metrics["probe_acc"].update(probe_logits.detach(), labels)
        # sync_dist: under DDP the mean over every process's samples, not rank 0's share (one all-reduce per epoch).
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.log("train/probe_loss", probe_loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss + probe_loss

    def on_validation_epoch_start(self) -> None:
        self._bank = []
        if self.trainer.limit_val_batches != 1.0 and not self.trainer.sanity_checking:
            rank_zero_warn(
                f"trainer.limit_val_batches={self.trainer.limit_val_batches} also limits the kNN memory bank "
                "(the training images val/knn_acc votes with): the kNN accuracy is lower than with the whole bank."
            )

    def on_test_epoch_start(self) -> None:
        self._bank = []

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._bank = []  # the bank's features are not kept through training (CIFAR: 45,000 x 512)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._bank = []

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        self._evaluate(batch, dataloader_idx, self.val_metrics)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0):
        self._evaluate(batch, dataloader_idx, self.test_metrics)

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int, metrics) -> None:
        images, labels = batch
        features = self(images)
        if dataloader_idx == 0:  # the memory bank: unaugmented training images
            self._bank.append((F.normalize(features, dim=1), labels))
            return
        if isinstance(self._bank, list):
            self._bank = self._gather_bank(self._bank)
        bank_features, bank_labels = self._bank
        predicted = knn_predict(
            F.normalize(features, dim=1), bank_features, bank_labels, self.hparams.knn_k, self.hparams.num_classes
        )
        metrics["knn_acc"].update(predicted, labels)
        metrics["probe_acc"].update(self.probe(features), labels)

    def _gather_bank(self, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        features, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        if self.trainer.world_size > 1:  # every process votes with the whole bank
            features, labels = self._gather_uneven(features), self._gather_uneven(labels)
        return features, labels

    def _gather_uneven(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (N_r, ...) of every process r, concatenated: the shares may differ in length (each bank image
        is read once, see data.in_memory.evaluation_sampler); all_gather needs equal ones, so pad, then drop."""
        sizes = self.all_gather(torch.tensor(len(tensor), device=tensor.device)).tolist()  # (W,)
        padded = torch.cat([tensor, tensor.new_zeros(max(sizes) - len(tensor), *tensor.shape[1:])])
        gathered = self.all_gather(padded)  # (W, max N_r, ...)
        return torch.cat([gathered[rank, :size] for rank, size in enumerate(sizes)])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lit_mlcourse_task"] = CHECKPOINT_TAG


def knn_predict(
    queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, k: int, num_classes: int
) -> torch.Tensor:
    """Class of each query by majority vote of its ``k`` most similar bank rows (rows L2-normalized:
    cosine similarity); ties go to the lowest class index, as scikit-learn's ``KNeighborsClassifier``."""
    k = min(k, len(bank))
    nearest = (queries @ bank.T).topk(k, dim=1).indices  # (B, k)
    votes = F.one_hot(bank_labels[nearest], num_classes).sum(1)  # (B, classes)
    return votes.argmax(1)
