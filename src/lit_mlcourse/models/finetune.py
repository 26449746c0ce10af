"""The downstream task of SimCLR: a classifier whose backbone starts from a SimCLR checkpoint."""

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from lit_mlcourse.checkpoint_safety import read_checkpoint_data
from lit_mlcourse.errors import ConfigValueError, DataFileNotFoundError
from lit_mlcourse.models.classification import ImageClassifier, NetFactory
from lit_mlcourse.models.simclr import CHECKPOINT_TAG
from lit_mlcourse.nets.torchvision_net import restoring_checkpoint


class FineTunedClassifier(ImageClassifier):
    """:class:`~lit_mlcourse.models.ImageClassifier` whose network's ``features`` are loaded from a SimCLR
    checkpoint (its ``backbone``); the head is new. Same metrics, confusion matrices and predictions.

    Args:
        net: the network, of the same class and feature arguments as the SimCLR backbone.
        backbone_ckpt: the SimCLR checkpoint (``best.ckpt`` of a ``configs/*_simclr.yaml`` run); ``None``
            trains from scratch (the baseline a pretraining must beat).
        mode: ``linear`` freezes the backbone and keeps it in eval mode (its batch-norm statistics too): only
            the head trains, the linear evaluation protocol. ``finetune`` trains everything, a pretrained
            backbone at ``backbone_lr_factor`` times the learning rate.
        backbone_lr_factor: the pretrained backbone's share of the learning rate in ``finetune`` mode (without
            ``backbone_ckpt`` every weight trains at the full rate).
        The other arguments are :class:`~lit_mlcourse.models.ImageClassifier`'s.
    """

    needs_features = True

    def __init__(
        self,
        net: NetFactory,
        num_classes: int = 10,
        image_shape: Sequence[int] = (3, 32, 32),
        class_names: list[str] | None = None,
        backbone_ckpt: str | None = None,
        mode: Literal["linear", "finetune"] = "finetune",
        backbone_lr_factor: float = 1.0,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
        compile: bool = False,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        if backbone_lr_factor < 0:
            raise ConfigValueError(f"model.backbone_lr_factor={backbone_lr_factor} must be >= 0.")
        super().__init__(
            net, num_classes, image_shape, class_names, label_smoothing, channels_last, compile, optimizer, lr_scheduler
        )
        # Restoring a fine-tuned checkpoint overwrites every weight: the SimCLR file need not exist any more.
        if backbone_ckpt is not None and not restoring_checkpoint():
            load_backbone(backbone_ckpt, self.net.features)
        if mode == "linear":
            # Lightning keeps each module's train/eval mode as the model sets it (it never calls .train() in
            # fit), so eval mode set here holds through training; train() below keeps it for manual calls.
            self.net.features.requires_grad_(False).eval()
            if backbone_ckpt is None:
                rank_zero_warn(
                    "model.mode=linear without model.backbone_ckpt trains a head on random, frozen features."
                )

    def train(self, mode: bool = True) -> "FineTunedClassifier":
        super().train(mode)
        if self.hparams.mode == "linear":
            self.net.features.eval()  # frozen features: batch-norm statistics stay those of the pretraining
        return self

    def parameter_groups(self) -> Iterable[Any]:
        if self.hparams.mode == "linear":
            return self.net.head.parameters()
        # The factor protects pretrained features; a backbone without a checkpoint (the scratch baseline)
        # trains at the full rate, as a plain classifier does.
        factor = self.hparams.backbone_lr_factor if self.hparams.backbone_ckpt else 1.0
        return [
            {"params": list(self.net.features.parameters()), "lr_factor": factor},
            {"params": [p for name, p in self.net.named_parameters() if not name.startswith("features.")]},
        ]


def load_backbone(path: str | Path, features: nn.Module) -> None:
    """Load the ``backbone.*`` weights of the SimCLR checkpoint ``path`` into ``features``, strictly: a file
    that is not a SimCLR checkpoint, or a backbone of another shape, is refused naming the file and keys."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"model.backbone_ckpt: {path} does not exist: give the best.ckpt of a SimCLR run.")
    # As --ckpt_path: a local file of tensors and plain data only (weights_only); its hyperparameters build nothing.
    checkpoint = read_checkpoint_data(path, "model.backbone_ckpt")
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    trained = hparams.get("_class_path", "an unknown model")
    if not isinstance(checkpoint, dict) or checkpoint.get("lit_mlcourse_task") != CHECKPOINT_TAG:
        raise ConfigValueError(
            f"model.backbone_ckpt: {path} is not a SimCLR checkpoint (it was saved by {trained}): give the "
            "best.ckpt of a `lit fit --config configs/*_simclr.yaml` run."
        )
    state = {
        key.removeprefix("backbone."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("backbone.")
    }
    expected = features.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    resized = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if state[key].shape != expected[key].shape
    ]
    if missing or unexpected or resized:
        problems = [
            *([f"missing in the checkpoint: {_few(missing)}"] if missing else []),
            *([f"not in this network: {_few(unexpected)}"] if unexpected else []),
            *([f"other shapes (checkpoint vs network): {_few(resized)}"] if resized else []),
        ]
        backbone = hparams.get("backbone", {})
        raise ConfigValueError(
            f"model.backbone_ckpt: {path} holds another backbone than model.net "
            f"(the checkpoint's: {backbone.get('class_path', '?')} {backbone.get('init_args', {})}); "
            + "; ".join(problems)
            + ". Give model.net the checkpoint's backbone class and arguments (config.yaml in its run folder)."
        )
    features.load_state_dict(state, strict=True)


def _few(items: list[str], shown: int = 5) -> str:
    more = f" ... and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
