"""Learning-rate schedules stepped once per optimizer step (never per epoch)."""

from __future__ import annotations

import math
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lit_mlcourse.errors import ConfigValueError


class WarmupDecay(LRScheduler):
    """Linear warmup to the optimizer's learning rate, then cosine or linear decay to ``min_lr``.

    With ``t`` optimizer steps taken, ``W`` warmup steps and ``T`` total steps, the factor applied
    to each group's base learning rate is ``(t + 1) / W`` for ``t < W`` (so the first update
    already moves) and then, with ``p = (t - W) / (T - W)``, ``0.5 * (1 + cos(pi * p))`` (cosine)
    or ``1 - p`` (linear), rescaled so the group ends at its share of ``min_lr``.

    The horizon ``T`` is rarely known when the optimizer is built from a config: task models call
    :meth:`bind_total_steps` with ``trainer.estimated_stepping_batches`` before training.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: number of warmup optimizer steps.
        warmup_fraction: warmup length as a fraction of all optimizer steps (instead of ``warmup_steps``;
            0 leaves the length to ``warmup_steps``).
        decay: shape after warmup; ``constant`` keeps the base learning rate.
        min_lr: learning rate reached at the end (for the group with the largest base lr; other groups
            end at the same fraction of their own base lr).
        total_steps: the horizon; ``None`` until :meth:`bind_total_steps` is called.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 0,
        warmup_fraction: float = 0.0,
        decay: Literal["cosine", "linear", "constant"] = "cosine",
        min_lr: float = 0.0,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0:
            raise ConfigValueError(f"WarmupDecay: warmup_steps={warmup_steps} must be >= 0.")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ConfigValueError(f"WarmupDecay: warmup_fraction={warmup_fraction} must be in [0, 1).")
        if warmup_fraction and warmup_steps:
            raise ConfigValueError(
                f"WarmupDecay: give warmup_steps ({warmup_steps}) or warmup_fraction ({warmup_fraction}), not both; "
                "set the other to 0."
            )
        if min_lr < 0:
            raise ConfigValueError(f"WarmupDecay: min_lr={min_lr} must be >= 0.")
        self.warmup_steps = warmup_steps
        self.warmup_fraction = warmup_fraction
        self.decay = decay
        self.min_lr = min_lr
        self.total_steps: int | None = None
        super().__init__(optimizer, last_epoch)
        if total_steps is not None:
            self.bind_total_steps(total_steps)

    def bind_total_steps(self, total_steps: int | float) -> None:
        """Fix the horizon (total optimizer steps) and apply the learning rate of the current step."""
        if not math.isfinite(total_steps):
            raise ConfigValueError(
                "WarmupDecay needs a finite number of optimizer steps: set trainer.max_epochs or trainer.max_steps."
            )
        total_steps = int(total_steps)
        if self.warmup_fraction:
            self.warmup_steps = round(self.warmup_fraction * total_steps)
        if total_steps < 1 or self.warmup_steps >= total_steps:
            raise ConfigValueError(
                f"WarmupDecay: the warmup ({self.warmup_steps} optimizer steps) must be shorter than the whole "
                f"training ({total_steps} optimizer steps from trainer.estimated_stepping_batches). "
                "Lower warmup_steps / warmup_fraction or train for more epochs."
            )
        if self.min_lr > max(self.base_lrs):
            raise ConfigValueError(
                f"WarmupDecay: min_lr={self.min_lr} is above the optimizer's learning rate {max(self.base_lrs)}."
            )
        self.total_steps = total_steps
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _factor(self, step: int) -> float:
        """Fraction of the base learning rate (before the ``min_lr`` floor) after ``step`` optimizer steps."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay == "constant" or self.total_steps is None:
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        if self.decay == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    def get_lr(self) -> list[float]:
        step = max(self.last_epoch, 0)  # LRScheduler counts steps in last_epoch
        top = max(self.base_lrs)
        lrs = []
        for base in self.base_lrs:
            floor = self.min_lr * base / top if top > 0 else 0.0
            if step < self.warmup_steps:
                lrs.append(base * self._factor(step))
            else:
                lrs.append(floor + (base - floor) * self._factor(step))
        return lrs
