"""Pure losses, tested against naive references and analytic values."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rank: int = 0,
) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross-entropy (Chen et al., 2020, eq. 1).

    "Given a set {x_k} including a positive pair of examples x_i and x_j, the contrastive prediction task
    aims to identify x_j in {x_k}_{k != i} for a given x_i": each of the 2N views is an anchor whose
    positive is the other view of its image and whose negatives are the other 2N - 2 views, with cosine
    similarity divided by ``temperature``; the loss is the mean over all 2N anchors.

    Under DDP, ``gather`` maps a local (N, D) tensor to the global (W * N, D) one *with gradients* (in a
    LightningModule: ``self.all_gather(t, sync_grads=True).flatten(0, 1)``) and ``rank`` says which rows
    are this process's. The anchors are the local views and the candidates the global ones, so negatives
    come from the whole global batch; with DDP's gradient averaging, the gradients equal those of one
    process on the concatenated batch.

    Args:
        z1: (N, D) projections of the first view of N images.
        z2: (N, D) projections of the second view, row i of the same image as row i of ``z1``.
        temperature: softmax temperature (> 0).
        gather: local -> global batch with gradients, or ``None`` for one process.
        rank: index of this process's block of rows in the gathered batch.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0")
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = z1.shape[0]
    global1, global2 = (gather(z1), gather(z2)) if gather is not None else (z1, z2)  # (M, D) each, M = W * N
    m = global1.shape[0]
    anchors = torch.cat([z1, z2])  # (2N, D)
    candidates = torch.cat([global1, global2])  # (2M, D)
    logits = anchors @ candidates.T / temperature  # (2N, 2M) cosine similarities / t
    own = rank * n + torch.arange(n, device=z1.device)  # global index of the local images
    itself = torch.cat([own, own + m])  # the anchor's own column: never a candidate
    positive = torch.cat([own + m, own])  # the other view of the same image
    logits = logits.masked_fill(F.one_hot(itself, 2 * m).bool(), float("-inf"))
    return F.cross_entropy(logits, positive)
