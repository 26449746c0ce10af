"""LARS, the layer-wise adaptive optimizer SimCLR pretrains with (You et al. 2017; Chen et al. 2020).

torch ships no LARS and the package may not depend on lightly or Lightning Bolts, so this follows their
``LARS`` reference: each weight's update is rescaled so its size tracks the weight's own norm, which keeps
very large batches (and learning rates) stable. Usable from a LightningCLI config as
``optimizer: {class_path: lit_mlcourse.optim.LARS, init_args: {lr: 0.3, weight_decay: 1e-6}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from lit_mlcourse.errors import ConfigValueError


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose per-parameter step is scaled by ``trust_coefficient * ||p|| / ||g||``.

    Args:
        params: parameters or parameter groups; groups may override any option below.
        lr: learning rate.
        momentum: momentum factor in ``[0, 1)``.
        weight_decay: L2 penalty added to the gradient before the trust ratio is taken.
        trust_coefficient: scale of the layer-wise trust ratio.
        eps: keeps the trust ratio finite when a gradient norm is tiny.
        exclude_1d: leave 1-D parameters (biases, norm weights) without weight decay or adaptation.
        nesterov: use Nesterov momentum.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
        exclude_1d: bool = True,
        nesterov: bool = False,
    ) -> None:
        if lr < 0:
            raise ConfigValueError(f"LARS: lr must be >= 0, got lr={lr}")
        if not 0 <= momentum < 1:
            raise ConfigValueError(f"LARS: momentum must be in [0, 1), got momentum={momentum}")
        if weight_decay < 0:
            raise ConfigValueError(f"LARS: weight_decay must be >= 0, got weight_decay={weight_decay}")
        if trust_coefficient <= 0:
            raise ConfigValueError(f"LARS: trust_coefficient must be > 0, got trust_coefficient={trust_coefficient}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
            eps=eps, exclude_1d=exclude_1d, nesterov=nesterov,
        )  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                # SimCLR's choice: biases and norm weights are too small for a norm-relative step to make sense.
                if not (group["exclude_1d"] and p.ndim == 1):
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = group["trust_coefficient"] * param_norm / (update_norm + group["eps"])
                    # A zero weight (fresh init) or zero gradient would zero the step or divide by ~0: keep g.
                    g = g * torch.where((param_norm > 0) & (update_norm > 0), trust, torch.ones_like(trust))
                if momentum:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        # As torch SGD: the first buffer is the gradient itself, not momentum * 0 + g.
                        buf = state["momentum_buffer"] = g.clone()
                    else:
                        buf = state["momentum_buffer"].mul_(momentum).add_(g)
                    g = g.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(g, alpha=-group["lr"])
        return loss
