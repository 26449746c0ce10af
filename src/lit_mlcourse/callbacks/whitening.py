"""airbench's data-dependent start: a FastNet's first layer set to whiten 2x2 patches of the training
images before the first step."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.errors import ConfigValueError


class WhiteningInit(Callback):
    """Calls ``net.init_whitening`` (:class:`~lit_mlcourse.nets.FastNet`) with ``images`` training images
    at the start of a fresh ``fit``. A resumed run keeps the checkpoint's filters.

    It runs in ``setup``, before the model is wrapped for DDP: a layer frozen after the wrap would leave
    DDP waiting for its gradients. Under DDP, rank 0's filters are broadcast so every replica starts alike.

    Args:
        images: training images whose patches estimate the covariance (airbench: 5000).
        freeze: keep the whitening filters fixed during training, as airbench does.
    """

    def __init__(self, images: int = 5000, freeze: bool = True) -> None:
        self.images, self.freeze = images, freeze

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        net = getattr(pl_module, "net", None)
        if not hasattr(net, "init_whitening"):
            raise ConfigValueError(
                f"WhiteningInit needs a network with init_whitening (lit_mlcourse.nets.FastNet), not "
                f"{type(net).__name__}: remove the callback from trainer.callbacks or change model.net."
            )
        if trainer.ckpt_path:
            net.whiten.weight.requires_grad_(not self.freeze)
            return
        net.init_whitening(self._training_images(trainer), freeze=self.freeze)
        weight = trainer.strategy.broadcast(net.whiten.weight.detach().clone(), src=0)
        with torch.no_grad():
            net.whiten.weight.copy_(weight)

    def _training_images(self, trainer: L.Trainer) -> torch.Tensor:
        """Up to ``images`` training images as the network sees them (augmented, normalized), on the CPU."""
        datamodule = trainer.datamodule
        loader = datamodule.train_dataloader() if datamodule is not None else trainer.fit_loop._data_source.dataloader()
        collected, count = [], 0
        for batch in loader:
            if datamodule is not None:
                batch = datamodule.on_after_batch_transfer(batch, 0)
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            collected.append(images)
            count += len(images)
            if count >= self.images:
                break
        return torch.cat(collected)[: self.images]
