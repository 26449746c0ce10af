"""The loss Hessian's extreme eigenvalues from Hessian-vector products, never the Hessian itself.

A model of n parameters has an n x n Hessian: 4 TB for ResNet-18. What the course asks of it (is this critical point a
saddle or a minimum, how sharp is this minimum) needs only its largest and smallest eigenvalues, which the Lanczos
iteration finds from a few dozen products ``H v``. torch.func gives each product at the cost of about two backward
passes (the gradient of the gradient's inner product with v), without forming H.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.func import grad, vjp

Parameters = dict[str, torch.Tensor]
# The loss of the parameters on one fixed batch: a pure function (no dropout, no updated statistics).
BatchLoss = Callable[[Parameters], torch.Tensor]


class LossCurvature:
    """Gradient and Hessian-vector products of the mean of ``losses`` (one per fixed batch) at ``parameters``,
    with vectors flattened into one 1-D tensor in the order of ``parameters``."""

    def __init__(self, losses: Sequence[BatchLoss], parameters: Parameters) -> None:
        self.losses = list(losses)
        self.parameters = {name: value.detach() for name, value in parameters.items()}
        self.size = sum(value.numel() for value in self.parameters.values())

    def flatten(self, tensors: Parameters) -> torch.Tensor:
        return torch.cat([tensors[name].reshape(-1) for name in self.parameters])

    def unflatten(self, vector: torch.Tensor) -> Parameters:
        tensors, offset = {}, 0
        for name, value in self.parameters.items():
            tensors[name] = vector[offset : offset + value.numel()].view_as(value).to(value.dtype)
            offset += value.numel()
        return tensors

    def gradient(self) -> torch.Tensor:
        total = sum(self.flatten(grad(loss)(self.parameters)) for loss in self.losses)
        return total / len(self.losses)

    def hessian_vector_product(self, vector: torch.Tensor) -> torch.Tensor:
        tangent = self.unflatten(vector)
        total = torch.zeros(self.size, dtype=vector.dtype, device=vector.device)
        for loss in self.losses:
            total += self.flatten(self._product(loss, tangent)).to(vector.dtype)
        return total / len(self.losses)

    def _product(self, loss: BatchLoss, tangent: Parameters) -> Parameters:
        # Reverse over reverse: H is symmetric, so the vector-Jacobian product of the gradient is H v. Forward over
        # reverse (jvp of grad) took 1.1-1.4x as long for the quick start's CNN on these CPUs and fails for the
        # PM2.5 MLP ("ZeroTensors are immutable"): bench/hvp.py.
        return vjp(grad(loss), self.parameters)[1](tangent)[0]


@dataclass(frozen=True)
class ExtremeEigenvalues:
    largest: float
    smallest: float
    iterations: int  # Lanczos steps taken (fewer than asked when the Krylov space was exhausted)


def lanczos_extremes(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    size: int,
    iterations: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> ExtremeEigenvalues:
    """The largest and smallest eigenvalues of the symmetric operator ``matvec`` (on vectors of ``size``), as the
    extreme Ritz values of ``iterations`` Lanczos steps from a random start drawn with ``generator``.

    Each step is reorthogonalised against all earlier ones (twice: "twice is enough"), so that rounding does not
    bring back converged directions as spurious copies. Ritz values lie inside the spectrum and the extreme ones
    converge first: a negative smallest Ritz value proves a negative eigenvalue exists. With ``iterations >= size``
    the space is the whole space and the values are exact to rounding. The vectors are kept in float64 on ``device``:
    ``iterations * size * 8`` bytes (20 steps of a 1M-parameter model: 160 MB)."""
    steps = max(1, min(iterations, size))
    basis = torch.zeros(steps, size, dtype=torch.float64, device=device)
    start = torch.randn(size, generator=generator, dtype=torch.float64).to(device)
    vector = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(steps):
        basis[step] = vector
        product = matvec(vector).to(torch.float64)
        alpha = float(product @ vector)
        alphas.append(alpha)
        product = product - alpha * vector - (betas[-1] * basis[step - 1] if step > 0 else 0.0)
        for _ in range(2):
            product = product - basis[: step + 1].T @ (basis[: step + 1] @ product)
        beta = float(product.norm())
        scale = max(abs(value) for value in alphas) + (max(betas) if betas else 0.0)
        if step == steps - 1 or beta <= 1e-10 * max(scale, 1e-30):  # an invariant subspace: T's values are exact
            break
        betas.append(beta)
        vector = product / beta
    count = len(alphas)
    tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if count > 1:
        off = torch.tensor(betas[: count - 1], dtype=torch.float64)
        tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
    values = torch.linalg.eigvalsh(tridiagonal)
    return ExtremeEigenvalues(largest=float(values[-1]), smallest=float(values[0]), iterations=count)


def critical_point_verdict(largest: float, smallest: float, tolerance: float) -> str:
    """``saddle point`` when the smallest eigenvalue is clearly negative (below ``-tolerance`` times the largest
    magnitude: directions of descent exist), else ``local minimum`` (every curvature non-negative within tolerance).
    Meaningful at a critical point, where the gradient vanishes; the caller reports the gradient's norm beside it."""
    scale = max(abs(largest), abs(smallest), 1e-12)
    return "saddle point" if smallest < -tolerance * scale else "local minimum"
