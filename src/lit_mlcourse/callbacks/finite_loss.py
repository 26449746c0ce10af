"""A training loss that is NaN or infinite stops the run before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lit_mlcourse.errors import UserInputError


class NonFiniteLossError(UserInputError, FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Raises :class:`NonFiniteLossError`, naming the step, epoch and batch, when a loss about to be backpropagated
    is not finite: no gradient of it reaches the weights, and no checkpoint is written from the state after it
    (``last.ckpt`` keeps the last good one). Costs one scalar read per backward pass."""

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        raise NonFiniteLossError(
            f"the training loss is {loss.detach().float().flatten()[0].item()} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}): the run stopped before this "
            "step changed the weights, and last.ckpt keeps the last finite state. Lower the learning rate, set "
            "trainer.gradient_clip_val, or look at this batch's data; then resume with --ckpt_path last."
        )
