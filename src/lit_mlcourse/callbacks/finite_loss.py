"""A training loss that is NaN or infinite stops the run before it reaches the weights."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.data.resumable import ResumableSampler
from lit_mlcourse.errors import UserInputError


class NonFiniteLossError(UserInputError, FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Raises :class:`NonFiniteLossError`, naming the step, epoch and batch, when a loss about to be backpropagated
    is not finite: no gradient of it reaches the weights, and no checkpoint is written from the state after it
    (``last.ckpt`` keeps the last good one). The message says whether the batch's inputs were finite, and names
    the training samples that were not (their dataset indices, when the loader is this package's). Costs one
    scalar read per backward pass."""

    def __init__(self) -> None:
        self.batch: Any = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        self.batch = batch  # a reference, kept for the message only

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        batch_idx = trainer.fit_loop.epoch_loop.batch_idx
        raise NonFiniteLossError(
            f"the training loss is {loss.detach().float().flatten()[0].item()} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {batch_idx}); {self._inputs(trainer, batch_idx)}. The run stopped "
            "before this step changed the weights, and last.ckpt keeps the last finite state. Lower the learning "
            "rate, set trainer.gradient_clip_val, or look at this batch's data; then resume with --ckpt_path last."
        )

    def _inputs(self, trainer: L.Trainer, batch_idx: int) -> str:
        """What the batch's inputs say: all finite (the model diverged), or which samples are not."""
        inputs = self.batch[0] if isinstance(self.batch, (tuple, list)) else self.batch
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
            return "the batch's inputs are not a float tensor"
        bad = (~torch.isfinite(inputs.detach().flatten(1))).any(1).nonzero().flatten().tolist()
        if not bad:
            return "the batch's inputs are all finite"
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        positions = ", ".join(map(str, bad[:10]))
        if not isinstance(sampler, ResumableSampler):
            return f"the inputs of samples {positions} of the batch are not finite"
        start = batch_idx * loader.batch_size
        order = sampler.epoch_indices()[start : start + len(inputs)]
        samples = ", ".join(str(order[position]) for position in bad[:10])
        return f"the inputs of training samples {samples} (dataset indices; batch positions {positions}) are not finite"
