"""A callback for tests (allowed with LIT_MLCOURSE_ALLOW_IMPORTS=grad_probe): records, at every optimizer step, the
total gradient norm Lightning's hook sees and the one the optimizer steps with."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

RECORD = "LIT_MLCOURSE_GRAD_PROBE"  # environment variable: where the record goes (JSON)


def total_norm(optimizer: torch.optim.Optimizer) -> float:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


class GradNormProbe(L.Callback):
    """``hook``: the norm in ``on_before_optimizer_step``, which Lightning calls before it clips (automatic
    optimization); ``stepped``: the norm of the gradients the optimizer stepped with, after any clipping. Read when
    ``optimizer.step()`` ends: Lightning runs the forward and backward pass inside it (as its closure), so at its
    start the gradients are still the previous step's."""

    def __init__(self) -> None:
        self.record: dict[str, list[float]] = {"hook": [], "stepped": []}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(lambda opt, args, kwargs: self.record["stepped"].append(total_norm(opt)))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.record["hook"].append(total_norm(optimizer))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import os

        Path(os.environ[RECORD]).write_text(json.dumps(self.record))
