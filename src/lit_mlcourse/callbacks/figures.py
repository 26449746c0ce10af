"""A run's pictures: each is a PNG in the run folder and an image in every logger that takes images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger


def publish_figure(trainer: L.Trainer, figure: Any, path: Path, key: str) -> None:
    """Save the matplotlib ``figure`` as ``path`` and send it to the loggers under ``key``, then close it.
    Call on global rank zero only."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, figure, trainer.global_step, close=False)
        elif hasattr(logger, "log_image"):  # wandb and the other loggers that take image files
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
    plt.close(figure)


def publish_image(trainer: L.Trainer, image: torch.Tensor, path: Path, key: str) -> None:
    """Save ``image`` (``(C, H, W)`` in ``[0, 1]``) as ``path`` and send it to the loggers under ``key``.
    Call on global rank zero only."""
    import torchvision

    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.utils.save_image(image, path)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, trainer.global_step)
        elif hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
